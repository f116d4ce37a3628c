package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// webhookSink is a loopback HTTP server that takes the webhook SMS
// provider's posts and keeps the last code per number.
type webhookSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes map[string]string
}

func newWebhookSink(tb testing.TB) *webhookSink {
	s := &webhookSink{codes: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Code string }
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if m.To != "" {
			s.mu.Lock()
			s.codes[m.To] = m.Code
			s.mu.Unlock()
		}
		w.WriteHeader(204)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) code(number string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codes[number]
}

// BenchmarkFlowWebhook is the flow as a deployment runs it, in process:
// POST /phone/update then POST /phone/verify through ServeHTTP, the
// memory store, bigcache, every limit on (counted; the counts raised so
// that one user and one client address never reach them), the
// resend cooldown on, and the code sent by the webhook SMS provider to a
// loopback HTTP sink, whose answer the update waits for. Each flow uses a
// new number, as users do. "floor" is a bare loopback HTTP round trip to
// the same sink with a body of the webhook's size, measured in the same
// run: no flow can cost less. The cache is 4 GiB because one address's
// counters are rewritten by every flow, and each rewrite holds its bytes
// in its shard for the life window (README, Sizing). A user changes every
// flowsPerUser flows: a user's challenge, made anew by each update after
// a verify, is a new key each time, which admission does not spill; one
// user's 25,000-odd challenges in an hour filled its 16 MiB shard (503,
// seen with -benchtime 5s), where per_user allows a real user 10.
func BenchmarkFlowWebhook(b *testing.B) {
	const flowsPerUser = 4096
	sink := newWebhookSink(b)
	b.Run("floor", func(b *testing.B) {
		body := []byte(`{"id":"0123456789abcdef","to":"","body":"Your your account code is 123456. It expires in 10 minutes.","code":"123456","locale":"en","purpose":"update","user_id":"bench-flow","template_options":{},"channel":"sms"}`)
		client := &http.Client{}
		b.ReportAllocs()
		for b.Loop() {
			res, err := client.Post(sink.srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
	b.Run("update+verify", func(b *testing.B) {
		// Caddy's own logger: its two INFO lines a flow are part of the flow.
		p := provisionPhoneLogged(b, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"memory"},
			"cache":{"max_size":4294967296},"limits":{"per_number":{"count":1000000000,"window":"1h"},"per_user":{"count":1000000000,"window":"1h"},
				"per_ip":{"count":1000000000,"window":"1h"},"global":{"count":1000000000,"window":"1m"},
				"verify_per_user":{"count":1000000000,"window":"1h"},"verify_per_ip":{"count":1000000000,"window":"1h"}},
			"sms":[{"provider":"webhook","url":"`+sink.srv.URL+`"}]}`, caddyLogger(zapcore.Lock(os.Stderr)))
		var auth string
		w := &statusOnly{discard: discard{h: http.Header{}}}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if i%flowsPerUser == 0 {
				tok, _ := mintToken(benchSecret, fmt.Sprintf("bench-flow-%d", i/flowsPerUser), "HS256", "", "", time.Hour, time.Now())
				auth = "Bearer " + tok
			}
			n := fmt.Sprintf("+3361%07d", i%10_000_000)
			i++
			r := caddyRequest("POST", "/phone/update", `{"phone_number":"`+n+`"}`)
			r.Header.Set("Authorization", auth)
			w.code = 0
			_ = p.ServeHTTP(w, r, noopNext)
			if w.code/100 != 2 {
				b.Fatalf("update: %d", w.code)
			}
			r = caddyRequest("POST", "/phone/verify", `{"code":"`+sink.code(n)+`"}`)
			r.Header.Set("Authorization", auth)
			w.code = 0
			_ = p.ServeHTTP(w, r, noopNext)
			if w.code != 200 {
				b.Fatalf("verify: %d", w.code)
			}
		}
	})
}

// BenchmarkSayNo is the cost of a refusal through ServeHTTP on sqlite:
// "401" an update with a bad token, "429" an update to a number still in
// its resend cooldown (the 429 flood of phone-load), "429-pumping" an
// update to a new number each time from a user whose per_user budget is
// spent (phone-load's SMS-pumping flood). Requests are built in batches
// of 16 with the timer stopped (building one costs more than refusing
// it; small batches, so that a request is still in the CPU's caches when
// it is served, as a request just parsed is).
func BenchmarkSayNo(b *testing.B) {
	sink := newWebhookSink(b)
	// Caddy logs at INFO by default; a test context's logger is at DEBUG,
	// which would write a line per refused token.
	p := provisionPhoneLogged(b, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"sqlite","path":"`+b.TempDir()+`/phone.db"},
		"limits":{"per_user":{"count":2,"window":"1h"}},
		"sms":[{"provider":"webhook","url":"`+sink.srv.URL+`"}]}`, caddyLogger(zapcore.AddSync(io.Discard)))
	tok, _ := mintToken(benchSecret, "bench-no", "HS256", "", "", time.Hour, time.Now())
	pumper, _ := mintToken(benchSecret, "bench-pump", "HS256", "", "", time.Hour, time.Now())
	for _, c := range []struct {
		name, auth string
		newNumber  bool
		want       int
	}{{"401", "Bearer bad.token.value", false, 401}, {"429", "Bearer " + tok, false, 429}, {"429-pumping", "Bearer " + pumper, true, 429}} {
		b.Run(c.name, func(b *testing.B) {
			w := &statusOnly{discard: discard{h: http.Header{}}}
			// The cooldown's user sends one code (per_user has one left);
			// the pumper sends two, to two numbers, and per_user is spent.
			for _, number := range []string{"+33612345678", "+33612345679"} {
				r := caddyRequest("POST", "/phone/update", `{"phone_number":"`+number+`"}`)
				r.Header.Set("Authorization", c.auth)
				_ = p.ServeHTTP(w, r, noopNext)
				if !c.newNumber {
					break
				}
			}
			batch := make([]*http.Request, 16)
			n := 0
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if i%len(batch) == 0 {
					b.StopTimer()
					for j := range batch {
						number := "+33612345678"
						if c.newNumber {
							n++
							number = fmt.Sprintf("+3361%07d", n)
						}
						batch[j] = caddyRequest("POST", "/phone/update", `{"phone_number":"`+number+`"}`)
						batch[j].Header.Set("Authorization", c.auth)
					}
					b.StartTimer()
				}
				w.code = 0
				_ = p.ServeHTTP(w, batch[i%len(batch)], noopNext)
				if w.code != c.want {
					b.Fatalf("status %d, want %d", w.code, c.want)
				}
			}
		})
	}
}
