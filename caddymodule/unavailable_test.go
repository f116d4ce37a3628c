package caddymodule

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// flakyUsers fails every call while down is set, as a store that lost its
// database would.
type flakyUsers struct {
	store.Users
	down atomic.Bool
}

func (f *flakyUsers) Get(ctx context.Context, id string) (store.User, error) {
	if f.down.Load() {
		return store.User{}, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return f.Users.Get(ctx, id)
}

func (f *flakyUsers) Set(ctx context.Context, u store.User) error {
	if f.down.Load() {
		return fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return f.Users.Set(ctx, u)
}

// A store outage during verify is 503 store_unavailable with Retry-After,
// and the same code works once the store is back.
func TestStoreUnavailableKeepsChallenge(t *testing.T) {
	p := provisionPhone(t, benchConfig)
	users := &flakyUsers{Users: store.NewMemoryUsers()}
	sink := &instantSink{codes: map[string]string{}}
	cfg, err := p.rules()
	if err != nil {
		t.Fatal(err)
	}
	p.service, err = flow.New(cfg, flow.Deps{Users: users, Cache: p.flowCache, Sender: sink, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := mintToken(benchSecret, "outage-user", "HS256", "", "", time.Hour, time.Now())
	call := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r := caddyRequest(method, path, body)
		r.Header.Set("Authorization", "Bearer "+tok)
		if err := p.ServeHTTP(rec, r, noopNext); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	if rec := call("POST", "/phone/update", `{"phone_number":"+33612345678"}`); rec.Code != 200 {
		t.Fatalf("update: %d %s", rec.Code, rec.Body)
	}
	code := sink.codes["+33612345678"]
	users.down.Store(true)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/phone/verify", `{"code":"` + code + `"}`},
		{"GET", "/phone", ""},
		{"POST", "/phone/update", `{"phone_number":"+33612345679"}`},
	} {
		rec := call(c.method, c.path, c.body)
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"error":"store_unavailable"`) {
			t.Fatalf("%s %s with the store down: %d %q %s", c.method, c.path, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	if len(sink.codes) != 1 {
		t.Fatal("an SMS went out while the store was down")
	}
	users.down.Store(false)
	if rec := call("POST", "/phone/verify", `{"code":"`+code+`"}`); rec.Code != 200 {
		t.Fatalf("verify after the outage: %d %s", rec.Code, rec.Body)
	}
}
