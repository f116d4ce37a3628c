package caddymodule

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// Every update spends the `global` counter, and every update from one
// address (a NAT, an office) its `per_ip` counter: one key each,
// rewritten by every request. On `cache bigcache` those rewrites used to
// fill their shard's admission budget, and then every update was refused
// with 503 until the life window passed (about ten thousand an hour at
// the default size, 247 at this one). They go to the cache's
// spill now: thousands of users' updates from one address all succeed.
func TestHotCountersDoNotFillTheCache(t *testing.T) {
	p := provisionPhone(t, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"memory"},
		"cache":{"max_size":16777216},"sms":[{"provider":"log"}],
		"limits":{"per_ip":{"count":1000000,"window":3600000000000},"global":{"count":1000000,"window":60000000000}}}`)
	for i := range 3000 {
		tok, _ := mintToken(benchSecret, fmt.Sprintf("hot-%d", i), "HS256", "", "", time.Hour, time.Now())
		r := caddyRequest("POST", "/phone/update", fmt.Sprintf(`{"phone_number":"+336123%05d"}`, i))
		r.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		if err := p.ServeHTTP(rec, r, noopNext); err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 {
			t.Fatalf("update %d: %d %s", i, rec.Code, rec.Body)
		}
	}
}
