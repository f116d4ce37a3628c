package flow

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// adminNumbers opens the admin side of the harness's memory store.
func (h *eventsHarness) adminNumbers() store.PhoneNumbers {
	h.t.Helper()
	pn, err := h.users.MemoryUsers.Backend().Numbers(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return pn
}

// primaryID returns the id of the user's primary number.
func primaryID(t testing.TB, pn store.PhoneNumbers, user string) string {
	t.Helper()
	rows, err := pn.ListPhoneNumbers(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rows {
		if n.Primary {
			return n.ID
		}
	}
	t.Fatalf("user %s has no primary number: %+v", user, rows)
	return ""
}

// adminDelete deletes the user's primary number through AdminChange.
func (h *eventsHarness) adminDelete(pn store.PhoneNumbers, user string) error {
	id := primaryID(h.t, pn, user)
	return h.svc.AdminChange(h.ctx, user, func(ctx context.Context) error {
		_, err := pn.DeletePhoneNumber(ctx, id)
		return err
	})
}

// An admin delete holds the user's lock until the open challenge is gone:
// a verify of that challenge's code, arriving right after the store write
// (where the lock used to be released), waits, then finds nothing to
// verify, and the deleted number does not come back. Deterministic: the
// verify either waits on the lock (right) or runs to its end (wrong).
func TestAdminChangeHoldsLockAgainstVerify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending bool // rule 3: a change of a verified number waits for its code
	}{
		{"rule 2 unverified number", false},
		{"rule 3 pending change", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newEventsHarness(t)
			pn := h.adminNumbers()
			number := numFR
			if tc.pending {
				h.seedVerified("u", numFR)
				h.mustUpdate("u", numUK, StatusPending)
				number = numUK
			} else {
				h.mustUpdate("u", numFR, StatusUpdated)
			}
			code := h.sender.LastCode(t)
			h.rec.take()

			waiting := make(chan struct{})
			var once sync.Once
			h.svc.locks.waiting = func(string) { once.Do(func() { close(waiting) }) }
			verified := make(chan error, 1)
			h.svc.afterAdminWrite = func() {
				// The racy point: the number is deleted in the store, the
				// challenge not yet.
				go func() {
					_, err := h.verify("u", code)
					verified <- err
				}()
				select {
				case <-waiting:
				case err := <-verified:
					t.Errorf("a verify ran to its end inside the admin change (err %v)", err)
					verified <- err
				}
			}
			if err := h.adminDelete(pn, "u"); err != nil {
				t.Fatal(err)
			}
			wantErr(t, <-verified, ErrNoPending)
			h.wantUser("u", "", false)
			if c := h.challenge("u"); c != nil {
				t.Fatalf("challenge for %s left open", c.Number)
			}
			h.wantEvents(ev(events.TypeRemoved, "u", "", numFR))
			if rows, _ := pn.ListPhoneNumbers(h.ctx, "u"); len(rows) != 0 {
				t.Fatalf("numbers after the delete: %+v (the verify brought %s back)", rows, number)
			}
		})
	}
}

// An admin write that changes the §4 number or its verified state drops
// the open challenge and tells the app; one that changes neither does
// neither.
func TestAdminChangeEventsAndChallenge(t *testing.T) {
	h := newEventsHarness(t)
	pn := h.adminNumbers()
	yes, no := true, false

	// A first number, created verified: phone.verified.
	var created store.PhoneNumber
	if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) (err error) {
		created, err = pn.CreatePhoneNumber(ctx, store.NewPhoneNumber{UserID: "u", PhoneNumber: numFR, Verified: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.wantEvents(ev(events.TypeVerified, "u", numFR, ""))
	h.wantUser("u", numFR, true)

	// A pending change is open; a second, unverified, non-primary number
	// changes nothing of §4: the challenge stays, no event.
	h.mustUpdate("u", numUK, StatusPending)
	h.rec.take()
	if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) error {
		_, err := pn.CreatePhoneNumber(ctx, store.NewPhoneNumber{UserID: "u", PhoneNumber: numDE})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.wantEvents()
	if c := h.challenge("u"); c == nil || c.Number != numUK {
		t.Fatalf("challenge = %+v, want the pending change kept", c)
	}

	// Unverifying the primary number: phone.updated, challenge dropped.
	if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) error {
		_, err := pn.UpdatePhoneNumber(ctx, created.ID, store.PhoneNumberChange{Verified: &no})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.wantEvents(ev(events.TypeUpdated, "u", numFR, numFR))
	if c := h.challenge("u"); c != nil {
		t.Fatalf("challenge for %s left open", c.Number)
	}
	if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) error {
		_, err := pn.UpdatePhoneNumber(ctx, created.ID, store.PhoneNumberChange{Verified: &yes})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.wantEvents(ev(events.TypeVerified, "u", numFR, numFR))

	// A failed write is returned; nothing else happens.
	h.clock.Advance(h.cfg.ResendAfter)
	h.mustUpdate("u", numUK, StatusPending)
	h.rec.take()
	errWrite := errors.New("write refused")
	if err := h.svc.AdminChange(h.ctx, "u", func(context.Context) error { return errWrite }); !errors.Is(err, errWrite) {
		t.Fatalf("AdminChange = %v, want the write's error", err)
	}
	h.wantEvents()
	if c := h.challenge("u"); c == nil {
		t.Fatal("a failed write dropped the challenge")
	}

	// The client hangs up once the write is made: the rest still happens.
	ctx, cancel := context.WithCancel(h.ctx)
	if err := h.svc.AdminChange(ctx, "u", func(ctx context.Context) error {
		_, err := pn.DeletePhoneNumber(ctx, created.ID)
		cancel()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.wantEvents(ev(events.TypeRemoved, "u", "", numFR))
	if c := h.challenge("u"); c != nil {
		t.Fatalf("challenge for %s left open after a cancelled request", c.Number)
	}
}

// When the user cannot be read back after the write, the challenge is
// dropped anyway (fail safe), no event is told, and the failure is logged.
func TestAdminChangeReadBackFailure(t *testing.T) {
	h := newEventsHarness(t)
	pn := h.adminNumbers()
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUK, StatusPending)
	h.rec.take()
	id := primaryID(t, pn, "u")
	if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) error {
		_, err := pn.DeletePhoneNumber(ctx, id)
		h.users.failGet.Store(true)
		return err
	}); err != nil {
		t.Fatalf("AdminChange = %v, want nil: the write is made", err)
	}
	h.users.failGet.Store(false)
	h.wantEvents()
	if c := h.challenge("u"); c != nil {
		t.Fatalf("challenge for %s left open", c.Number)
	}
	if n := h.logs.FilterMessage("admin change: the user's number could not be read back; no event emitted").Len(); n != 1 {
		t.Fatalf("%d log lines for the failed read-back, want 1", n)
	}
}
