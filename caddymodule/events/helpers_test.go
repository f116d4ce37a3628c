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
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

const secret = "events-secret-0123456789"

// delivery is one request the receiver got.
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

	mu     sync.Mutex
	got    []delivery
	answer func(id string, n int) int // n: requests so far, this one included
	hang   chan struct{}              // when set, requests wait for it (or their end)
	notify chan struct{}
}

func newReceiver(t *testing.T) *receiver { return newWrappedReceiver(t, nil) }

// newWrappedReceiver puts wrap in front of the receiver's own handler.
func newWrappedReceiver(t *testing.T, wrap func(http.Handler) http.Handler) *receiver {
	t.Helper()
	r := &receiver{t: t, notify: make(chan struct{}, 1000)}
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
	r.mu.Unlock()
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
	w.WriteHeader(status)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *receiver) setAnswer(f func(id string, n int) int) {
	r.mu.Lock()
	r.answer = f
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
func (r *receiver) waitDelivered(timeout time.Duration, ids ...string) {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		seen := map[string]bool{}
		for _, id := range r.delivered() {
			seen[id] = true
		}
		missing := 0
		for _, id := range ids {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("%d of %d events not delivered after %s; got %+v", missing, len(ids), timeout, r.all())
		}
	}
}

// fast is a dispatcher config for tests: short backoff and poll.
func fast(url string, o events.Outbox) events.Config {
	return events.Config{URL: url, Secret: []byte(secret), Outbox: o,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Poll: 10 * time.Millisecond}
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

type outboxErr string

func (e outboxErr) Error() string { return string(e) }

const errOutboxDown = outboxErr("fake outbox down")

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// eventually polls cond for up to timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
