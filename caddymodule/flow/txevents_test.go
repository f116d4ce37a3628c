package flow

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// testTxEvents is what the glue passes for a store with an outbox table.
// Emit counts its calls: the changes' events must not go through it.
type testTxEvents struct {
	*events.Dispatcher
	stream string
	emits  *atomic.Int32
}

func (t testTxEvents) Emit(ctx context.Context, e events.Event) error {
	t.emits.Add(1)
	return t.Dispatcher.Emit(ctx, e)
}

func (t testTxEvents) OutboxEvent(e events.Event) (store.OutboxEvent, error) {
	body, err := events.Encode(e)
	return store.OutboxEvent{ID: e.ID, Stream: t.stream, Body: body}, err
}

// txReceiver records the events posted to it.
type txReceiver struct {
	mu  sync.Mutex
	got []events.Event
}

func newTxReceiver(t *testing.T) (*txReceiver, string) {
	r := &txReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *txReceiver) wait(t *testing.T, n int) []events.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]events.Event(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events delivered, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With a store that writes events in its own transactions, a change's
// event is in the outbox when the call returns (written with the user,
// not by Emit afterwards), and the dispatcher delivers it as any other.
func TestTxEventsWrittenWithTheChange(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	users, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "phone.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	outbox, err := users.Outbox(ctx, "stream-1")
	if err != nil {
		t.Fatal(err)
	}
	rcv, url := newTxReceiver(t)
	var emits atomic.Int32
	// No polling to speak of: only Start and Poke make it deliver.
	d, err := events.NewDispatcher(events.Config{URL: url, Outbox: outbox, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	svc, err := New(h.cfg, Deps{Users: users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Events: testTxEvents{Dispatcher: d, stream: "stream-1", emits: &emits}})
	if err != nil {
		t.Fatal(err)
	}
	wantLen := func(n int) {
		t.Helper()
		if got, err := outbox.Len(ctx); err != nil || got != n {
			t.Fatalf("outbox holds %d events (%v), want %d", got, err, n)
		}
	}

	if _, err := svc.Update(ctx, UpdateRequest{UserID: "u1", PhoneNumber: numFR, Attributes: descopeAttrs(ptr(true), nil)}); err != nil {
		t.Fatal(err)
	}
	wantLen(1) // phone.updated, with the unverified number
	if _, err := svc.Verify(ctx, VerifyRequest{UserID: "u1", Code: h.sender.LastCode(t)}); err != nil {
		t.Fatal(err)
	}
	wantLen(2) // phone.verified, written with the verified number
	if u, err := users.Get(ctx, "u1"); err != nil || u.PhoneNumber != numFR || !u.Verified {
		t.Fatalf("user = %+v, %v", u, err)
	}

	d.Start(ctx)
	got := rcv.wait(t, 2)
	if got[0].Type != events.TypeUpdated || got[1].Type != events.TypeVerified ||
		got[1].UserID != "u1" || got[1].PhoneNumber != numFR || got[1].PreviousPhoneNumber != "" {
		t.Fatalf("delivered %+v", got)
	}
	// The attributes travel with the challenge into phone.verified.
	if !sameAttrs(got[1].Attributes, descopeAttrs(ptr(true), nil)) {
		t.Fatalf("phone.verified flags: %+v", got[1])
	}

	// A removal: written with the user, and Poke wakes the dispatcher
	// (it polls once an hour).
	if _, err := svc.Remove(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	got = rcv.wait(t, 3)
	if e := got[2]; e.Type != events.TypeRemoved || e.PhoneNumber != "" || e.PreviousPhoneNumber != numFR {
		t.Fatalf("phone.removed = %+v", e)
	}
	if n := emits.Load(); n != 0 {
		t.Fatalf("%d events went through Emit, want none", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := outbox.Len(ctx); n != 0; n, _ = outbox.Len(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d delivered events", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A store without an outbox table (none opened) answers ErrNoOutbox: the
// rules set, then emit, as before.
func TestTxEventsFallBackWithoutOutboxTable(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	users, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "phone.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	mem := events.NewMemoryOutbox()
	var emits atomic.Int32
	d, err := events.NewDispatcher(events.Config{URL: "http://127.0.0.1:1/", Outbox: mem})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(h.cfg, Deps{Users: users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Events: testTxEvents{Dispatcher: d, stream: "s", emits: &emits}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, UpdateRequest{UserID: "u1", PhoneNumber: numFR}); err != nil {
		t.Fatal(err)
	}
	if mem.Len() != 1 {
		t.Fatalf("memory outbox holds %d events, want 1 (emitted after the set)", mem.Len())
	}
	if n := emits.Load(); n != 1 {
		t.Fatalf("%d events went through Emit, want 1", n)
	}
	if u, err := users.Get(ctx, "u1"); err != nil || u.PhoneNumber != numFR {
		t.Fatalf("user = %+v, %v", u, err)
	}
}
