package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// twoInstances starts two Caddy "instances" (two sites of one Caddy, on
// httpPort and the port it returns) that share Redis and PostgreSQL and
// nothing else: they reach Redis by different addresses, so they hold
// separate clients, separate pooled caches and separate read caches.
func twoInstances(t *testing.T) (call func(port int, method, path, tok string, body any) response, second int, sink *smsSink) {
	dsn, url := postgresDSN(t), redisURL(t)
	schema := newSchema(t, dsn)
	prefix := newRedisPrefix(t, url)
	otherURL := strings.Replace(url, "127.0.0.1", "localhost", 1)
	if otherURL == url {
		t.Fatalf("PHONE_TEST_REDIS_URL %q must name 127.0.0.1 for this test", url)
	}
	sink = newSMSSink(t)
	instance := func(port int, redisURL string) string {
		return fmt.Sprintf(`:%d {
	phone {
		jwt {
			secret %s
		}
		secret shared-otp-secret-0123456789
		store postgres %q {
			schema %s
		}
		cache redis %s {
			key_prefix %s
		}
		%s
		otp {
			max_attempts 100
		}
		limits {
			verify_per_user 1000 1h
		}
		require_verified /gated*
	}
	respond "instance %d"
}
`, port, jwtSecret, dsn, schema, redisURL, prefix, webhookLine(sink.srv.URL, ""), port)
	}
	second = httpPort + 1
	cfg := fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n\thttps_port %d\n\tgrace_period 1s\n}\n", adminPort, httpPort, httpsPort) +
		instance(httpPort, url) + instance(second, otherURL)
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	a := &env{t: t, sink: sink, client: &http.Client{Timeout: 15 * time.Second}}
	call = func(port int, method, path, tok string, body any) response {
		return a.doAt(fmt.Sprintf("http://localhost:%d", port), method, path, tok, body)
	}
	return call, second, sink
}

// Two instances behind a balancer share Redis and PostgreSQL: a code sent
// by one verifies on the other, and of many concurrent verifies split
// across both, exactly one succeeds.
func TestTwoInstancesShareRedisAndPostgres(t *testing.T) {
	call, second, sink := twoInstances(t)

	u := uniqueUser(t, "lb")
	tok := token(t, u)
	call(httpPort, "POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	call(second, "POST", "/phone/verify", tok, map[string]any{"code": sink.last(u).Code}).want(t, 200, "")
	st := call(httpPort, "GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+14155552671" || st.body["verified"] != true {
		t.Fatal(st.raw)
	}

	v := uniqueUser(t, "race")
	tv := token(t, v)
	call(second, "POST", "/phone/update", tv, map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
	code := sink.last(v).Code
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			port := httpPort
			if i%2 == 1 {
				port = second
			}
			r := call(port, "POST", "/phone/verify", tv, map[string]any{"code": code})
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case 200:
				wins++
			case 409:
			default:
				t.Errorf("verify on %d: %d %s", port, r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d verifies succeeded across two instances, want exactly 1", wins)
	}
}

// An update in its resend cooldown is refused before any store read,
// asking rule 4 of the instance's read cache (issue 13): a verify on one
// instance ends the number's cooldown in the shared cache, so the
// verified number typed again on the other — whose read cache, filled by
// its refusal a moment before, still says unverified — is "unchanged",
// not 429 (without the lift it was 429 for the read cache's 2 s).
func TestEarlyRefusalAcrossInstances(t *testing.T) {
	call, second, sink := twoInstances(t)
	u := uniqueUser(t, "early")
	tok := token(t, u)
	number := map[string]any{"phone_number": "+14155552671"}
	call(httpPort, "POST", "/phone/update", tok, number).want(t, 200, "")
	code := sink.last(u).Code
	sent := sink.count(u)
	for _, port := range []int{httpPort, second, httpPort, second} {
		call(port, "POST", "/phone/update", tok, number).want(t, 429, "rate_limited")
	}
	if sink.count(u) != sent {
		t.Fatal("a refused update sent a code")
	}
	call(second, "POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	r := call(httpPort, "POST", "/phone/update", tok, number).want(t, 200, "")
	if r.body["status"] != "unchanged" || r.body["verified"] != true {
		t.Fatalf("the verified number typed again on the other instance: %s", r.raw)
	}
}

// SPEC §9: a read on any instance shows every change that completed
// before it began. Instance A has read (and could have cached) the user
// before B changes it: A's GET /phone and its require_verified gate show
// B's change at once; only inject_headers may lag.
func TestReadsFreshAcrossInstances(t *testing.T) {
	call, second, sink := twoInstances(t)
	u := uniqueUser(t, "fresh")
	tok := token(t, u)
	if st := call(httpPort, "GET", "/phone", tok, nil).want(t, 200, ""); st.body["phone_number"] != nil {
		t.Fatal(st.raw)
	}
	call(httpPort, "GET", "/gated/x", tok, nil).want(t, 403, "phone_not_verified")

	call(second, "POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	call(second, "POST", "/phone/verify", tok, map[string]any{"code": sink.last(u).Code}).want(t, 200, "")

	st := call(httpPort, "GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+14155552671" || st.body["verified"] != true {
		t.Fatalf("GET /phone on the other instance right after the verify: %s", st.raw)
	}
	if r := call(httpPort, "GET", "/gated/x", tok, nil); r.status != 200 {
		t.Fatalf("require_verified on the other instance right after the verify: %d %s", r.status, r.raw)
	}
}
