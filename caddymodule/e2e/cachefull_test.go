package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestCacheFullRefusesNotForgets is SPEC §9 through Caddy: with
// `cache bigcache { max_size 1MiB }`, a flood of other users' updates fills
// the cache; the writes that do not fit get 503 store_unavailable with
// Retry-After, and the spent `per_number 1 1h` counter and the victim's
// open challenge survive: the limited number gets no second SMS, and the
// victim's code still verifies.
func TestCacheFullRefusesNotForgets(t *testing.T) {
	e := newEnv(t, site{
		cache: "cache bigcache {\n\t\t\tmax_size 1MiB\n\t\t}",
		phone: "limits {\n per_number 1 1h\n per_user 10 1h\n per_ip 1000000 1h\n global 1000000 1m\n}",
	})
	const limited = "+14155552671"
	victim := uniqueUser(t, "victim")
	vtok := token(t, victim)
	e.do("POST", "/phone/update", vtok, map[string]any{"phone_number": limited}).want(t, 200, "")
	code := e.sink.last(victim).Code

	// Other users, long IDs, each to a number of their own.
	pad := strings.Repeat("x", 80)
	ok, full := 0, 0
	for i := 0; i < 12_000 && full < 50; i++ {
		u := fmt.Sprintf("%s-%s-%d", t.Name(), pad, i)
		r := e.do("POST", "/phone/update", token(t, u), map[string]any{"phone_number": fmt.Sprintf("+3361%07d", i)})
		switch r.status {
		case 200:
			ok++
		case 503:
			r.want(t, 503, "store_unavailable")
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("503 without a Retry-After: %q", r.header.Get("Retry-After"))
			}
			full++
		default:
			t.Fatalf("flood update %d: status %d, body %s", i, r.status, r.raw)
		}
	}
	t.Logf("flood: %d updates accepted, then %d refused with 503", ok, full)
	if full == 0 {
		t.Fatalf("%d updates into a 1MiB cache, none refused", ok)
	}

	// The spent per_number counter is still there: no second SMS.
	other := uniqueUser(t, "other")
	r := e.do("POST", "/phone/update", token(t, other), map[string]any{"phone_number": limited})
	if r.status == 200 {
		t.Fatalf("the limited number was sent a second code inside its window: %s", r.raw)
	}
	if n := e.sink.countTo(limited); n != 1 {
		t.Fatalf("%d SMS to the limited number, want 1", n)
	}
	// The victim's open challenge is still there.
	e.do("POST", "/phone/verify", vtok, map[string]any{"code": code}).want(t, 200, "")
}

// countTo is the number of messages sent to a number.
func (s *smsSink) countTo(number string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.To == number {
			n++
		}
	}
	return n
}
