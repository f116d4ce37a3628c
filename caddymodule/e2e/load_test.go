package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestLoadAgainstPlainCaddy is the end-to-end load comparison: the same
// Caddy serves a plain `respond` site and the same site behind `phone`,
// and rounds alternate between them so that the machine's drift hits all
// alike. It reports requests per second and each scenario's ratio to
// plain Caddy measured in the same run. It is a measurement, not a gate:
//
//	PHONE_LOAD_SECONDS=3 go test -run TestLoadAgainstPlainCaddy -v ./caddymodule/e2e/
func TestLoadAgainstPlainCaddy(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("PHONE_LOAD_SECONDS"))
	if secs <= 0 {
		t.Skip("set PHONE_LOAD_SECONDS=<seconds per round> to run the load comparison")
	}
	plainPort, phonePort := httpPort+10, httpPort+11
	sink := newSMSSink(t)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
}
:%d {
	respond "ok"
}
:%d {
	phone {
		jwt {
			secret %s
		}
		store sqlite %s/phone.db
		%s
	}
	respond "ok"
}
`, adminPort, httpPort, httpsPort, plainPort, phonePort, jwtSecret, t.TempDir(), webhookLine(sink.srv.URL, ""))
	caddytest.NewTester(t).InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	user := uniqueUser(t, "load")
	tok := token(t, user)
	e := &env{t: t, sink: sink, client: &http.Client{Timeout: 15 * time.Second}}
	phoneBase := fmt.Sprintf("http://localhost:%d", phonePort)
	e.doAt(phoneBase, "POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.doAt(phoneBase, "POST", "/phone/verify", tok, map[string]any{"code": sink.last(user).Code}).want(t, 200, "")

	type scenario struct {
		name, url, token string
	}
	scenarios := []scenario{
		{"plain Caddy (respond)", fmt.Sprintf("http://localhost:%d/app", plainPort), ""},
		{"phone pass-through, no token", phoneBase + "/app", ""},
		{"phone pass-through, valid token", phoneBase + "/app", tok},
		{"GET /phone, valid token", phoneBase + "/phone", tok},
	}
	const workers, rounds = 32, 3
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	total := make([]int64, len(scenarios))
	for round := 0; round < rounds; round++ {
		for i, sc := range scenarios {
			total[i] += drive(t, client, sc.url, sc.token, workers, time.Duration(secs)*time.Second)
		}
	}
	elapsed := float64(rounds * secs)
	for i, sc := range scenarios {
		t.Logf("%-32s %8.0f req/s   ratio to plain %.2f", sc.name, float64(total[i])/elapsed, float64(total[i])/float64(total[0]))
	}
}

// drive sends GETs from workers goroutines for d and counts the 200s.
func drive(t *testing.T, client *http.Client, url, tok string, workers int, d time.Duration) int64 {
	var ok, bad atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("GET", url, nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				res, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%s: %d failed requests", url, bad.Load())
	}
	return ok.Load()
}
