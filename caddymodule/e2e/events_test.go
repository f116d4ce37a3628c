package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/sms"
)

const eventsSecret = "events-secret-0123456789"

// phoneEvent is a received event body.
type phoneEvent struct {
	ID                  string  `json:"id"`
	Type                string  `json:"type"`
	UserID              string  `json:"user_id"`
	PhoneNumber         *string `json:"phone_number"`
	PreviousPhoneNumber *string `json:"previous_phone_number"`
	OccurredAt          string  `json:"occurred_at"`
	// Channel is how the change's code went; absent when none was sent.
	Channel string `json:"channel"`
}

// eventReceiver is the legacy app's events endpoint: it checks the
// signature and the body of SPEC §8, and answers 500 while told to fail.
type eventReceiver struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	accepted []phoneEvent // answered 2xx, in arrival order, duplicates kept
	refused  []phoneEvent // answered 500
	fail     bool
}

func newEventReceiver(t *testing.T) *eventReceiver {
	r := &eventReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *eventReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := sms.VerifySignature([]byte(eventsSecret), req.Header.Get("X-Phone-Signature"), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("events: bad signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" || req.Method != http.MethodPost {
		r.t.Errorf("events: %s with Content-Type %q", req.Method, ct)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		r.t.Errorf("events: body not JSON: %s", body)
	}
	want := []string{"id", "type", "user_id", "phone_number", "previous_phone_number", "occurred_at"}
	for _, k := range want {
		if _, ok := fields[k]; !ok {
			r.t.Errorf("events: body lacks %q: %s", k, body)
		}
	}
	n := len(want)
	if ch, ok := fields["channel"]; ok { // how the code of the change went, when one did
		n++
		if c := string(ch); c != `"sms"` && c != `"whatsapp"` && c != `"voice"` {
			r.t.Errorf("events: channel %s", ch)
		}
	}
	if len(fields) != n { // no Descope fields on the user API, no code ever
		r.t.Errorf("events: unexpected fields: %s", body)
	}
	var e phoneEvent
	_ = json.Unmarshal(body, &e)
	if at, err := time.Parse(time.RFC3339, e.OccurredAt); err != nil || !strings.HasSuffix(e.OccurredAt, "Z") ||
		time.Since(at) > time.Minute {
		r.t.Errorf("events: occurred_at %q", e.OccurredAt)
	}
	r.mu.Lock()
	fail := r.fail
	if fail {
		r.refused = append(r.refused, e)
	} else {
		r.accepted = append(r.accepted, e)
	}
	r.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *eventReceiver) setFail(v bool) {
	r.mu.Lock()
	r.fail = v
	r.mu.Unlock()
}

func (r *eventReceiver) refusedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.refused)
}

// forUser returns the events accepted for user, in order, once per id.
func (r *eventReceiver) forUser(user string) []phoneEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []phoneEvent
	seen := map[string]bool{}
	for _, e := range r.accepted {
		if e.UserID == user && !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until n distinct events of user were accepted.
func (r *eventReceiver) waitFor(user string, n int, timeout time.Duration) []phoneEvent {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.forUser(user)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d events of %s after %s, want %d: %+v", len(got), user, timeout, n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// line is the `events` directive for this receiver.
func (r *eventReceiver) line() string {
	return "events " + r.srv.URL + "/hooks/phone {\n\t\t\tsecret " + eventsSecret + "\n\t\t}"
}

// wantEvent checks one event; previous "" means null.
func wantEvent(t *testing.T, e phoneEvent, typ, user, number, previous string) {
	t.Helper()
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	wantPrev := previous
	if previous == "" {
		wantPrev = "<null>"
	}
	if e.Type != typ || e.UserID != user || str(e.PhoneNumber) != number || str(e.PreviousPhoneNumber) != wantPrev ||
		!strings.HasPrefix(e.ID, "evt_") {
		t.Fatalf("event %+v (number %s, previous %s), want %s %s %s previous %s",
			e, str(e.PhoneNumber), str(e.PreviousPhoneNumber), typ, user, number, wantPrev)
	}
}

// A first number, its verification, a change of the verified number and
// its verification tell the app phone.updated, phone.verified,
// phone.pending and phone.verified (with the number replaced), signed, in
// order; notify_previous texts the old number, with no code.
func TestEventsThroughAFlow(t *testing.T) {
	rcv := newEventReceiver(t)
	e := newEnv(t, site{phone: rcv.line() + "\nnotify_previous"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	const first, second = "+33612345678", "+447911123456"

	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": first}).want(t, 200, "")
	codes := []string{e.sink.last(u).Code}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": codes[0]}).want(t, 200, "")
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": second}).want(t, 202, "")
	codes = append(codes, e.sink.last(u).Code)
	e.do("POST", "/phone/verify", tok, map[string]any{"code": codes[1]}).want(t, 200, "")

	got := rcv.waitFor(u, 4, 10*time.Second)
	wantEvent(t, got[0], "phone.updated", u, first, "")
	wantEvent(t, got[1], "phone.verified", u, first, "")
	wantEvent(t, got[2], "phone.pending", u, second, first)
	wantEvent(t, got[3], "phone.verified", u, second, first)
	ids := map[string]bool{}
	for _, ev := range got {
		if ev.Channel != "sms" { // each change here sent a code by SMS
			t.Fatalf("event %+v: channel %q, want sms", ev, ev.Channel)
		}
		ids[ev.ID] = true
		raw, _ := json.Marshal(ev)
		for _, c := range codes {
			if strings.Contains(string(raw), c) {
				t.Fatalf("an event carries a code: %s", raw)
			}
		}
	}
	if len(ids) != 4 {
		t.Fatalf("event ids are not unique: %+v", got)
	}

	n := e.sink.last(u)
	if n.To != first || n.Purpose != "notify" || n.Code != "" || !strings.Contains(n.Body, "phone number was changed") {
		t.Fatalf("notify_previous SMS: %+v", n)
	}
	if c := e.sink.count(u); c != 3 {
		t.Fatalf("%d SMS, want 3 (two codes, one notice)", c)
	}
	time.Sleep(300 * time.Millisecond)
	if extra := rcv.forUser(u); len(extra) != 4 {
		t.Fatalf("%d events, want 4: %+v", len(extra), extra)
	}
}

// The receiver answers 500 for a while: the events wait, are retried
// with the same ids, and all arrive once it recovers. The user's requests
// never notice.
func TestEventsReceiverOutage(t *testing.T) {
	rcv := newEventReceiver(t)
	rcv.setFail(true)
	e := newEnv(t, site{phone: rcv.line()})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	verifyNumber(t, e, u, tok, "+14155552671")

	waitUntil(t, 10*time.Second, "two refused attempts", func() bool { return rcv.refusedCount() >= 2 })
	rcv.setFail(false)
	got := rcv.waitFor(u, 2, 15*time.Second)
	wantEvent(t, got[0], "phone.updated", u, "+14155552671", "")
	wantEvent(t, got[1], "phone.verified", u, "+14155552671", "")
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, r := range rcv.refused {
		if r.ID != got[0].ID && r.ID != got[1].ID {
			t.Fatalf("a retry carried another id: %+v", r)
		}
	}
}

// Events not delivered when Caddy stops are kept in the sqlite store's
// outbox and delivered once it runs again, even with the receiver still
// down at first.
func TestEventsSurviveRestart(t *testing.T) {
	rcv := newEventReceiver(t)
	rcv.setFail(true)
	dbPath := t.TempDir() + "/phone.db"
	s := site{phone: rcv.line(), store: "store sqlite " + dbPath}
	e := newEnv(t, s)
	u := uniqueUser(t, "u")
	tok := token(t, u)
	verifyNumber(t, e, u, tok, "+14155552671")
	waitUntil(t, 10*time.Second, "a refused attempt", func() bool { return rcv.refusedCount() >= 1 })

	// "Stop" the module: a config without it.
	e.tester.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1s
}
:%d {
	respond "down for maintenance"
}
`, adminPort, httpPort, httpsPort, httpPort), "caddyfile")
	if n := outboxRows(t, dbPath); n != 2 {
		t.Fatalf("%d events in the sqlite outbox while stopped, want 2", n)
	}
	refused := rcv.refusedCount()
	time.Sleep(1500 * time.Millisecond)
	if rcv.refusedCount() != refused {
		t.Fatal("events were sent while the module was not loaded")
	}

	// Back, with the receiver still down at first.
	e.load(s)
	waitUntil(t, 10*time.Second, "a refused attempt after the restart", func() bool { return rcv.refusedCount() > refused })
	rcv.setFail(false)
	got := rcv.waitFor(u, 2, 15*time.Second)
	wantEvent(t, got[0], "phone.updated", u, "+14155552671", "")
	wantEvent(t, got[1], "phone.verified", u, "+14155552671", "")
	waitUntil(t, 5*time.Second, "an empty outbox", func() bool { return outboxRows(t, dbPath) == 0 })
}

// outboxRows counts the events waiting in a sqlite store's outbox.
func outboxRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM phone_events_outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The same flows on the other stores: postgres keeps its outbox in a
// table of the database, the http store in memory.
func TestEventsOnOtherStores(t *testing.T) {
	old := defaultStore
	defer func() { defaultStore = old }()
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresDSN(t)
		defaultStore = func(t *testing.T) string {
			return fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t}", dsn, newSchema(t, dsn))
		}
		t.Run("flow", TestEventsThroughAFlow)
		t.Run("outage", TestEventsReceiverOutage)
	})
	t.Run("http", func(t *testing.T) {
		defaultStore = func(t *testing.T) string {
			app := newUserAPI(t)
			return fmt.Sprintf("store http %s {\n\t\t\theader Authorization \"Bearer legacy-token\"\n\t\t}", app.srv.URL)
		}
		t.Run("flow", TestEventsThroughAFlow)
		t.Run("outage", TestEventsReceiverOutage)
	})
}
