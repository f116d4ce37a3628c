package flow

import "testing"

func TestCancel(t *testing.T) {
	t.Run("nothing open", func(t *testing.T) {
		h := newHarness(t)
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
		h.seedVerified("u", numFR)
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
	})
	t.Run("pending change", func(t *testing.T) {
		h := newHarness(t)
		h.seedVerified("u", numFR)
		h.mustUpdate("u", numUS, StatusPending)
		code := h.sender.LastCode(t)
		if err := h.svc.Cancel(h.ctx, "u"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		_, err := h.verify("u", code)
		wantErr(t, err, ErrNoPending)
		h.wantUser("u", numFR, true)
		if st, _ := h.svc.Status(h.ctx, "u"); st.PendingNumber != "" {
			t.Fatalf("Status after cancel = %+v", st)
		}
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
		// Verified user, nothing pending: resend has nothing to do.
		_, err = h.resend("u")
		wantErr(t, err, ErrNoPending)
	})
	t.Run("rule 2 challenge", func(t *testing.T) {
		h := newHarness(t)
		h.mustUpdate("u", numFR, StatusUpdated)
		code := h.sender.LastCode(t)
		if err := h.svc.Cancel(h.ctx, "u"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		_, err := h.verify("u", code)
		wantErr(t, err, ErrNoPending)
		h.wantUser("u", numFR, false) // the number stays stored, unverified
	})
}
