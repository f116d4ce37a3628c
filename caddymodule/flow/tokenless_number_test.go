package flow

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// indexed is a harness whose rules keep the number index (compat supabase).
func indexed(t *testing.T, mutate ...func(*Config)) *harness {
	return newHarness(t, append([]func(*Config){func(c *Config) { c.IndexNumbers = true }}, mutate...)...)
}

func (h *harness) byNumber(number, code, ip string) error {
	_, err := h.svc.VerifyByNumber(h.ctx, NumberVerifyRequest{PhoneNumber: number, Code: code, ClientIP: ip})
	return err
}

func (h *harness) resendByNumber(number, ip string) (ResendResult, error) {
	return h.svc.ResendByNumber(h.ctx, NumberResendRequest{PhoneNumber: number, ClientIP: ip})
}

// The number alone reaches the user whose update sent the code there, for
// a pending change (rule 3) as for a first number (rule 2); the challenge
// is consumed and the index entry dropped with it.
func TestVerifyByNumber(t *testing.T) {
	h := indexed(t)
	h.seedVerified("u", numDE)
	h.mustUpdate("u", numFR, StatusPending)
	code := h.sender.LastCode(t)
	u, err := h.svc.VerifyByNumber(h.ctx, NumberVerifyRequest{PhoneNumber: "+33 6 12 34 56 78", Code: code})
	if err != nil || u.ID != "u" || u.PhoneNumber != numFR || !u.Verified {
		t.Fatalf("VerifyByNumber = %+v, %v", u, err)
	}
	h.wantUser("u", numFR, true)
	if _, err := h.bc.Get(h.ctx, numberIndexKey(numFR)); err == nil {
		t.Fatal("the index entry outlived the challenge it pointed at")
	}
	wantErr(t, h.byNumber(numFR, code, ""), ErrNoPending)

	h.mustUpdate("v", numUK, StatusUpdated)
	if _, err := h.svc.VerifyByNumber(h.ctx, NumberVerifyRequest{PhoneNumber: numUK, Code: h.sender.LastCode(t)}); err != nil {
		t.Fatal(err)
	}
	h.wantUser("v", numUK, true)
}

// Two users wait on one number: the later update's challenge is the one
// the number reaches; the earlier one is left alone and stays verifiable
// with its owner's token.
func TestVerifyByNumberReachesTheLatestUpdate(t *testing.T) {
	h := indexed(t)
	h.mustUpdate("first", numFR, StatusUpdated)
	firstCode := h.sender.LastCode(t)
	h.clock.Advance(time.Second)
	h.mustUpdate("second", numFR, StatusUpdated)
	secondCode := h.sender.LastCode(t)

	// The first user's code, by number, is a wrong code for the second.
	wantCodeError(t, h.byNumber(numFR, firstCode, ""), h.cfg.MaxAttempts-1)
	if c := h.challenge("first"); c.OpenAttempts != 0 || c.Attempts != 0 {
		t.Fatalf("the earlier challenge was touched: %+v", c)
	}
	if c := h.challenge("second"); c.OpenAttempts != 1 || c.Attempts != 0 {
		t.Fatalf("the later challenge: %+v", c)
	}
	h.mustVerify("first", firstCode) // with a token
	h.wantUser("first", numFR, true)
	// The number is now the first user's: possession proven, 409.
	wantErr(t, h.byNumber(numFR, secondCode, ""), ErrPhoneInUse)
	h.wantUser("second", numFR, false)
}

// An entry whose user has since moved on (another number, a cancel)
// reaches nothing, and such a miss spends verify_per_ip.
func TestVerifyByNumberStaleEntryReachesNothing(t *testing.T) {
	h := indexed(t, func(c *Config) { c.Limits.VerifyPerIP = Limit{Count: 3, Window: time.Hour} })
	const ip = "203.0.113.5"
	h.mustUpdate("u", numFR, StatusUpdated)
	frCode := h.sender.LastCode(t)
	h.mustUpdate("u", numUK, StatusUpdated)
	ukCode := h.sender.LastCode(t)
	wantErr(t, h.byNumber(numFR, frCode, ip), ErrNoPending) // challenge now for numUK
	if c := h.challenge("u"); c.Number != numUK || c.OpenAttempts != 0 || !c.ClaimedUntil.IsZero() {
		t.Fatalf("challenge after a miss: %+v", c)
	}
	if err := h.svc.Cancel(h.ctx, "u"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, h.byNumber(numUK, ukCode, ip), ErrNoPending)   // canceled
	wantErr(t, h.byNumber(numES, "123456", ip), ErrNoPending) // never indexed
	wantErr(t, h.byNumber(numES, "123456", ip), ErrRateLimited)
	// Another address is not held back.
	wantErr(t, h.byNumber(numES, "123456", "203.0.113.6"), ErrNoPending)
}

// Token-less guesses by number use the challenge's token-less budget and
// verify_per_ip, as Descope's do: verify_per_user is untouched and the
// owner, with a token, still has every attempt.
func TestVerifyByNumberGuardedLikeTokenless(t *testing.T) {
	h := indexed(t, func(c *Config) {
		c.Limits.VerifyPerUser = Limit{Count: 2, Window: time.Hour}
		c.Limits.VerifyPerIP = Limit{Count: 100, Window: time.Hour}
	})
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	for i := range h.cfg.MaxAttempts {
		wantCodeError(t, h.byNumber(numFR, wrongCodeFor(code), "198.51.100.7"), h.cfg.MaxAttempts-1-i)
	}
	wantErr(t, h.byNumber(numFR, code, "198.51.100.7"), ErrTooManyAttempts)
	_, err := h.verify("u", wrongCodeFor(code))
	wantCodeError(t, err, h.cfg.MaxAttempts-1)
	h.mustVerify("u", code)
	h.wantUser("u", numFR, true)
}

// A verify by number racing a newer update of another user to that
// number, on another instance, must not verify the user it read first:
// between its read of the index and its claim, the number moved on.
func TestVerifyByNumberRacingANewerUpdate(t *testing.T) {
	h := indexed(t)
	other := h.sibling()
	h.mustUpdate("first", numFR, StatusUpdated)
	firstCode := h.sender.LastCode(t)
	var once sync.Once
	h.svc.indexFound = func(userID string) {
		once.Do(func() {
			if userID != "first" {
				t.Errorf("index read %q, want first", userID)
			}
			h.clock.Advance(time.Second)
			if _, err := other.Update(h.ctx, UpdateRequest{UserID: "second", PhoneNumber: numFR}); err != nil {
				t.Errorf("the other instance's update: %v", err)
			}
		})
	}
	wantErr(t, h.byNumber(numFR, firstCode, ""), ErrNoPending)
	h.wantUser("first", numFR, false)
	// The claim was given back: the first user's code still works with
	// its token, and the number now reaches the second user.
	if c := h.challenge("first"); c == nil || !c.ClaimedUntil.IsZero() {
		t.Fatalf("first's challenge after the race: %+v", c)
	}
	secondCode := h.sender.LastFor("second").Code
	if _, err := h.svc.VerifyByNumber(h.ctx, NumberVerifyRequest{PhoneNumber: numFR, Code: secondCode}); err != nil {
		t.Fatalf("second's code by number: %v", err)
	}
	h.wantUser("second", numFR, true)
	_, err := h.verify("first", firstCode)
	wantErr(t, err, ErrPhoneInUse)
}

// A resend by number spends per_number, per_ip and global, never the
// owner's per_user; a miss spends per_ip.
func TestResendByNumberBudgets(t *testing.T) {
	h := indexed(t, func(c *Config) {
		c.Limits.PerUser = Limit{Count: 1, Window: time.Hour}
		c.Limits.PerNumber = Limit{Count: 2, Window: time.Hour}
		c.Limits.PerIP = Limit{Count: 3, Window: time.Hour}
	})
	const ip = "192.0.2.1"
	h.mustUpdate("u", numFR, StatusUpdated) // per_user now spent
	h.clock.Advance(h.cfg.ResendAfter)
	_, err := h.resend("u")
	wantRetry(t, err, "per_user", time.Hour-h.cfg.ResendAfter)
	res, err := h.resendByNumber(numFR, ip)
	if err != nil || res.SentTo != numFR {
		t.Fatalf("ResendByNumber = %+v, %v", res, err)
	}
	code := h.sender.LastCode(t)
	h.clock.Advance(h.cfg.ResendAfter)
	_, err = h.resendByNumber(numFR, ip)
	wantRetry(t, err, "per_number", time.Hour-2*h.cfg.ResendAfter)
	_, err = h.resendByNumber(numUK, ip) // nothing open: a miss
	wantErr(t, err, ErrNoPending)
	_, err = h.resendByNumber(numUK, ip) // per_ip: 1 send + 1 miss + this
	wantErr(t, err, ErrNoPending)
	_, err = h.resendByNumber(numUK, ip) // the window opened with the first send
	wantRetry(t, err, "per_ip", time.Hour-h.cfg.ResendAfter)
	// The resent code verifies, by number.
	if err := h.byNumber(numFR, code, ""); err != nil {
		t.Fatal(err)
	}
}

// A resend keeps the resending user's number reachable but never takes
// it over from a later update of another user; a resend by number reaches
// only that later user.
func TestResendIndexRefresh(t *testing.T) {
	h := indexed(t)
	h.mustUpdate("first", numFR, StatusUpdated)
	h.mustUpdate("second", numFR, StatusUpdated)
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("first"); err != nil {
		t.Fatal(err)
	}
	if owner, err := h.svc.indexedUser(h.ctx, numberIndexKey(numFR)); err != nil || owner != "second" {
		t.Fatalf("after first's resend the number points at %q (%v), want second", owner, err)
	}
	if _, err := h.resendByNumber(numFR, ""); err != nil {
		t.Fatal(err)
	}
	if last := h.sender.Last(t); last.UserID != "second" {
		t.Fatalf("the resend by number went for %q", last.UserID)
	}
	// After the index entry lapsed, a resend writes it again.
	if err := h.bc.Delete(h.ctx, numberIndexKey(numFR)); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("first"); err != nil {
		t.Fatal(err)
	}
	if owner, _ := h.svc.indexedUser(h.ctx, numberIndexKey(numFR)); owner != "first" {
		t.Fatalf("a resend with no entry left points at %q", owner)
	}
}

// Without IndexNumbers no entry is written and the by-number calls
// refuse: deployments without compat supabase pay nothing for it.
func TestNumberIndexOff(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	keys, _ := h.cache.Written()
	for _, k := range keys {
		if strings.HasPrefix(k, "tn:") {
			t.Fatalf("index entry %q written with IndexNumbers off", k)
		}
	}
	if err := h.byNumber(numFR, h.sender.LastCode(t), ""); err == nil {
		t.Fatal("VerifyByNumber worked with IndexNumbers off")
	}
}

// An update whose index entry cannot be written changes nothing: the
// challenge it replaced is back, and no code went out.
func TestUpdateIndexFailureChangesNothing(t *testing.T) {
	h := indexed(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	before := h.challenge("u")
	sends := h.sender.Count()
	h.clock.Advance(h.cfg.ResendAfter)
	h.cache.failOn = func(key string) bool { return strings.HasPrefix(key, "tn:") }
	_, err := h.update("u", numUK)
	wantErr(t, err, ErrUnavailable)
	h.cache.failOn = nil
	if c := h.challenge("u"); c == nil || c.MAC != before.MAC || c.Number != numFR {
		t.Fatalf("challenge after the failed update: %+v", c)
	}
	if h.sender.Count() != sends {
		t.Fatal("a code went out")
	}
	h.wantUser("u", numFR, false)
}

// Concurrent verifies by number of the right code, across instances:
// exactly one succeeds. Run with -race.
func TestVerifyByNumberConcurrentExactlyOnce(t *testing.T) {
	h := indexed(t)
	svcs := []*Service{h.svc, h.sibling(), h.sibling()}
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	const n = 30
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func(svc *Service) {
			defer wg.Done()
			<-start
			u, err := svc.VerifyByNumber(h.ctx, NumberVerifyRequest{PhoneNumber: numFR, Code: code})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && u.ID == "u" && u.Verified:
				wins++
			case err != nil && errors.Is(err, ErrNoPending):
			default:
				t.Errorf("verify: %+v, %v", u, err)
			}
		}(svcs[i%len(svcs)])
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d verifies by number succeeded, want exactly 1", wins)
	}
	h.wantUser("u", numFR, true)
}
