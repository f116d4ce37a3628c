package caddymodule

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// Two phone handlers with the same cache settings share one pooled cache,
// but not their challenges: a code sent by one site's store is no code for
// the same user ID on another site.
func TestHandlersWithOtherStoresShareNoChallenges(t *testing.T) {
	site := func(db string) *Phone {
		path, _ := json.Marshal(filepath.Join(t.TempDir(), db))
		p := provisionPhone(t, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"sqlite","path":`+string(path)+`},
			"cache":{"max_size":67108864},"sms":[{"provider":"log"}]}`)
		return p
	}
	a, b := site("a.db"), site("b.db")
	if a.cache != b.cache {
		t.Fatal("the two handlers should share the pooled cache for this test to mean anything")
	}
	sink := withInstantSMS(t, b)
	withInstantSMS(t, a)
	tok, _ := mintToken(benchSecret, "alice", "HS256", "", "", time.Hour, time.Now())
	send := func(p *Phone, path, body string) int {
		rec := httptest.NewRecorder()
		r := caddyRequest("POST", path, body)
		r.Header.Set("Authorization", "Bearer "+tok)
		if err := p.ServeHTTP(rec, r, noopNext); err != nil {
			t.Fatal(err)
		}
		return rec.Code
	}
	if c := send(b, "/phone/update", `{"phone_number":"+33612345678"}`); c != 200 {
		t.Fatalf("update on b: %d", c)
	}
	code := sink.codes["+33612345678"]
	if c := send(a, "/phone/verify", `{"code":"`+code+`"}`); c != 409 {
		t.Fatalf("b's code on a: %d, want 409 no_pending_verification", c)
	}
	if c := send(b, "/phone/verify", `{"code":"`+code+`"}`); c != 200 {
		t.Fatalf("b's code on b: %d", c)
	}
}
