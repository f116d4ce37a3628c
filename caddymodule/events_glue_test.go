package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

const glueEventsSecret = "glue-events-secret-0123"

// glueReceiver collects the ids of accepted events; it answers 503 while
// down is set.
type glueReceiver struct {
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  []events.Event
}

func newGlueReceiver(t *testing.T) *glueReceiver {
	r := &glueReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := sms.VerifySignature([]byte(glueEventsSecret), req.Header.Get(sms.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		if r.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *glueReceiver) events() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.got...)
}

func eventsConfig(url string) string {
	return `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},
		"cache":{"max_size":67108864},"sms":[{"provider":"log"}],
		"events":{"url":"` + url + `","secret":"` + glueEventsSecret + `"}}`
}

// provisionOwned is provisionPhone whose Cleanup the test calls itself.
func provisionOwned(t *testing.T, cfg string) (*Phone, func()) {
	t.Helper()
	var p Phone
	if err := json.Unmarshal([]byte(cfg), &p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := p.Provision(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = p.Cleanup(); cancel() }) }
	t.Cleanup(stop)
	return &p, stop
}

// A store without an outbox table keeps events in a memory outbox that
// outlives a reload: events the old config could not deliver are
// delivered by the new one. It goes when no config posts there any more.
func TestEventsMemoryOutboxSurvivesReload(t *testing.T) {
	rcv := newGlueReceiver(t)
	rcv.down.Store(true)
	url := rcv.srv.URL + "/hooks"
	old, stopOld := provisionOwned(t, eventsConfig(url))
	user := "glue-" + t.Name()
	tok, _ := mintToken(benchSecret, user, "HS256", "", "", time.Hour, time.Now())
	r := caddyRequest("POST", "/phone/update", `{"phone_number":"+33612345678"}`)
	r.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	if err := old.ServeHTTP(rec, r, noopNext); err != nil || rec.Code != 200 {
		t.Fatalf("update: %v %d %s", err, rec.Code, rec.Body)
	}
	key := old.eventsRT.poolKey
	if key == "" {
		t.Fatal("the memory store got no pooled outbox")
	}

	_, stopNew := provisionOwned(t, eventsConfig(url)) // the reload: new first, then the old one goes
	stopOld()
	if n, ok := memoryOutboxes.References(key); !ok || n != 1 {
		t.Fatalf("pooled outbox references = %d, %v; want 1", n, ok)
	}
	rcv.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for len(rcv.events()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not delivered after the reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e := rcv.events()[0]; e.Type != events.TypeUpdated || e.UserID != user || e.PhoneNumber != "+33612345678" {
		t.Fatalf("event %+v", e)
	}
	stopNew()
	if _, ok := memoryOutboxes.References(key); ok {
		t.Fatal("the pooled outbox outlived its last config")
	}
}

// A bad events URL fails provisioning, naming the field, and leaks
// nothing.
func TestEventsBadURL(t *testing.T) {
	for _, u := range []string{"ftp://example.com/x", "not a url", "/relative"} {
		var p Phone
		if err := json.Unmarshal([]byte(eventsConfig(u)), &p); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := p.Provision(ctx)
		_ = p.Cleanup()
		cancel()
		if err == nil || !strings.Contains(err.Error(), "events") {
			t.Fatalf("url %q: %v", u, err)
		}
		if p.eventsRT != nil {
			t.Fatal("a failed provision left events running")
		}
	}
	memoryOutboxes.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), "events/") {
			t.Errorf("pooled outbox %v leaked", k)
		}
		return true
	})
}

// With the sqlite store, the events go in the store's outbox table in the
// transaction of the change: the store chain (read cache, metrics) passes
// SetWithEvent through, and the dispatcher delivers what it wrote.
func TestEventsSQLiteWrittenWithTheChange(t *testing.T) {
	rcv := newGlueReceiver(t)
	path, _ := json.Marshal(filepath.Join(t.TempDir(), "phone.db"))
	cfg := strings.Replace(eventsConfig(rcv.srv.URL+"/hooks"), `{"backend":"memory"}`,
		`{"backend":"sqlite","path":`+string(path)+`}`, 1)
	p, _ := provisionOwned(t, cfg)
	user := "glue-" + t.Name()
	tok, _ := mintToken(benchSecret, user, "HS256", "", "", time.Hour, time.Now())
	r := caddyRequest("POST", "/phone/update", `{"phone_number":"+33612345678"}`)
	r.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	if err := p.ServeHTTP(rec, r, noopNext); err != nil || rec.Code != 200 {
		t.Fatalf("update: %v %d %s", err, rec.Code, rec.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rcv.events()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e := rcv.events()[0]; e.Type != events.TypeUpdated || e.UserID != user || e.PhoneNumber != "+33612345678" {
		t.Fatalf("event %+v", e)
	}
	// The store as the rules see it writes the event with the user.
	es, ok := p.users.(store.EventSetter)
	if !ok {
		t.Fatal("the store chain is no EventSetter")
	}
	e := events.Event{ID: events.NewID(), Type: events.TypeRemoved, UserID: user, OccurredAt: time.Now()}
	body, _ := events.Encode(e)
	if err := es.SetWithEvent(context.Background(), store.User{ID: user},
		store.OutboxEvent{ID: e.ID, Stream: "another-receiver", Body: body}); err != nil {
		t.Fatalf("SetWithEvent through the store chain: %v", err)
	}
}
