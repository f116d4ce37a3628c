package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The caddy_phone_* metrics appear in Caddy's registry (served by the
// admin API's /metrics) and never carry a number, a code or a user.
func TestMetrics(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "metrics")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	e.do("POST", "/phone/resend", tok, nil).want(t, 409, "no_pending_verification")

	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := string(b)
	for _, want := range []string{
		`caddy_phone_requests_total{op="update",result="ok"}`,
		`caddy_phone_requests_total{op="verify",result="invalid_code"}`,
		`caddy_phone_requests_total{op="verify",result="ok"}`,
		`caddy_phone_requests_total{op="resend",result="no_pending_verification"}`,
		`caddy_phone_sms_sends_total{channel="sms",provider="webhook",result="ok"}`,
		`caddy_phone_store_duration_seconds_count{op="set",result="ok"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{"4155552671", code, u, tok} {
		if strings.Contains(m, secret) {
			t.Errorf("metrics carry %q", secret)
		}
	}
}
