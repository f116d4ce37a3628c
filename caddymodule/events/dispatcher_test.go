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
	"sync"
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
	d := start(t, config(r.srv.URL, events.NewMemoryOutbox(), newClock()))
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
	r.waitDelivered("evt_1", "evt_2")
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

// Emit fills a missing id and time (the clock's); ids are unique.
func TestEmitFillsIDAndTime(t *testing.T) {
	r := newReceiver(t)
	clock := newClock()
	d := start(t, config(r.srv.URL, events.NewMemoryOutbox(), clock))
	for range 2 {
		if err := d.Emit(context.Background(), events.Event{Type: events.TypeUpdated, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	r.changed.wait(t, "two deliveries", func() bool { return len(r.delivered()) == 2 })
	ids := r.delivered()
	if ids[0] == ids[1] || !strings.HasPrefix(ids[0], "evt_") {
		t.Fatalf("ids %v", ids)
	}
	for _, g := range r.all() {
		var e events.Event
		if err := json.Unmarshal(g.Body, &e); err != nil || !e.OccurredAt.Equal(clock.Now()) {
			t.Fatalf("occurred_at of %s: %v; want %v", g.Body, err, clock.Now())
		}
	}
	if err := d.Emit(context.Background(), events.Event{UserID: "u"}); err == nil {
		t.Fatal("an event without a type was accepted")
	}
}

// Without a Clock the dispatcher runs on the real time.
func TestRealClockByDefault(t *testing.T) {
	r := newReceiver(t)
	d := start(t, config(r.srv.URL, events.NewMemoryOutbox(), nil))
	before := time.Now()
	if err := d.Emit(context.Background(), events.Event{Type: events.TypeUpdated, UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	r.changed.wait(t, "a delivery", func() bool { return len(r.delivered()) == 1 })
	var e events.Event
	if err := json.Unmarshal(r.all()[0].Body, &e); err != nil || e.OccurredAt.Before(before.Truncate(time.Millisecond)) ||
		e.OccurredAt.After(time.Now()) {
		t.Fatalf("occurred_at %v, %v; want the real time", e.OccurredAt, err)
	}
}

// Backoff doubles from MinBackoff and is capped at MaxBackoff; the id and
// the bytes sent never change across retries.
func TestBackoff(t *testing.T) {
	r := newReceiver(t)
	r.setAnswer(func(string, int) int { return http.StatusInternalServerError })
	clock := newClock()
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	cfg := config(r.srv.URL, ob, clock)
	cfg.MinBackoff, cfg.MaxBackoff = time.Second, 8*time.Second
	d := start(t, cfg)
	id := emit(t, d, 1)[0]
	wantWaits := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range wantWaits {
		c := ob.waitRetries(t, i+1)[i]
		idle(t, clock, 1)
		if c.ID != id || c.Attempts != i+1 || c.Next.Sub(clock.Now()) != w*time.Second {
			t.Fatalf("retry %d = %+v (in %s), want attempts %d in %ds", i, c, c.Next.Sub(clock.Now()), i+1, w)
		}
		// Not retried before its time, though the dispatcher polls until
		// a millisecond before it.
		clock.Advance(w*time.Second - time.Millisecond)
		idle(t, clock, 1)
		if n := len(ob.retryCalls()); n != i+1 {
			t.Fatalf("%d attempts before the backoff passed", n)
		}
		clock.Advance(testPoll) // the next poll finds it due
	}
	ob.waitRetries(t, len(wantWaits)+1)
	all := r.all()
	if len(all) != len(wantWaits)+1 {
		t.Fatalf("%d attempts, want %d", len(all), len(wantWaits)+1)
	}
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
	clock := newClock()
	ob := events.NewMemoryOutbox()
	cfg := config(r.srv.URL, ob, clock)
	cfg.MinBackoff, cfg.MaxBackoff = time.Second, time.Second
	d := start(t, cfg)
	ids := emit(t, d, 10)
	idle(t, clock, 1)
	for step := range 10 {
		if n := len(r.all()); n != step+1 {
			t.Fatalf("%d attempts after %d backoff steps of an outage, want %d", n, step, step+1)
		}
		clock.Advance(time.Second)
		idle(t, clock, 1)
	}
	down.Store(false)
	clock.Advance(time.Second)
	r.waitDelivered(ids...)
	if got := r.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want in order %v", got, ids)
	}
	idle(t, clock, 1)
	if ob.Len() != 0 {
		t.Fatalf("%d events left in the outbox", ob.Len())
	}
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
	clock := newClock()
	ob := events.NewMemoryOutbox()
	d := start(t, config(r.srv.URL, ob, clock))
	bad.Store("")
	first := newEvent(events.TypePending, "u", "+33612345678", "+447911123456")
	bad.Store(first.ID)
	if err := d.Emit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	rest := emit(t, d, 3)
	r.waitDelivered(rest...) // without the clock moving: nothing waited
	for n := int32(1); n <= 3; n++ {
		idle(t, clock, 1)
		if got := refusals.Load(); got != n {
			t.Fatalf("refused event tried %d times, want %d", got, n)
		}
		clock.Advance(testMaxBackoff)
	}
	r.waitDelivered(first.ID)
	if n := refusals.Load(); n != 4 {
		t.Fatalf("refused event tried %d times, want 4", n)
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
	clock := newClock()
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	cfg := config(srv.srv.URL, ob, clock)
	cfg.MinBackoff, cfg.MaxBackoff = time.Second, time.Hour
	d := start(t, cfg)
	emit(t, d, 1)
	if c := ob.waitRetries(t, 1)[0]; c.Next.Sub(clock.Now()) != 2*time.Minute {
		t.Fatalf("next attempt in %s, want 2m", c.Next.Sub(clock.Now()))
	}
}

// An outbox that refuses an event (its store is down) does not lose it:
// it waits in memory and is written and delivered once the outbox is back.
func TestOutboxOutageHoldsEvents(t *testing.T) {
	r := newReceiver(t)
	clock := newClock()
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	ob.setFailAdd(true)
	d := start(t, config(r.srv.URL, ob, clock))
	ids := emit(t, d, 3)
	idle(t, clock, 1)
	if n := len(r.all()); n != 0 {
		t.Fatalf("%d deliveries while the outbox refused the events", n)
	}
	ob.setFailAdd(false)
	clock.Advance(testPoll) // the worker writes them at its next poll
	r.waitDelivered(ids...)
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
	r.setHang(hang)
	clock := newClock()
	ob := events.NewMemoryOutbox()
	ob.Lease = time.Hour
	d1, err := events.NewDispatcher(config(r.srv.URL, ob, clock))
	if err != nil {
		t.Fatal(err)
	}
	d1.Start(context.Background())
	ids := emit(t, d1, 3)
	r.waitArrived(1) // the first attempt hangs
	d1.Close()
	r.setHang(nil)
	close(hang)
	start(t, config(r.srv.URL, ob, clock)) // the clock has not moved
	r.waitDelivered(ids...)
}

// Stopping the dispatcher through its context works like Close.
func TestStopByContext(t *testing.T) {
	r := newReceiver(t)
	clock := newClock()
	ob := events.NewMemoryOutbox()
	d, err := events.NewDispatcher(config(r.srv.URL, ob, clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	cancel()
	d.Close() // returns once the worker is gone
	emit(t, d, 1)
	if p := clock.Pending(); len(p) != 0 {
		t.Fatalf("timers %v pending after the worker stopped", p)
	}
	clock.Advance(time.Hour) // would wake a worker that was left behind
	if n := len(r.all()); n != 0 || ob.Len() != 1 {
		t.Fatalf("a stopped dispatcher delivered (%d) or lost (%d held) an event", n, ob.Len())
	}
}

// An event claimed by a dispatcher that died (no Delivered, no Retry) is
// sent again once its lease lapses.
func TestLeaseLapseRedelivers(t *testing.T) {
	r := newReceiver(t)
	clock := newClock()
	ob := events.NewMemoryOutbox()
	ob.Lease = 500 * time.Millisecond
	e := newEvent(events.TypeUpdated, "u", "+33612345678", "")
	if err := ob.Add(context.Background(), encoded(t, e)); err != nil {
		t.Fatal(err)
	}
	if got, _ := ob.Due(context.Background(), clock.Now(), 10); len(got) != 1 {
		t.Fatal("the event was not claimed")
	}
	start(t, config(r.srv.URL, ob, clock))
	idle(t, clock, 1)
	clock.Advance(ob.Lease - testPoll) // polled, still leased
	idle(t, clock, 1)
	if n := len(r.all()); n != 0 {
		t.Fatal("a leased event was sent before its lease lapsed")
	}
	clock.Advance(testPoll)
	r.waitDelivered(e.ID)
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
	clock := newClock()
	da := start(t, config(r.srv.URL, a, clock))
	db := start(t, config(r.srv.URL, b, clock))
	var ids []string
	for i := range 40 {
		d := da
		if i%2 == 1 {
			d = db
		}
		ids = append(ids, emit(t, d, 1)...)
	}
	r.waitDelivered(ids...)
	idle(t, clock, 2) // nothing more in flight
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
	clock := newClock()
	path := filepath.Join(t.TempDir(), "phone.db")
	s1, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	o1, err := s1.Outbox(context.Background(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := events.NewDispatcher(config(r.srv.URL, o1, clock))
	if err != nil {
		t.Fatal(err)
	}
	d1.Start(context.Background())
	ids := emit(t, d1, 5)
	idle(t, clock, 1)
	clock.Advance(time.Second) // a second failed attempt
	idle(t, clock, 1)
	if n := len(r.all()); n != 2 {
		t.Fatalf("%d failed attempts, want 2", n)
	}
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
	start(t, config(r.srv.URL, o2, clock))
	idle(t, clock, 1) // the retries are not due yet
	clock.Advance(testMaxBackoff)
	r.waitDelivered(ids...)
	if got := r.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want in order %v", got, ids)
	}
	idle(t, clock, 1)
	if n, err := o2.Len(context.Background()); err != nil || n != 0 {
		t.Fatalf("outbox holds %d events, %v; want none", n, err)
	}
}

// Deliveries are at least once: an answer lost in a timeout means the
// event is sent again, with the same id, and the receiver de-duplicates.
func TestTimeoutSendsAgainWithSameID(t *testing.T) {
	var calls atomic.Int32
	hung := make(chan struct{})
	r := newWrappedReceiver(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if calls.Add(1) == 1 {
				// The first answer never comes in time. (The body is read
				// so that the server notices the client hanging up.)
				_, _ = io.Copy(io.Discard, req.Body)
				close(hung)
				<-req.Context().Done()
				return
			}
			h.ServeHTTP(w, req)
		})
	})
	clock := newClock()
	ob := &recOutbox{Outbox: events.NewMemoryOutbox()}
	d := start(t, config(r.srv.URL, ob, clock))
	id := emit(t, d, 1)[0]
	closed(t, hung, "the first attempt")
	clock.Advance(testTimeout) // the attempt times out
	if c := ob.waitRetries(t, 1)[0]; c.ID != id || c.Attempts != 1 {
		t.Fatalf("retry %+v after the timeout", c)
	}
	idle(t, clock, 1)
	clock.Advance(time.Second)
	r.waitDelivered(id)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want a retry after the timeout", n)
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
		err := ob.Add(ctx, encoded(t, newEvent(events.TypeUpdated, "u", "+33612345678", "")))
		if (i < 2) != (err == nil) {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	e := newEvent(events.TypeUpdated, "u", "+33612345678", "")
	ob.Max = 10
	for range 2 { // the same id twice is one event
		if err := ob.Add(ctx, encoded(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	if ob.Len() != 3 {
		t.Fatalf("Len %d, want 3", ob.Len())
	}
}

// An event goes through an outbox as its encoded body and comes back
// decoded, byte for byte; a damaged body still comes back, to be posted
// as it is rather than lost.
func TestOutboxRoundTrip(t *testing.T) {
	for name, ob := range map[string]events.Outbox{
		"memory": events.NewMemoryOutbox(),
		"sqlite": sqliteOutbox(t, filepath.Join(t.TempDir(), "phone.db"), "s"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now().Truncate(time.Millisecond)
			e := events.Event{ID: events.NewID(), Type: events.TypeUpdated, UserID: "u1",
				PhoneNumber: "+33612345678", OccurredAt: now}
			add := encoded(t, e)
			if err := ob.Add(ctx, add); err != nil {
				t.Fatal(err)
			}
			damaged := store.OutboxEvent{ID: "evt_damaged", Body: []byte(`{"id":`)}
			if err := ob.Add(ctx, damaged); err != nil {
				t.Fatal(err)
			}
			rows, err := ob.Due(ctx, now, 10)
			if err != nil || len(rows) != 2 {
				t.Fatalf("Due = %+v, %v", rows, err)
			}
			p := events.Decode(rows[0])
			if !bytes.Equal(p.Body, add.Body) || p.Attempts != 0 || p.Event.ID != e.ID || p.Event.Type != e.Type ||
				!p.Event.OccurredAt.Equal(now) || p.Event.UserID != "u1" || p.Event.PhoneNumber != e.PhoneNumber {
				t.Fatalf("pending %+v, body %s", p, p.Body)
			}
			p = events.Decode(rows[1])
			if p.Event.ID != "evt_damaged" || !bytes.Equal(p.Body, damaged.Body) {
				t.Fatalf("damaged row decoded as %+v", p)
			}
		})
	}
}

// The default lease leaves room for an attempt at the default timeout;
// a timeout that leaves none is refused, rather than a dispatcher that
// would hand back every claim.
func TestLeaseFitsAnAttempt(t *testing.T) {
	ob := events.NewMemoryOutbox()
	if _, err := events.NewDispatcher(events.Config{URL: "http://127.0.0.1:1/", Outbox: ob}); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	_, err := events.NewDispatcher(events.Config{URL: "http://127.0.0.1:1/", Outbox: ob, Timeout: store.DefaultOutboxLease})
	if err == nil || !strings.Contains(err.Error(), "must fit in the outbox lease") {
		t.Fatalf("a timeout as long as the lease: err = %v", err)
	}
}

// claimRecorder is an outbox that remembers when each event was last
// claimed.
type claimRecorder struct {
	events.Outbox
	mu      sync.Mutex
	claimed map[string]time.Time
}

func (c *claimRecorder) Due(ctx context.Context, now time.Time, limit int) ([]store.OutboxRow, error) {
	rows, err := c.Outbox.Due(ctx, now, limit)
	c.mu.Lock()
	for _, r := range rows {
		c.claimed[r.ID] = now
	}
	c.mu.Unlock()
	return rows, err
}

func (c *claimRecorder) claimedAt(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claimed[id]
}

// An event is attempted only under a claim that outlives the attempt and
// its outbox write: a slow receiver makes the dispatcher claim the rest
// of a batch afresh rather than send under a claim that may lapse, when
// another instance would send the event too.
func TestAttemptsFitInTheirClaim(t *testing.T) {
	const lease, write = 40 * time.Second, 5 * time.Second // write: the dispatcher's bound on an outbox write
	r := newReceiver(t)
	clock := newClock()
	mem := events.NewMemoryOutbox()
	mem.Lease = lease
	ob := &claimRecorder{Outbox: mem, claimed: map[string]time.Time{}}
	r.setAnswer(func(id string, n int) int {
		if left := ob.claimedAt(id).Add(lease).Sub(clock.Now()); left < testTimeout+write {
			t.Errorf("event %d attempted with %s left of its claim; an attempt may take %s", n, left, testTimeout+write)
		}
		clock.Advance(10 * time.Second) // a slow receiver
		return http.StatusOK
	})
	cfg := config(r.srv.URL, ob, clock)
	cfg.Lease = lease
	d, err := events.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := emit(t, d, 3) // before Start: one claim takes all three
	d.Start(context.Background())
	t.Cleanup(func() { d.Close() })
	r.waitDelivered(ids...)
	if got := r.delivered(); len(got) != 3 {
		t.Fatalf("delivered %v, want each of %v once", got, ids)
	}
}
