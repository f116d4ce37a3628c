package flow

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// pausingUsers holds the first verified Set at the racy point (after the
// caller read the user and claimed what it claims, before the store
// write lands) until release is closed.
type pausingUsers struct {
	*fakeUsers
	once             sync.Once
	reached, release chan struct{}
}

func (u *pausingUsers) Set(ctx context.Context, usr store.User) error {
	if usr.Verified {
		u.once.Do(func() {
			close(u.reached)
			<-u.release
		})
	}
	return u.fakeUsers.Set(ctx, usr)
}

// instances builds two Services sharing the harness's cache, as two Caddy
// instances sharing Redis do; the second writes through users.
func (h *harness) instances(users Users) (a, b *Service, waiting chan struct{}) {
	h.t.Helper()
	mk := func(u Users) *Service {
		svc, err := New(h.cfg, Deps{Users: u, Cache: h.cache, Sender: h.sender, Numbers: numbers.Policy{},
			Clock: h.clock, SharedCache: true})
		if err != nil {
			h.t.Fatal(err)
		}
		return svc
	}
	a, b = mk(h.users), mk(users)
	waiting = make(chan struct{}, 1)
	a.leaseWaiting = func(string) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	return a, b, waiting
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(what)
	}
}

// Issue 9, item 1: a verify on one instance must not undo an update made
// on another while the verify was writing. The update waits for the
// verify's lease, then applies to the verified state: its pending change
// stands.
func TestVerifyCannotUndoAnotherInstancesUpdate(t *testing.T) {
	h := newHarness(t)
	pu := &pausingUsers{fakeUsers: h.users, reached: make(chan struct{}), release: make(chan struct{})}
	a, b, waiting := h.instances(pu)
	first, second := frNumber(1), frNumber(2)
	if _, err := a.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: first}); err != nil {
		t.Fatal(err)
	}
	code := h.sender.LastCode(t)

	verified := make(chan error, 1)
	go func() {
		_, err := b.Verify(h.ctx, VerifyRequest{UserID: "u", Code: code})
		verified <- err
	}()
	waitFor(t, pu.reached, "the verify never reached the store write")
	updated := make(chan UpdateResult, 1)
	go func() {
		res, err := a.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: second})
		if err != nil {
			t.Error(err)
		}
		updated <- res
	}()
	waitFor(t, waiting, "the update on the other instance did not wait for the verify")
	close(pu.release)
	if err := <-verified; err != nil {
		t.Fatalf("verify: %v", err)
	}
	res := <-updated
	if res.Status != StatusPending || res.PendingNumber != second {
		t.Fatalf("update after the verify: %+v, want pending %s", res, second)
	}
	h.wantUser("u", first, true)
	if c := h.challenge("u"); c == nil || c.Number != second {
		t.Fatalf("the update's challenge is gone: %+v", c)
	}
}

// Issue 9, item 2: an admin change on one instance is not overwritten by a
// user update on another that read the user before the admin write.
func TestAdminChangeNotOverwrittenByAnotherInstance(t *testing.T) {
	h := newHarness(t)
	a, b, waiting := h.instances(h.users)
	number, other := frNumber(3), frNumber(4)
	reached, release := make(chan struct{}), make(chan struct{})
	admin := make(chan error, 1)
	go func() {
		admin <- b.AdminChange(h.ctx, "u", func(ctx context.Context) error {
			close(reached)
			<-release
			return h.users.Set(ctx, store.User{ID: "u", PhoneNumber: number, Verified: true})
		})
	}()
	waitFor(t, reached, "the admin write never started")
	updated := make(chan error, 1)
	go func() {
		_, err := a.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: other})
		updated <- err
	}()
	waitFor(t, waiting, "the user update on the other instance did not wait for the admin change")
	close(release)
	if err := <-admin; err != nil {
		t.Fatalf("admin: %v", err)
	}
	if err := <-updated; err != nil {
		t.Fatalf("update: %v", err)
	}
	// Rule 3: the admin-verified number stays until the new one is verified.
	h.wantUser("u", number, true)
	if c := h.challenge("u"); c == nil || c.Number != other || !c.Pending {
		t.Fatalf("challenge %+v, want a pending change to %s", c, other)
	}
}

// A lease is freed by its holder, so calls on other instances go on at
// once; one left by a holder that died lapses (leaseFor).
func TestLeaseReleasedAfterEachCall(t *testing.T) {
	h := newHarness(t)
	a, b, _ := h.instances(h.users)
	if _, err := a.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: frNumber(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.bc.Get(h.ctx, leaseKey("u")); err == nil {
		t.Fatal("the lease outlived the call")
	}
	start := time.Now()
	if _, err := b.Verify(h.ctx, VerifyRequest{UserID: "u", Code: h.sender.LastCode(t)}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the next call on another instance waited %s", d)
	}
}
