package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

func TestCachedUsersConformance(t *testing.T) {
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		c, err := store.NewCachedUsers(store.NewMemoryUsers(), 2*time.Second, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}

// Peek serves a briefly stale copy of another writer's change, never of
// its own, and sees the other writer's change once the ttl has passed.
func TestCachedUsersStaleness(t *testing.T) {
	ctx := context.Background()
	backing := store.NewMemoryUsers()
	c, err := store.NewCachedUsers(backing, time.Second, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, store.User{ID: "u", PhoneNumber: "+33612345678", Verified: true}); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.Peek(ctx, "u"); u.PhoneNumber != "+33612345678" || !u.Verified {
		t.Fatalf("own write not seen: %+v", u)
	}
	// Another instance writes behind this one's back.
	if err := backing.Set(ctx, store.User{ID: "u", PhoneNumber: "+14155552671", Verified: true}); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.Peek(ctx, "u"); u.PhoneNumber != "+33612345678" {
		t.Fatalf("expected the cached copy within the ttl, got %+v", u)
	}
	if u, _ := c.Get(ctx, "u"); u.PhoneNumber != "+14155552671" {
		t.Fatalf("Get must read the store: %+v", u)
	}
	if err := backing.Set(ctx, store.User{ID: "u", PhoneNumber: "+447911123456", Verified: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if u, _ := c.Peek(ctx, "u"); u.PhoneNumber != "+447911123456" {
		t.Fatalf("stale past the ttl: %+v", u)
	}
}

// blockingUsers holds Get until released, so a test can slip a write in
// between a read of the store and the read cache remembering it.
type blockingUsers struct {
	store.Users
	entered, release chan struct{}
}

func (b *blockingUsers) Get(ctx context.Context, id string) (store.User, error) {
	u, err := b.Users.Get(ctx, id)
	if b.entered != nil {
		close(b.entered)
		<-b.release
		b.entered = nil
	}
	return u, err
}

// A read overtaken by a write must not put the old value back in the cache.
func TestCachedUsersOvertakenReadNotRemembered(t *testing.T) {
	ctx := context.Background()
	backing := &blockingUsers{Users: store.NewMemoryUsers()}
	c, err := store.NewCachedUsers(backing, time.Minute, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, store.User{ID: "u", PhoneNumber: "+33612345678", Verified: true}); err != nil {
		t.Fatal(err)
	}
	backing.entered, backing.release = make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Peek(ctx, "u") // a miss: reads the store, then blocks
	}()
	<-backing.entered
	if err := c.Set(ctx, store.User{ID: "u"}); err != nil { // removal overtakes the read
		t.Fatal(err)
	}
	close(backing.release)
	<-done
	if u, _ := c.Peek(ctx, "u"); u.PhoneNumber != "" {
		t.Fatalf("the removed number came back from the read cache: %+v", u)
	}
}
