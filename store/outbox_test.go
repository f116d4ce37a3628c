package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// outboxHandles returns a function opening a new handle (its own
// connections, as another process or Caddy config would have) on one
// test's outbox storage, for a stream.
type outboxHandles func(t *testing.T) func(stream string) store.Outbox

func TestSQLiteOutbox(t *testing.T) {
	testOutbox(t, func(t *testing.T) func(string) store.Outbox {
		path := filepath.Join(t.TempDir(), "phone.db")
		return func(stream string) store.Outbox {
			s, err := store.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			o, err := s.Outbox(context.Background(), stream)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	})
}

func TestPostgresOutbox(t *testing.T) {
	testOutbox(t, func(t *testing.T) func(string) store.Outbox {
		e := newPgEnv(t, false)
		return func(stream string) store.Outbox {
			s := e.open(e.config(false))
			o, err := s.Outbox(pgCtx(t), e.schema, stream)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	})
}

// The outbox table lives beside the users table, created on first use;
// opening it again, or from several instances at once, is harmless.
func TestPostgresOutboxConcurrentCreate(t *testing.T) {
	e := newPgEnv(t, false)
	s := e.open(e.config(false))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := s.Outbox(pgCtx(t), e.schema, "s")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Outbox(pgCtx(t), "bad-schema", "s"); err == nil {
		t.Fatal("an invalid schema name was accepted")
	}
}

// testOutboxEvent is an event of user as a dispatcher would add it: the
// outbox holds its body without reading it.
func testOutboxEvent(stream, user string) store.OutboxEvent {
	id := fmt.Sprintf("evt_%016x", rand.Uint64())
	body := fmt.Sprintf(`{"id":%q,"type":"phone.updated","user_id":%q,"phone_number":"+33612345678"}`, id, user)
	return store.OutboxEvent{ID: id, Stream: stream, Body: []byte(body)}
}

func testOutbox(t *testing.T, handles outboxHandles) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	mk := func(user string) store.OutboxEvent {
		return testOutboxEvent("", user)
	}
	ids := func(rs []store.OutboxRow) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.ID
		}
		return out
	}
	due := func(t *testing.T, o store.Outbox, at time.Time, limit int, want ...string) []store.OutboxRow {
		t.Helper()
		got, err := o.Due(ctx, at, limit)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
			t.Fatalf("Due = %v, want %v", ids(got), want)
		}
		return got
	}

	t.Run("add claim deliver", func(t *testing.T) {
		o := handles(t)("s")
		e := mk("u1")
		for range 2 { // the same id twice is one event
			if err := o.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got := due(t, o, now, 10, e.ID)
		if string(got[0].Body) != string(e.Body) || got[0].Attempts != 0 {
			t.Fatalf("row %+v, body %s; want the body added, byte for byte", got[0], got[0].Body)
		}
		// Leased: not due again until the lease lapses.
		due(t, o, now, 10)
		due(t, o, now.Add(store.DefaultOutboxLease-time.Second), 10)
		due(t, o, now.Add(store.DefaultOutboxLease), 10, e.ID)
		if err := o.Delivered(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		due(t, o, now.Add(time.Hour), 10)
		if err := o.Delivered(ctx, e.ID); err != nil {
			t.Fatalf("Delivered twice: %v", err)
		}
		if err := o.Retry(ctx, e.ID, 1, now); err != nil {
			t.Fatalf("Retry of a delivered event: %v", err)
		}
		due(t, o, now.Add(time.Hour), 10)
		for _, bad := range []store.OutboxEvent{
			{ID: "evt_x"}, // no body
			{Body: e.Body},
			{ID: "evt_y", Stream: "another", Body: e.Body},
		} {
			if err := o.Add(ctx, bad); err == nil {
				t.Fatalf("Add(%+v) was accepted", bad)
			}
		}
		due(t, o, now.Add(time.Hour), 10)
	})

	t.Run("order limit retry", func(t *testing.T) {
		o := handles(t)("s")
		var all []string
		for i := range 5 {
			e := mk(fmt.Sprint("u", i))
			all = append(all, e.ID)
			if err := o.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		due(t, o, now, 2, all[0], all[1])
		due(t, o, now, 2, all[2], all[3])
		retryAt := now.Add(store.DefaultOutboxLease / 2) // while the others stay leased
		if err := o.Retry(ctx, all[1], 3, retryAt); err != nil {
			t.Fatal(err)
		}
		if err := o.Retry(ctx, all[0], 1, now); err != nil { // handed back at once
			t.Fatal(err)
		}
		due(t, o, now, 10, all[0], all[4])
		got := due(t, o, retryAt, 10, all[1])
		if got[0].Attempts != 3 {
			t.Fatalf("attempts %d, want 3", got[0].Attempts)
		}
		due(t, o, now, 0)
	})

	t.Run("streams", func(t *testing.T) {
		open := handles(t)
		a, b := open("a"), open("b")
		e := mk("u")
		if err := a.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		due(t, b, now, 10)
		if err := b.Delivered(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		due(t, a, now, 10, e.ID)
	})

	t.Run("survives reopening", func(t *testing.T) {
		open := handles(t)
		e := mk("u")
		if err := open("s").Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		due(t, open("s"), now, 10, e.ID)
	})

	// Many dispatchers claiming at once, through separate handles: each
	// event is handed to exactly one.
	t.Run("concurrent claims", func(t *testing.T) {
		open := handles(t)
		handles := []store.Outbox{open("s"), open("s"), open("s")}
		const n = 60
		for range n {
			if err := handles[0].Add(ctx, mk("u")); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		claimed := map[string]int{}
		var wg sync.WaitGroup
		for i := range 9 {
			o := handles[i%len(handles)]
			wg.Go(func() {
				for {
					got, err := o.Due(ctx, now, 4)
					if err != nil {
						if errors.Is(err, store.ErrUnavailable) {
							t.Error(err)
						}
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, r := range got {
						claimed[r.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != n {
			t.Fatalf("%d events claimed, want %d", len(claimed), n)
		}
		for id, c := range claimed {
			if c != 1 {
				t.Fatalf("%s claimed %d times", id, c)
			}
		}
	})
}
