package caddymodule

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
)

// footprintConfig is the heap measure's handler: the default cache
// (bigcache, max_size at its default), the memory store, the default
// per_number, per_user and verify limits. global and per_ip are off: every
// request of the measure comes from 127.0.0.1, and one counter rewritten
// by every update would only measure the rewrites (README, Sizing).
const footprintConfig = `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},
	"limits":{"global":{"count":0,"window":"1m"},"per_ip":{"count":0,"window":"1h"}},
	"sms":[{"provider":"log"}]}`

// dropSMS is a provider that sends nothing: the measure holds the state of
// open challenges, not the messages.
type dropSMS struct{}

func (dropSMS) Send(context.Context, sms.Message) error { return nil }

// maxHeapPerOpenChallenge is the gate of TestHeapPerOpenChallenge.
const maxHeapPerOpenChallenge = 600

// maxHeapTokensCached is its gate when every token is used twice, and so
// cached in full (PHONE_FOOTPRINT_TOKEN_USES=2).
const maxHeapTokensCached = 760

// TestHeapPerOpenChallenge opens n challenges through ServeHTTP, one user
// and one distinct token each (so every token is verified, and marked in
// the verified-token cache's admission table, which keeps a token's
// identity from its second use), and divides the heap in use after GC,
// measured before the handler was provisioned, by n: every byte the
// handler holds for them counts (the verified-token cache and its table,
// the challenge cache with its counters and cooldowns, the memory store's
// users, and what the caches allocated up front). The target is 600 bytes, so that a million open challenges fit
// in 600 MB. PHONE_FOOTPRINT_N changes n; PHONE_FOOTPRINT_PROFILE names a
// file for a heap profile of what is held; PHONE_FOOTPRINT_MAX_SIZE (bytes)
// the cache's max_size, for sizing; PHONE_FOOTPRINT_TOKEN_USES=2 uses each
// token a second time (GET /phone), which caches its identity.
func TestHeapPerOpenChallenge(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 100,000 challenges")
	}
	n := 100_000
	if s := os.Getenv("PHONE_FOOTPRINT_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	cfg := footprintConfig
	if size := os.Getenv("PHONE_FOOTPRINT_MAX_SIZE"); size != "" {
		// Sizing: which max_size holds n open challenges (README).
		cfg = strings.Replace(cfg, `"store":`, `"cache":{"max_size":`+size+`},"store":`, 1)
	}
	before, liveBefore := heapInUse()
	p := provisionPhone(t, cfg)
	rules, err := p.rules()
	if err != nil {
		t.Fatal(err)
	}
	p.service, err = flow.New(rules, flow.Deps{Users: p.users, Cache: p.flowCache, Sender: dropSMS{}, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	reuse := os.Getenv("PHONE_FOOTPRINT_TOKEN_USES") == "2"
	now := time.Now()
	for i := range n {
		// 36-character user IDs, the size of a UUID, and a token each.
		tok, err := mintToken(benchSecret, footprintUser(i), "HS256", "", "", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		r := caddyRequest("POST", "/phone/update", fmt.Sprintf(`{"phone_number":"+3361%07d"}`, i%10_000_000))
		r.Header.Set("Authorization", "Bearer "+tok)
		rec := &statusOnly{discard: discard{h: make(map[string][]string)}}
		_ = p.ServeHTTP(rec, r, noopNext)
		if rec.code != 200 {
			t.Fatalf("update %d: status %d", i, rec.code)
		}
		if reuse {
			// A second use of the token (GET /phone) caches it in full.
			r := caddyRequest("GET", "/phone", "")
			r.Header.Set("Authorization", "Bearer "+tok)
			rec := &statusOnly{discard: discard{h: make(map[string][]string)}}
			if _ = p.ServeHTTP(rec, r, noopNext); rec.code != 200 {
				t.Fatalf("GET %d: status %d", i, rec.code)
			}
		}
	}
	after, liveAfter := heapInUse()
	per := float64(after-before) / float64(n)
	t.Logf("%d open challenges with distinct tokens: %.0f bytes of heap in use each (%.0f of live objects)",
		n, per, float64(liveAfter-liveBefore)/float64(n))
	if path := os.Getenv("PHONE_FOOTPRINT_PROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	// The target: 600 bytes. Main measures about 570 (2,040
	// before issue 13; about 670 with every token used twice, README,
	// Performance).
	limit := maxHeapPerOpenChallenge
	if reuse {
		limit = maxHeapTokensCached
	}
	if sizing := n != 100_000 || os.Getenv("PHONE_FOOTPRINT_MAX_SIZE") != ""; sizing {
		return // the gates hold the measure: 100,000, max_size at its default
	}
	if per > float64(limit) {
		t.Errorf("%.0f bytes of heap per open challenge, want <= %d", per, limit)
	}
	runtime.KeepAlive(p)
}

func footprintUser(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-000000000000", i) }

// writeHeapProfile keeps a heap profile of what the handler holds, for
// `go tool pprof -sample_index=inuse_space`.
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

// statusOnly keeps the status code and drops the body.
type statusOnly struct {
	discard
	code int
}

func (s *statusOnly) WriteHeader(code int) { s.code = code }
func (s *statusOnly) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = 200
	}
	return len(b), nil
}

// heapInUse returns the heap in use after GC (spans holding any object)
// and the bytes of live objects in it.
func heapInUse() (inUse, live int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.HeapAlloc)
}
