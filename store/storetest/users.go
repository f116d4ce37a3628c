package storetest

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
)

// TestUsers runs the Users conformance suite. open returns a ready store
// and arranges its Close with t.Cleanup.
func TestUsers(t *testing.T, open func(t *testing.T) store.Users) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Users)
	}{
		{"UnknownUserIsEmpty", usersUnknown},
		{"SetGetRoundTrip", usersRoundTrip},
		{"SetVerified", usersSetVerified},
		{"Remove", usersRemove},
		{"VerifiedHolds", usersVerifiedHolds},
		{"PhoneInUse", usersPhoneInUse},
		{"SameUnverifiedNumber", usersSameUnverified},
		{"ReVerifySameNumber", usersReVerify},
		{"ReleasedNumberIsFree", usersReleased},
		{"ConcurrentVerifySameNumber", usersConcurrentSameNumber},
		{"ConcurrentWriters", usersConcurrentWriters},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// ids returns n user IDs unique to this run.
func ids(n int) []string {
	p := "user-" + rnd() + "-"
	out := make([]string, n)
	for i := range out {
		out[i] = p + strconv.Itoa(i)
	}
	return out
}

// number returns an E.164 number unlikely to exist in a shared backend.
func number() string { return fmt.Sprintf("+1555%07d", mrand.IntN(10_000_000)) }

// numbers returns n distinct numbers.
func numbers(n int) []string {
	seen := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		if x := number(); !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func mustGet(t *testing.T, s store.Users, id string) store.User {
	t.Helper()
	u, err := s.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return u
}

func mustSet(t *testing.T, s store.Users, u store.User) {
	t.Helper()
	if err := s.Set(ctxT(t), u); err != nil {
		t.Fatalf("Set(%+v): %v", u, err)
	}
}

func wantUser(t *testing.T, s store.Users, want store.User) {
	t.Helper()
	if got := mustGet(t, s, want.ID); got != want {
		t.Fatalf("Get(%q) = %+v, want %+v", want.ID, got, want)
	}
}

// WantHolder checks who holds num verified through the Users contract
// alone: want's own record shows num verified, and a newcomer's verified
// Set of num is refused with ErrPhoneInUse, writing nothing, while someone
// holds it; while no one does (want ""), that Set succeeds and is undone.
func WantHolder(t *testing.T, s store.Users, num, want string) {
	t.Helper()
	if want != "" {
		if u := mustGet(t, s, want); u.PhoneNumber != num || !u.Verified {
			t.Fatalf("holder of %s: Get(%q) = %+v, want it verified", num, want, u)
		}
	}
	probe := store.User{ID: "probe-" + rnd(), PhoneNumber: num, Verified: true}
	err := s.Set(ctxT(t), probe)
	switch {
	case want != "" && !errors.Is(err, store.ErrPhoneInUse):
		t.Fatalf("%s is held by %q, yet a newcomer's verified Set returned %v, want ErrPhoneInUse", num, want, err)
	case want != "":
		wantUser(t, s, store.User{ID: probe.ID}) // nothing written
	case err != nil:
		t.Fatalf("%s is held by no one, yet a newcomer's verified Set failed: %v", num, err)
	default:
		wantUser(t, s, probe)
		mustSet(t, s, store.User{ID: probe.ID})
	}
}

func usersUnknown(t *testing.T, s store.Users) {
	id := ids(1)[0]
	wantUser(t, s, store.User{ID: id})
	WantHolder(t, s, number(), "")
}

func usersRoundTrip(t *testing.T, s store.Users) {
	u := store.User{ID: ids(1)[0], PhoneNumber: number()}
	mustSet(t, s, u)
	wantUser(t, s, u)
	u.PhoneNumber = number()
	mustSet(t, s, u)
	wantUser(t, s, u)
}

func usersSetVerified(t *testing.T, s store.Users) {
	u := store.User{ID: ids(1)[0], PhoneNumber: number()}
	mustSet(t, s, u)
	u.Verified = true
	mustSet(t, s, u)
	wantUser(t, s, u)
	WantHolder(t, s, u.PhoneNumber, u.ID)
	// Back to unverified (a new number stored under rule 2).
	u.Verified = false
	mustSet(t, s, u)
	wantUser(t, s, u)
	WantHolder(t, s, u.PhoneNumber, "")
}

func usersRemove(t *testing.T, s store.Users) {
	u := store.User{ID: ids(1)[0], PhoneNumber: number(), Verified: true}
	mustSet(t, s, u)
	mustSet(t, s, store.User{ID: u.ID})
	wantUser(t, s, store.User{ID: u.ID})
	WantHolder(t, s, u.PhoneNumber, "")
	// Removing what is not there is fine.
	mustSet(t, s, store.User{ID: u.ID})
	wantUser(t, s, store.User{ID: u.ID})
}

// A verified number is held by its user; an unverified one holds nothing.
func usersVerifiedHolds(t *testing.T, s store.Users) {
	id := ids(2)
	n := numbers(2)
	mustSet(t, s, store.User{ID: id[0], PhoneNumber: n[0], Verified: true})
	mustSet(t, s, store.User{ID: id[1], PhoneNumber: n[1]})
	WantHolder(t, s, n[0], id[0])
	WantHolder(t, s, n[1], "") // unverified holds nothing
	wantUser(t, s, store.User{ID: id[1], PhoneNumber: n[1]})
}

func usersPhoneInUse(t *testing.T, s store.Users) {
	id := ids(2)
	n := numbers(2)
	winner := store.User{ID: id[0], PhoneNumber: n[0], Verified: true}
	mustSet(t, s, winner)
	loser := store.User{ID: id[1], PhoneNumber: n[1], Verified: true}
	mustSet(t, s, loser)

	err := s.Set(ctxT(t), store.User{ID: id[1], PhoneNumber: n[0], Verified: true})
	if !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("verifying a number another user verified: err = %v, want ErrPhoneInUse", err)
	}
	wantUser(t, s, loser) // nothing written
	wantUser(t, s, winner)
	WantHolder(t, s, n[0], id[0])
	WantHolder(t, s, n[1], id[1])

	// Storing it unverified is allowed (rule 2 stores before the code).
	unverified := store.User{ID: id[1], PhoneNumber: n[0]}
	mustSet(t, s, unverified)
	wantUser(t, s, unverified)
	WantHolder(t, s, n[0], id[0])
	WantHolder(t, s, n[1], "")
	if err := s.Set(ctxT(t), store.User{ID: id[1], PhoneNumber: n[0], Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("verifying over an unverified copy: err = %v, want ErrPhoneInUse", err)
	}
	wantUser(t, s, unverified)
}

func usersSameUnverified(t *testing.T, s store.Users) {
	id := ids(2)
	n := number()
	a := store.User{ID: id[0], PhoneNumber: n}
	b := store.User{ID: id[1], PhoneNumber: n}
	mustSet(t, s, a)
	mustSet(t, s, b)
	wantUser(t, s, a)
	wantUser(t, s, b)
	// Either may then verify it, not both.
	a.Verified = true
	mustSet(t, s, a)
	if err := s.Set(ctxT(t), store.User{ID: id[1], PhoneNumber: n, Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("second verify: err = %v, want ErrPhoneInUse", err)
	}
	wantUser(t, s, b)
}

func usersReVerify(t *testing.T, s store.Users) {
	u := store.User{ID: ids(1)[0], PhoneNumber: number(), Verified: true}
	mustSet(t, s, u)
	mustSet(t, s, u)
	wantUser(t, s, u)
	WantHolder(t, s, u.PhoneNumber, u.ID)
}

func usersReleased(t *testing.T, s store.Users) {
	id := ids(3)
	n := numbers(3)
	// Replaced by another verified number: the old one is free.
	mustSet(t, s, store.User{ID: id[0], PhoneNumber: n[0], Verified: true})
	mustSet(t, s, store.User{ID: id[0], PhoneNumber: n[1], Verified: true})
	WantHolder(t, s, n[0], "")
	mustSet(t, s, store.User{ID: id[1], PhoneNumber: n[0], Verified: true})
	WantHolder(t, s, n[0], id[1])
	// Removed: free too.
	mustSet(t, s, store.User{ID: id[1]})
	mustSet(t, s, store.User{ID: id[2], PhoneNumber: n[0], Verified: true})
	WantHolder(t, s, n[0], id[2])
}

func usersConcurrentSameNumber(t *testing.T, s store.Users) {
	const n = 20
	id := ids(n)
	num := number()
	ctx := ctxT(t)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Set(ctx, store.User{ID: id[i], PhoneNumber: num, Verified: true})
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != "" {
				t.Fatalf("both %s and %s verified the same number", winner, id[i])
			}
			winner = id[i]
		case !errors.Is(err, store.ErrPhoneInUse):
			t.Fatalf("writer %d: err = %v, want nil or ErrPhoneInUse", i, err)
		}
	}
	if winner == "" {
		t.Fatal("no writer succeeded")
	}
	WantHolder(t, s, num, winner)
	for _, u := range id {
		if u == winner {
			wantUser(t, s, store.User{ID: u, PhoneNumber: num, Verified: true})
		} else {
			wantUser(t, s, store.User{ID: u})
		}
	}
}

// usersConcurrentWriters checks that unrelated writes do not fail under
// contention (SQLITE_BUSY, serialization failures, …).
func usersConcurrentWriters(t *testing.T, s store.Users) {
	const n = 20
	id := ids(n)
	num := numbers(n)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u := store.User{ID: id[i], PhoneNumber: num[i]}
			if errs[i] = s.Set(ctx, u); errs[i] != nil {
				return
			}
			u.Verified = true
			if errs[i] = s.Set(ctx, u); errs[i] != nil {
				return
			}
			_, errs[i] = s.Get(ctx, u.ID)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		wantUser(t, s, store.User{ID: id[i], PhoneNumber: num[i], Verified: true})
	}
}
