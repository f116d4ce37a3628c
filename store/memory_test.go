package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

func TestMemoryUsers(t *testing.T) {
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		s := store.NewMemoryUsers()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestMemoryUsersPackedNumbers: the memory store packs E.164 numbers in
// 8 bytes and keeps any other string as it is; both read back exactly,
// verified or not.
func TestMemoryUsersPackedNumbers(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemoryUsers()
	for i, number := range []string{"+33612345678", "+1", "+999999999999999", "+0123", "+1234567890123456", "+33 6", "abc", "+"} {
		for _, verified := range []bool{false, true} {
			id := fmt.Sprintf("u%d-%t", i, verified)
			if err := m.Set(ctx, store.User{ID: id, PhoneNumber: number, Verified: verified}); err != nil {
				t.Fatal(err)
			}
			got, err := m.Get(ctx, id)
			if want := (store.User{ID: id, PhoneNumber: number, Verified: verified}); err != nil || got != want {
				t.Errorf("Set then Get %q: %+v, %v; want %+v", number, got, err, want)
			}
		}
	}
	// A user moved from an odd number to a packed one and back keeps one.
	for _, number := range []string{"abc", "+33612345678", "abc", ""} {
		if err := m.Set(ctx, store.User{ID: "mover", PhoneNumber: number}); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Get(ctx, "mover"); got.PhoneNumber != number {
			t.Fatalf("after moving to %q: %+v", number, got)
		}
	}
}
