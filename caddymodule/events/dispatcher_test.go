package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// The body has exactly the fields of SPEC §8 (numbers null when none,
// occurred_at RFC 3339 UTC), the Descope fields only when given, and it is
// signed so that sms.VerifySignature accepts it (the receiver checks).
func TestDeliveryBodyAndSignature(t *testing.T) {
	r := newReceiver(t)
	d := start(t, fast(r.srv.URL, events.NewMemoryOutbox()))
	at := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.FixedZone("CET", 3600))
	descope := []events.Attr{{Name: "add_to_login_ids", Value: json.RawMessage(`true`)},
		{Name: "on_merge_use_existing", Value: json.RawMessage(`false`)}}
	sent := []events.Event{
		{ID: "evt_1", Type: events.TypeVerified, UserID: "u1", PhoneNumber: "+447911123456",
			PreviousPhoneNumber: "+33612345678", OccurredAt: at, Attributes: descope},
		{ID: "evt_2", Type: events.TypeRemoved, UserID: "u1", PreviousPhoneNumber: "+447911123456", OccurredAt: at},
	}
	for _, e := range sent {
		if err := d.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	r.waitDelivered(5*time.Second, "evt_1", "evt_2")
	got := r.all()
	want := []string{
		`{"id":"evt_1","type":"phone.verified","user_id":"u1","phone_number":"+447911123456",` +
			`"previous_phone_number":"+33612345678","occurred_at":"2030-01-02T02:04:05.678Z",` +
			`"add_to_login_ids":true,"on_merge_use_existing":false}`,
		`{"id":"evt_2","type":"phone.removed","user_id":"u1","phone_number":null,` +
			`"previous_phone_number":"+447911123456","occurred_at":"2030-01-02T02:04:05.678Z"}`,
	}
	for i, w := range want {
		if string(got[i].Body) != w {
			t.Fatalf("body %d\n got %s\nwant %s", i, got[i].Body, w)
		}
		var back events.Event
		if err := json.Unmarshal(got[i].Body, &back); err != nil || back.ID != sent[i].ID ||
			!back.OccurredAt.Equal(at) || back.PhoneNumber != sent[i].PhoneNumber {
			t.Fatalf("decoded %+v, %v", back, err)
		}
	}
}

// Emit fills a missing id and time; ids are unique.
func TestEmitFillsIDAndTime(t *testing.T) {
	r := newReceiver(t)
	d := start(t, fast(r.srv.URL, events.NewMemoryOutbox()))
	for range 2 {
		if err := d.Emit(context.Background(), events.Event{Type: events.TypeUpdated, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "two deliveries", func() bool { return len(r.delivered()) == 2 })
	ids := r.delivered()
	if ids[0] == ids[1] || !strings.HasPrefix(ids[0], "evt_") {
		t.Fatalf("ids %v", ids)
	}
	for _, g := range r.all() {
		var e events.Event
		if err := json.Unmarshal(g.Body, &e); err != nil || time.Since(e.OccurredAt) > time.Minute {
			t.Fatalf("occurred_at of %s: %v", g.Body, err)
		}
	}
	if err := d.Emit(context.Background(), events.Event{UserID: "u"}); err == nil {
		t.Fatal("an event without a type was accepted")
	}
}

// Backoff doubles from MinBackoff and is capped at MaxBackoff; the id and
// the bytes sent never change across retries.
func TestBackoff(t *testing.T) {
	r := newReceiver(t)
	r.setAnswer(func(string, int) int { return http.StatusInternalServerError })
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	cfg := fast(r.srv.URL, ob)
	cfg.MinBackoff, cfg.MaxBackoff, cfg.Now = time.Second, 8*time.Second, clock.Now
	d := start(t, cfg)
	id := emit(t, d, 1)[0]
	wantWaits := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range wantWaits {
		eventually(t, 5*time.Second, "a retry", func() bool { return len(ob.retryCalls()) > i })
		c := ob.retryCalls()[i]
		if c.ID != id || c.Attempts != i+1 || c.Next.Sub(clock.Now()) != w*time.Second {
			t.Fatalf("retry %d = %+v (in %s), want attempts %d in %ds", i, c, c.Next.Sub(clock.Now()), i+1, w)
		}
		// Not retried before its time.
		time.Sleep(30 * time.Millisecond)
		if n := len(ob.retryCalls()); n != i+1 {
			t.Fatalf("%d attempts before the backoff passed", n)
		}
		clock.Advance(w * time.Second)
	}
	all := r.all()
	for _, g := range all {
		if g.ID != id || !bytes.Equal(g.Body, all[0].Body) {
			t.Fatalf("retries differ: %s vs %s", g.Body, all[0].Body)
		}
	}
}

// The receiver fails for a while, then recovers: every event arrives, in
// order; while it is down the dispatcher makes one attempt per backoff
// step, not one per event.
func TestOutageThenRecovery(t *testing.T) {
	r := newReceiver(t)
	var down atomic.Bool
	down.Store(true)
	r.setAnswer(func(string, int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	ob := events.NewMemoryOutbox()
	cfg := fast(r.srv.URL, ob)
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 50*time.Millisecond
	d := start(t, cfg)
	ids := emit(t, d, 10)
	time.Sleep(500 * time.Millisecond)
	failed := len(r.all())
	if failed == 0 || failed > 15 {
		// ~10 backoff steps of 50 ms: about one attempt each.
		t.Fatalf("%d attempts during a 500 ms outage, want about 10", failed)
	}
	down.Store(false)
	r.waitDelivered(5*time.Second, ids...)
	if got := r.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want in order %v", got, ids)
	}
	eventually(t, time.Second, "an empty outbox", func() bool { return ob.Len() == 0 })
}

// A 4xx refuses one event, not the receiver: the others go on, and the
// refused one is retried until it is taken.
func TestOneRefusedEventDoesNotHoldOthers(t *testing.T) {
	r := newReceiver(t)
	var bad atomic.Value
	var refusals atomic.Int32
	r.setAnswer(func(id string, _ int) int {
		if id == bad.Load() && refusals.Add(1) <= 3 {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	ob := events.NewMemoryOutbox()
	d := start(t, fast(r.srv.URL, ob))
	bad.Store("")
	first := newEvent(events.TypePending, "u", "+33612345678", "+447911123456")
	bad.Store(first.ID)
	if err := d.Emit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	rest := emit(t, d, 3)
	r.waitDelivered(5*time.Second, rest...)
	r.waitDelivered(5*time.Second, first.ID)
	if n := refusals.Load(); n < 4 {
		t.Fatalf("refused event tried %d times", n)
	}
}

// A receiver's Retry-After is honoured (within MaxBackoff).
func TestRetryAfter(t *testing.T) {
	srv := newWrappedReceiver(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			h.ServeHTTP(w, r)
		})
	})
	srv.setAnswer(func(string, int) int { return http.StatusTooManyRequests })
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	cfg := fast(srv.srv.URL, ob)
	cfg.MinBackoff, cfg.MaxBackoff, cfg.Now = time.Second, time.Hour, clock.Now
	d := start(t, cfg)
	emit(t, d, 1)
	eventually(t, 5*time.Second, "a retry", func() bool { return len(ob.retryCalls()) == 1 })
	if c := ob.retryCalls()[0]; c.Next.Sub(clock.Now()) != 2*time.Minute {
		t.Fatalf("next attempt in %s, want 2m", c.Next.Sub(clock.Now()))
	}
}

// An outbox that refuses an event (its store is down) does not lose it:
// it waits in memory and is written and delivered once the outbox is back.
func TestOutboxOutageHoldsEvents(t *testing.T) {
	r := newReceiver(t)
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	ob.setFailAdd(true)
	d := start(t, fast(r.srv.URL, ob))
	ids := emit(t, d, 3)
	time.Sleep(50 * time.Millisecond)
	if n := len(r.all()); n != 0 {
		t.Fatalf("%d deliveries while the outbox refused the events", n)
	}
	ob.setFailAdd(false)
	r.waitDelivered(5*time.Second, ids...)
	if got := r.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want %v", got, ids)
	}
}

// Close cuts an attempt in flight short and hands the claimed events back
// at once, so the next dispatcher (a reloaded config) sends them without
// waiting for the lease to lapse.
func TestCloseHandsBackClaims(t *testing.T) {
	r := newReceiver(t)
	hang := make(chan struct{})
	r.mu.Lock()
	r.hang = hang
	r.mu.Unlock()
	ob := events.NewMemoryOutbox()
	ob.Lease = time.Hour
	d1, err := events.NewDispatcher(fast(r.srv.URL, ob))
	if err != nil {
		t.Fatal(err)
	}
	d1.Start(context.Background())
	ids := emit(t, d1, 3)
	time.Sleep(50 * time.Millisecond) // the first attempt hangs
	d1.Close()
	r.mu.Lock()
	r.hang = nil
	r.mu.Unlock()
	close(hang)
	start(t, fast(r.srv.URL, ob))
	r.waitDelivered(5*time.Second, ids...)
}

// Stopping the dispatcher through its context works like Close.
func TestStopByContext(t *testing.T) {
	r := newReceiver(t)
	ob := events.NewMemoryOutbox()
	d, err := events.NewDispatcher(fast(r.srv.URL, ob))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	cancel()
	d.Close() // returns once the worker is gone
	emit(t, d, 1)
	time.Sleep(50 * time.Millisecond)
	if n := len(r.all()); n != 0 || ob.Len() != 1 {
		t.Fatalf("a stopped dispatcher delivered (%d) or lost (%d held) an event", n, ob.Len())
	}
}

// An event claimed by a dispatcher that died (no Delivered, no Retry) is
// sent again once its lease lapses.
func TestLeaseLapseRedelivers(t *testing.T) {
	r := newReceiver(t)
	ob := events.NewMemoryOutbox()
	ob.Lease = 500 * time.Millisecond
	e := newEvent(events.TypeUpdated, "u", "+33612345678", "")
	if err := ob.Add(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	claimed := time.Now()
	if got, _ := ob.Due(context.Background(), claimed, 10); len(got) != 1 {
		t.Fatal("the event was not claimed")
	}
	start(t, fast(r.srv.URL, ob))
	time.Sleep(100 * time.Millisecond)
	if n := len(r.all()); n != 0 && time.Since(claimed) < ob.Lease {
		t.Fatal("a leased event was sent before its lease lapsed")
	}
	r.waitDelivered(5*time.Second, e.ID)
}

// Two dispatchers over one outbox (configs overlapping in a reload) share
// the work without sending an event twice.
func TestTwoDispatchersShareAnOutbox(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		ob := events.NewMemoryOutbox()
		shareOutbox(t, ob, ob)
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "phone.db")
		// Two handles on one file, as two Caddy configs would have.
		shareOutbox(t, sqliteOutbox(t, path, "s"), sqliteOutbox(t, path, "s"))
	})
}

func shareOutbox(t *testing.T, a, b events.Outbox) {
	r := newReceiver(t)
	da := start(t, fast(r.srv.URL, a))
	db := start(t, fast(r.srv.URL, b))
	var ids []string
	for i := range 40 {
		d := da
		if i%2 == 1 {
			d = db
		}
		ids = append(ids, emit(t, d, 1)...)
	}
	r.waitDelivered(10*time.Second, ids...)
	time.Sleep(50 * time.Millisecond)
	got := r.delivered()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

func sqliteOutbox(t *testing.T, path, stream string) *store.SQLiteOutbox {
	t.Helper()
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

// A restart: events written to the sqlite outbox while the receiver was
// down are delivered by a new dispatcher over a reopened database.
func TestRestartOverSQLiteOutbox(t *testing.T) {
	r := newReceiver(t)
	var down atomic.Bool
	down.Store(true)
	r.setAnswer(func(string, int) int {
		if down.Load() {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	path := filepath.Join(t.TempDir(), "phone.db")
	s1, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	o1, err := s1.Outbox(context.Background(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := events.NewDispatcher(fast(r.srv.URL, o1))
	if err != nil {
		t.Fatal(err)
	}
	d1.Start(context.Background())
	ids := emit(t, d1, 5)
	eventually(t, 5*time.Second, "failed attempts", func() bool { return len(r.all()) >= 2 })
	d1.Close()
	s1.Close()
	if n := len(r.delivered()); n != 0 {
		t.Fatalf("%d delivered while the receiver was down", n)
	}

	down.Store(false)
	o2 := sqliteOutbox(t, path, "stream")
	if n, err := o2.Len(context.Background()); err != nil || n != 5 {
		t.Fatalf("outbox holds %d events after the restart, %v; want 5", n, err)
	}
	start(t, fast(r.srv.URL, o2))
	r.waitDelivered(5*time.Second, ids...)
	if got := r.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want in order %v", got, ids)
	}
	eventually(t, 5*time.Second, "an empty outbox", func() bool {
		n, _ := o2.Len(context.Background())
		return n == 0
	})
}

// Deliveries are at least once: an answer lost in a timeout means the
// event is sent again, with the same id, and the receiver de-duplicates.
func TestTimeoutSendsAgainWithSameID(t *testing.T) {
	var calls atomic.Int32
	r := newWrappedReceiver(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if calls.Add(1) == 1 {
				// The first answer never comes in time. (The body is read
				// so that the server notices the client hanging up.)
				_, _ = io.Copy(io.Discard, req.Body)
				<-req.Context().Done()
				return
			}
			h.ServeHTTP(w, req)
		})
	})
	cfg := fast(r.srv.URL, events.NewMemoryOutbox())
	cfg.Timeout = 100 * time.Millisecond
	d := start(t, cfg)
	id := emit(t, d, 1)[0]
	r.waitDelivered(5*time.Second, id)
	if calls.Load() < 2 {
		t.Fatalf("%d calls, want a retry after the timeout", calls.Load())
	}
}

func TestNewDispatcherChecksConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "/relative", "http://"} {
		if _, err := events.NewDispatcher(events.Config{URL: u, Outbox: events.NewMemoryOutbox()}); err == nil {
			t.Errorf("url %q accepted", u)
		}
	}
	if _, err := events.NewDispatcher(events.Config{URL: "http://127.0.0.1:1/x"}); err == nil {
		t.Error("no outbox accepted")
	}
}

// A memory outbox holds at most Max events and says so.
func TestMemoryOutboxFull(t *testing.T) {
	ob := events.NewMemoryOutbox()
	ob.Max = 2
	ctx := context.Background()
	for i := range 3 {
		err := ob.Add(ctx, newEvent(events.TypeUpdated, "u", "+33612345678", ""))
		if (i < 2) != (err == nil) {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	e := newEvent(events.TypeUpdated, "u", "+33612345678", "")
	ob.Max = 10
	for range 2 { // the same id twice is one event
		if err := ob.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if ob.Len() != 3 {
		t.Fatalf("Len %d, want 3", ob.Len())
	}
}
