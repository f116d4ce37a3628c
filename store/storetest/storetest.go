// Package storetest is the conformance suite every store backend runs
// unchanged, so the rules in caddymodule/flow can rely on the same
// behaviour whichever backend the Caddyfile picks.
//
// The suite names its users, numbers and keys with a random part, so a
// backend whose open shares state between calls (one Redis, one
// PostgreSQL database) still sees each subtest alone.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

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

// TestCache runs the Cache conformance suite. open returns a ready cache
// and arranges its release with t.Cleanup.
func TestCache(t *testing.T, open func(t *testing.T) store.Cache) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, c store.Cache)
	}{
		{"GetMissing", cacheGetMissing},
		{"UpdateCreate", cacheCreate},
		{"UpdateModify", cacheModify},
		{"UpdateDelete", cacheUpdateDelete},
		{"UpdateError", cacheUpdateError},
		{"EmptyValue", cacheEmptyValue},
		{"NoAliasing", cacheNoAliasing},
		{"NonPositiveTTLDeletes", cacheNonPositiveTTL},
		{"TTL", cacheTTL},
		{"ConcurrentUpdates", cacheConcurrent},
		{"Delete", cacheDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t)
			if c == nil {
				t.Fatal("open returned a nil cache")
			}
			tc.fn(t, c)
		})
	}
}

// --- Users ---------------------------------------------------------------

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rnd() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
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

// --- Cache ---------------------------------------------------------------

func key(name string) string { return "storetest:" + rnd() + ":" + name }

func set(t *testing.T, c store.Cache, k, v string, ttl time.Duration) {
	t.Helper()
	err := c.Update(ctxT(t), k, func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte(v), ttl, nil
	})
	if err != nil {
		t.Fatalf("Update(%q): %v", k, err)
	}
}

func wantValue(t *testing.T, c store.Cache, k, want string) {
	t.Helper()
	got, err := c.Get(ctxT(t), k)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", k, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", k, got, want)
	}
}

func wantMissing(t *testing.T, c store.Cache, k string) {
	t.Helper()
	got, err := c.Get(ctxT(t), k)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", k, got, err)
	}
}

func cacheGetMissing(t *testing.T, c store.Cache) {
	wantMissing(t, c, key("missing"))
}

func cacheCreate(t *testing.T, c store.Cache) {
	k := key("create")
	called := false
	err := c.Update(ctxT(t), k, func(old []byte, found bool) ([]byte, time.Duration, error) {
		called = true
		if found || old != nil {
			t.Errorf("new key: old = %q, found = %v; want nil, false", old, found)
		}
		return []byte("v1"), time.Minute, nil
	})
	if err != nil || !called {
		t.Fatalf("Update: err = %v, called = %v", err, called)
	}
	wantValue(t, c, k, "v1")
}

func cacheModify(t *testing.T, c store.Cache) {
	k := key("modify")
	set(t, c, k, "v1", time.Minute)
	err := c.Update(ctxT(t), k, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if !found || string(old) != "v1" {
			t.Errorf("old = %q, found = %v; want v1, true", old, found)
		}
		return append(old, "+v2"...), time.Minute, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, c, k, "v1+v2")
}

func cacheUpdateDelete(t *testing.T, c store.Cache) {
	k := key("del")
	set(t, c, k, "v1", time.Minute)
	del := func([]byte, bool) ([]byte, time.Duration, error) { return nil, time.Minute, nil }
	if err := c.Update(ctxT(t), k, del); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
	// Deleting a missing entry through Update is fine too.
	if err := c.Update(ctxT(t), k, del); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
}

func cacheUpdateError(t *testing.T, c store.Cache) {
	boom := errors.New("boom")
	fail := func([]byte, bool) ([]byte, time.Duration, error) { return []byte("changed"), time.Minute, boom }
	k := key("err")
	set(t, c, k, "v1", time.Minute)
	if err := c.Update(ctxT(t), k, fail); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	wantValue(t, c, k, "v1")
	k2 := key("err-missing")
	if err := c.Update(ctxT(t), k2, fail); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	wantMissing(t, c, k2)
}

func cacheEmptyValue(t *testing.T, c store.Cache) {
	// An empty, non-nil value is a value, not a deletion.
	k := key("empty")
	set(t, c, k, "", time.Minute)
	wantValue(t, c, k, "")
}

func cacheNoAliasing(t *testing.T, c store.Cache) {
	k := key("alias")
	in := []byte("abc")
	err := c.Update(ctxT(t), k, func([]byte, bool) ([]byte, time.Duration, error) { return in, time.Minute, nil })
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	got, err := c.Get(ctxT(t), k)
	if err != nil {
		t.Fatal(err)
	}
	got[1] = 'Y'
	wantValue(t, c, k, "abc")
}

func cacheNonPositiveTTL(t *testing.T, c store.Cache) {
	// A ttl with no time left means the entry is already expired.
	for _, ttl := range []time.Duration{0, -time.Second} {
		k := key("ttl0")
		set(t, c, k, "v1", time.Minute)
		set(t, c, k, "v2", ttl)
		wantMissing(t, c, k)
	}
}

func cacheTTL(t *testing.T, c store.Cache) {
	// 1.1s and a whole-second margin: some backends count in seconds.
	const short = 1100 * time.Millisecond
	expiring, lasting, refreshed := key("expiring"), key("lasting"), key("refreshed")
	set(t, c, expiring, "e", short)
	set(t, c, lasting, "l", time.Minute)
	set(t, c, refreshed, "r1", short)
	set(t, c, refreshed, "r2", time.Minute) // a rewrite sets a new ttl
	wantValue(t, c, expiring, "e")
	time.Sleep(short + time.Second)
	wantMissing(t, c, expiring)
	wantValue(t, c, lasting, "l")
	wantValue(t, c, refreshed, "r2")
	err := c.Update(ctxT(t), expiring, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if found || old != nil {
			t.Errorf("expired entry: old = %q, found = %v; want nil, false", old, found)
		}
		return nil, 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cacheConcurrent(t *testing.T, c store.Cache) {
	const n = 50
	k := key("counter")
	ctx := ctxT(t)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		seen  = map[int]bool{}
	)
	for range n {
		wg.Go(func() {
			<-start
			err := c.Update(ctx, k, func(old []byte, found bool) ([]byte, time.Duration, error) {
				v := 0
				if found {
					var err error
					if v, err = strconv.Atoi(string(old)); err != nil {
						return nil, 0, err
					}
				}
				mu.Lock()
				dup := seen[v]
				seen[v] = true
				mu.Unlock()
				if dup {
					t.Errorf("two Updates saw the same old value %d", v)
				}
				return []byte(strconv.Itoa(v + 1)), time.Minute, nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	wantValue(t, c, k, strconv.Itoa(n))
}

func cacheDelete(t *testing.T, c store.Cache) {
	k := key("delete")
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	set(t, c, k, "v", time.Minute)
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
}
