package flow

import (
	"testing"
	"time"
)

// Resend: a new code, the old one void, the attempt count kept.
func TestResendKeepsAttemptsAndVoidsOldCode(t *testing.T) {
	h := newHarness(t) // max 3 attempts
	h.seedVerified("u", numDE)
	h.mustUpdate("u", numFR, StatusPending)
	oldCode := h.sender.LastCode(t)
	_, err := h.verify("u", wrongCodeFor(oldCode))
	wantCodeError(t, err, 2)

	h.clock.Advance(h.cfg.ResendAfter)
	res, err := h.resend("u")
	if err != nil {
		t.Fatalf("Resend: %v", err)
	}
	if res.SentTo != numFR || res.ExpiresIn != h.cfg.TTL || res.ResendAfter != h.cfg.ResendAfter {
		t.Fatalf("ResendResult = %+v", res)
	}
	m := h.sender.Last(t)
	if m.Purpose != "resend" || m.To != numFR {
		t.Fatalf("resend message = %+v", m)
	}
	newCode := h.sender.LastCode(t)
	if c := h.challenge("u"); c == nil || c.Attempts != 1 || !c.Pending || c.Number != numFR {
		t.Fatalf("challenge after resend = %+v, want the pending one with Attempts=1", c)
	}
	if oldCode != newCode {
		_, err = h.verify("u", oldCode)
		wantCodeError(t, err, 1) // the count went on from 1
		_, err = h.verify("u", wrongCodeFor(newCode))
		wantCodeError(t, err, 0)
		_, err = h.verify("u", newCode)
		wantErr(t, err, ErrTooManyAttempts)
		return
	}
	h.mustVerify("u", newCode)
}

func TestResendVoidsOldCodeThenNewVerifies(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	oldCode := h.sender.LastCode(t)
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	newCode := h.sender.LastCode(t)
	if oldCode != newCode {
		_, err := h.verify("u", oldCode)
		wantCodeError(t, err, h.cfg.MaxAttempts-1)
	}
	h.mustVerify("u", newCode)
	h.wantUser("u", numFR, true)
}

// A resend restarts the ttl.
func TestResendRestartsTTL(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(9 * time.Minute)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(9 * time.Minute)
	h.mustVerify("u", h.sender.LastCode(t))
}

func TestResendCooldown(t *testing.T) {
	cases := []struct {
		name    string
		advance time.Duration
		after   time.Duration // 0: allowed
	}{
		{"at once", 0, 30 * time.Second},
		{"after 10s", 10 * time.Second, 20 * time.Second},
		{"half a second left", 29500 * time.Millisecond, 500 * time.Millisecond},
		{"one ns left", 30*time.Second - 1, 1},
		{"at resend_after", 30 * time.Second, 0},
		{"later", time.Minute, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustUpdate("u", numFR, StatusUpdated)
			h.clock.Advance(tc.advance)
			before := h.sender.Count()
			_, err := h.resend("u")
			if tc.after == 0 {
				if err != nil {
					t.Fatalf("Resend: %v", err)
				}
				if h.sender.Count() != before+1 {
					t.Fatal("no SMS")
				}
				// The cooldown restarts from the resend.
				_, err = h.resend("u")
				wantRetry(t, err, "resend_after", h.cfg.ResendAfter)
				return
			}
			wantRetry(t, err, "resend_after", tc.after)
			if h.sender.Count() != before {
				t.Fatal("a refused resend sent an SMS")
			}
		})
	}
}

func TestResendWithNothingOpen(t *testing.T) {
	h := newHarness(t)
	_, err := h.resend("nobody")
	wantErr(t, err, ErrNoPending)
	if h.sender.Count() != 0 {
		t.Fatal("SMS sent")
	}
}

func TestDeliveryFailureOnResend(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(h.cfg.ResendAfter)
	h.sender.FailNext(1)
	_, err := h.resend("u")
	wantErr(t, err, ErrDeliveryFailed)
	// At once again, no cooldown.
	if _, err := h.resend("u"); err != nil {
		t.Fatalf("Resend after failed resend: %v", err)
	}
	h.mustVerify("u", h.sender.LastCode(t))
}
