package events_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

const secret = "events-secret-0123456789"

// The dispatchers under test run on a fake clock: they poll every
// testPoll and give an attempt testTimeout, in the clock's time, which
// moves only when a test advances it. Nothing in these tests waits for
// real time to pass: a test waits for what it expects (a request, a
// write to the outbox, a dispatcher gone idle) to happen.
const (
	testPoll    = 100 * time.Millisecond
	testTimeout = 20 * time.Second
	// testMaxBackoff caps the retries: advancing the clock by it makes
	// any retry due.
	testMaxBackoff = 8 * time.Second
	// guard fails a test whose awaited step never comes, rather than
	// letting it hang; a passing run never waits for it.
	guard = 10 * time.Second
)

func newClock() *fake.Clock { return fake.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

// config is a dispatcher config for tests: the fake clock, backoff from
// 1s to testMaxBackoff.
func config(url string, o events.Outbox, clock *fake.Clock) events.Config {
	cfg := events.Config{URL: url, Secret: []byte(secret), Outbox: o,
		MinBackoff: time.Second, MaxBackoff: testMaxBackoff, Poll: testPoll, Timeout: testTimeout}
	if clock != nil {
		cfg.Clock = clock
	}
	return cfg
}

// idle waits until n dispatchers on clock wait with nothing to do: a
// dispatcher's poll timer is pending exactly then (see Dispatcher.wait),
// so no attempt is in flight and no poke is unanswered.
func idle(t *testing.T, clock *fake.Clock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := clock.Wait(ctx, func() bool { return clock.PendingFor(testPoll) == n }); err != nil {
		t.Fatalf("%d dispatchers not idle; pending timers %v", n, clock.Pending())
	}
}

// closed waits until ch is closed.
func closed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// signal wakes the goroutines waiting on a state each time it changes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// wait blocks until cond holds, asking again at each notify.
func (s *signal) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.ch == nil {
			s.ch = make(chan struct{})
		}
		ch := s.ch
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// delivery is one request the receiver answered.
type delivery struct {
	ID     string
	Type   string
	Body   []byte
	Status int // what the receiver answered
}

// receiver is a test endpoint that checks each request's signature and
// answers with what answer says (200 by default).
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	got     []delivery
	arrived int                        // requests seen, answered or not
	answer  func(id string, n int) int // n: requests so far, this one included
	hang    chan struct{}              // when set, requests wait for it (or their end)
	changed signal
}

func newReceiver(t *testing.T) *receiver { return newWrappedReceiver(t, nil) }

// newWrappedReceiver puts wrap in front of the receiver's own handler.
func newWrappedReceiver(t *testing.T, wrap func(http.Handler) http.Handler) *receiver {
	t.Helper()
	r := &receiver{t: t}
	var h http.Handler = http.HandlerFunc(r.serve)
	if wrap != nil {
		h = wrap(h)
	}
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := sms.VerifySignature([]byte(secret), req.Header.Get(sms.SignatureHeader), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("receiver: bad signature: %v", err)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("receiver: Content-Type %q", ct)
	}
	if req.Method != http.MethodPost {
		r.t.Errorf("receiver: method %s", req.Method)
	}
	var e struct{ ID, Type string }
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("receiver: body not JSON: %s", body)
	}
	r.mu.Lock()
	hang := r.hang
	answer := r.answer
	n := len(r.got) + 1
	r.arrived++
	r.mu.Unlock()
	r.changed.notify()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
			return
		}
	}
	status := http.StatusOK
	if answer != nil {
		status = answer(e.ID, n)
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{ID: e.ID, Type: e.Type, Body: body, Status: status})
	r.mu.Unlock()
	r.changed.notify()
	w.WriteHeader(status)
}

func (r *receiver) setAnswer(f func(id string, n int) int) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) setHang(c chan struct{}) {
	r.mu.Lock()
	r.hang = c
	r.mu.Unlock()
}

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// delivered returns the ids answered 2xx, in order, with duplicates.
func (r *receiver) delivered() []string {
	var ids []string
	for _, d := range r.all() {
		if d.Status < 300 {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// waitDelivered waits until every id was answered 2xx at least once.
func (r *receiver) waitDelivered(ids ...string) {
	r.t.Helper()
	r.changed.wait(r.t, "deliveries", func() bool {
		seen := map[string]bool{}
		for _, id := range r.delivered() {
			seen[id] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	})
}

// waitArrived waits until n requests have reached the receiver.
func (r *receiver) waitArrived(n int) {
	r.t.Helper()
	r.changed.wait(r.t, "requests", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.arrived >= n
	})
}

func start(t *testing.T, cfg events.Config) *events.Dispatcher {
	t.Helper()
	d, err := events.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(func() { d.Close() })
	return d
}

func newEvent(typ, user, number, previous string) events.Event {
	return events.Event{ID: events.NewID(), Type: typ, UserID: user, PhoneNumber: number,
		PreviousPhoneNumber: previous, OccurredAt: time.Now()}
}

// emit emits n phone.updated events and returns their ids.
func emit(t *testing.T, d *events.Dispatcher, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		e := newEvent(events.TypeUpdated, "u", "+33612345678", "")
		ids[i] = e.ID
		if err := d.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// encoded is e as the dispatcher adds it to an outbox.
func encoded(t *testing.T, e events.Event) store.OutboxEvent {
	t.Helper()
	body, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return store.OutboxEvent{ID: e.ID, Body: body}
}

// recOutbox wraps an outbox and records the Retry calls.
type recOutbox struct {
	events.Outbox
	mu      sync.Mutex
	retries []retryCall
	failAdd bool
	adds    int
	changed signal
}

type retryCall struct {
	ID       string
	Attempts int
	Next     time.Time
}

func (o *recOutbox) Add(ctx context.Context, e store.OutboxEvent) error {
	o.mu.Lock()
	fail := o.failAdd
	o.adds++
	o.mu.Unlock()
	if fail {
		return errOutboxDown
	}
	return o.Outbox.Add(ctx, e)
}

func (o *recOutbox) Retry(ctx context.Context, id string, attempts int, next time.Time) error {
	o.mu.Lock()
	o.retries = append(o.retries, retryCall{id, attempts, next})
	o.mu.Unlock()
	o.changed.notify()
	return o.Outbox.Retry(ctx, id, attempts, next)
}

func (o *recOutbox) setFailAdd(v bool) {
	o.mu.Lock()
	o.failAdd = v
	o.mu.Unlock()
}

func (o *recOutbox) retryCalls() []retryCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]retryCall(nil), o.retries...)
}

// waitRetries waits until n Retry calls were made and returns them all.
func (o *recOutbox) waitRetries(t *testing.T, n int) []retryCall {
	t.Helper()
	o.changed.wait(t, "retries", func() bool { return len(o.retryCalls()) >= n })
	return o.retryCalls()
}

type outboxErr string

func (e outboxErr) Error() string { return string(e) }

const errOutboxDown = outboxErr("fake outbox down")
