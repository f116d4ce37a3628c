package bearer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
)

func TestCacheHitAndExpiry(t *testing.T) {
	cases := []struct {
		name   string
		leeway time.Duration
		exp    any // nil: no exp claim
		// steps: advance the clock, then expect a hit (same *Identity), a
		// miss that still verifies (new *Identity), or an expiry.
		steps []cacheStep
	}{
		{"exp soon", 0, t0.Add(2 * time.Minute).Unix(), []cacheStep{
			{time.Minute + 59*time.Second, hit}, {time.Second, expired},
		}},
		{"exp soon with leeway", 30 * time.Second, t0.Add(2 * time.Minute).Unix(), []cacheStep{
			{2*time.Minute + 10*time.Second, hit}, {20 * time.Second, expired},
		}},
		{"exp far: trusted 5 minutes", 0, t0.Add(24 * time.Hour).Unix(), []cacheStep{
			{4*time.Minute + 59*time.Second, hit}, {2 * time.Second, miss}, {time.Minute, hit},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := fake.NewClock(t0)
			v, err := New(t.Context(), Config{Secret: testSecret, Leeway: tc.leeway, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			h := "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, jwt.MapClaims{"exp": tc.exp}), nil)
			// The second verification caches (TestCacheAdmitsOnSecondUse).
			first, err := v.Verify(t.Context(), h)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := v.Verify(t.Context(), h)
			if err != nil || prev == first {
				t.Fatalf("second verification: %p (first %p), %v", prev, first, err)
			}
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				id, err := v.Verify(t.Context(), h)
				switch s.want {
				case hit:
					if err != nil || id != prev {
						t.Fatalf("step %d: want a cache hit, got %p (prev %p), %v", i, id, prev, err)
					}
				case miss:
					if err != nil || id == prev || id.UserID != "user-1" {
						t.Fatalf("step %d: want a fresh verify, got %p (prev %p), %v", i, id, prev, err)
					}
				case expired:
					if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "expired") {
						t.Fatalf("step %d: want expired, got %v", i, err)
					}
				}
				if id != nil {
					prev = id
				}
			}
		})
	}
}

type cacheOutcome int

const (
	hit cacheOutcome = iota
	miss
	expired
)

type cacheStep struct {
	advance time.Duration
	want    cacheOutcome
}

func TestCacheProjectFormIsCheckedFirst(t *testing.T) {
	v, err := New(t.Context(), Config{Secret: testSecret, ProjectID: "P2abc", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	jwtStr := mint(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, nil), nil)
	var id1 *Identity
	for range 2 { // cached from its second verification
		var err error
		if id1, err = v.Verify(t.Context(), "Bearer P2abc:"+jwtStr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(t.Context(), "Bearer P2abx:"+jwtStr); !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong project on a cached token: %v", err)
	}
	id2, err := v.Verify(t.Context(), "Bearer "+jwtStr)
	if err != nil || id2 != id1 {
		t.Fatalf("plain form of a cached token: %p %p %v", id1, id2, err)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newTokenCache(1000)
	id := &Identity{UserID: "u"}
	now := t0.UnixNano()
	putTwice := func(c *tokenCache, token string, id *Identity, now, until int64) {
		c.put(token, id, now, until) // marks it
		c.put(token, id, now, until) // admits it
	}
	for i := range 50_000 {
		putTwice(c, fmt.Sprintf("token-%d", i), id, now, now+int64(time.Minute))
	}
	if n := c.len(); n > 64*((1000+63)/64) || n == 0 {
		t.Fatalf("cache holds %d entries", n)
	}
	// Byte bound: large claims push entries out before the count does.
	c = newTokenCache(1_000_000)
	big := &Identity{UserID: "u", strs: string(pack(pack(nil, "pad"), strings.Repeat("x", MaxTokenBytes)))}
	for i := range 20_000 {
		putTwice(c, fmt.Sprint("token-", i), big, now, now+int64(time.Minute))
	}
	total := 0
	for i := range c.shards {
		total += c.shards[i].bytes
	}
	if total > cacheMaxBytes {
		t.Fatalf("cache holds %d bytes", total)
	}
	// Expired entries are swept when a shard fills up.
	c = newTokenCache(64)
	for i := range 64 * 4 {
		putTwice(c, fmt.Sprint("old", i), &Identity{UserID: "u"}, now, now+1)
	}
	later := now + 2*int64(time.Minute)
	for i := range 64 {
		putTwice(c, fmt.Sprint("new", i), &Identity{UserID: "u"}, later, later+int64(time.Minute))
	}
	hits := 0
	for i := range 64 {
		if c.get(fmt.Sprint("new", i), later) != nil {
			hits++
		}
	}
	if hits < 32 {
		t.Fatalf("only %d of 64 fresh entries survived", hits)
	}
}

// TestCacheAdmitsOnSecondUse: a token verified once is only marked, and
// no entry is kept; its second verification caches it, and the third is
// served from the cache. An entry whose trust ran out is re-admitted at
// the token's next verification; a mark that another token's first
// sighting overwrote delays the admission by one verification.
func TestCacheAdmitsOnSecondUse(t *testing.T) {
	clock := fake.NewClock(t0)
	v, err := New(t.Context(), Config{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, jwt.MapClaims{"exp": t0.Add(time.Hour).Unix()}), nil)
	verify := func() *Identity {
		t.Helper()
		id, err := v.Verify(t.Context(), h)
		if err != nil || id.UserID != "user-1" {
			t.Fatalf("verify: %v, %v", id, err)
		}
		return id
	}
	first := verify()
	if n := v.cache.len(); n != 0 {
		t.Fatalf("a token seen once left %d entries", n)
	}
	second := verify()
	if second == first || v.cache.len() != 1 {
		t.Fatal("the second use was served from the cache, or not cached")
	}
	if third := verify(); third != second {
		t.Fatal("the third use was verified again")
	}
	clock.Advance(6 * time.Minute) // past the 5 minutes of trust
	renewed := verify()
	if renewed == second || verify() != renewed {
		t.Fatal("an expired entry of a token in use was not re-admitted at once")
	}

	// Two tokens whose checks choose one mark: b's first sighting
	// overwrites a's mark.
	c := newTokenCache(100)
	_, checkA, _ := c.shard("a")
	b := ""
	for i := 0; b == ""; i++ {
		if _, check, _ := c.shard(fmt.Sprint("b", i)); check&(seenSlots-1) == checkA&(seenSlots-1) {
			b = fmt.Sprint("b", i)
		}
	}
	now, until := t0.UnixNano(), t0.Add(time.Minute).UnixNano()
	c.put("a", &Identity{UserID: "a"}, now, until)
	c.put(b, &Identity{UserID: "b"}, now, until)
	c.put("a", &Identity{UserID: "a"}, now, until)
	if c.get("a", now) != nil {
		t.Fatal("a was admitted though b overwrote its mark")
	}
	c.put("a", &Identity{UserID: "a"}, now, until)
	if id := c.get("a", now); id == nil || id.UserID != "a" {
		t.Fatalf("a, verified once more, was not admitted: %v", id)
	}
}

// TestCacheKeyIsTheWholeToken: the cache keeps a digest of the token, not
// the token, and a token that differs from a cached one in any byte (here
// its signature's last character, or one byte more) is verified afresh.
func TestCacheKeyIsTheWholeToken(t *testing.T) {
	v, err := New(t.Context(), Config{Secret: testSecret, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, nil), nil)
	for range 2 { // cached from its second verification
		if _, err := v.Verify(t.Context(), "Bearer "+tok); err != nil {
			t.Fatal(err)
		}
	}
	last := tok[len(tok)-1]
	other := byte('A')
	if last == 'A' {
		other = 'B'
	}
	for _, forged := range []string{tok[:len(tok)-1] + string(other), tok + "A", tok[:len(tok)-1]} {
		if id, err := v.Verify(t.Context(), "Bearer "+forged); err == nil {
			t.Fatalf("forged token %q accepted as %q", forged, id.UserID)
		}
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
	// Two tokens whose first 64 bits agree: the second 64 tell them apart.
	c := newTokenCache(100)
	k, check, s := c.shard("token-b")
	s.m[k] = cacheEntry{id: &Identity{UserID: "a", check: check ^ 1}, until: 1 << 62}
	if c.get("token-b", 0) != nil {
		t.Fatal("an entry with another check was returned for token-b")
	}
}

func TestVerifyConcurrent(t *testing.T) {
	clock := fake.NewClock(t0)
	v, err := New(t.Context(), Config{Secret: testSecret, Now: clock.Now, CacheEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := range 200 {
		tokens = append(tokens, "Bearer "+mint(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, jwt.MapClaims{"sub": fmt.Sprint("u", i)}), nil))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				j := (i*7 + g) % len(tokens)
				id, err := v.Verify(t.Context(), tokens[j])
				if err != nil || id.UserID != fmt.Sprint("u", j) {
					t.Errorf("token %d: %v %v", j, id, err)
					return
				}
				if i%500 == 0 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
}
