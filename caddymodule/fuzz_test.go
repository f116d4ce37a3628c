package caddymodule

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzRequestBodies sends arbitrary bodies to every JSON route: each answer
// must be one of the documented statuses with a JSON body, never a panic
// or a 500.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"phone_number":"+33612345678"}`, `{"phone_number":"+33612345678","locale":"fr","template_options":{"a":"b"},"provider_id":"x"}`,
		`{"code":"123456"}`, `{"code":"123456","phone_number":"+14155552671"}`, `{"locale":"en"}`,
		``, `{}`, `[]`, `null`, `{"phone_number":1}`, `{"phone_number":"+33612345678"}{}`, `{"x":1}`,
		"{\"phone_number\":\"\xff\xfe\"}", `{"code":"` + string(make([]byte, 100)) + `"}`, `[[[[[[[[[[`,
		`{"phone_number":"+33612345678\r\nX-Injected: 1"}`,
	} {
		f.Add(seed)
	}
	p := provisionPhone(f, benchConfig)
	withInstantSMS(f, p)
	tok, _ := mintToken(benchSecret, "fuzz-user", "HS256", "", "", time.Hour, time.Now())
	allowed := map[int]bool{200: true, 202: true, 400: true, 409: true, 410: true, 413: true, 422: true, 429: true}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/phone/update", "/phone/verify", "/phone/resend"} {
			rec := httptest.NewRecorder()
			r := caddyRequest("POST", path, body)
			r.Header.Set("Authorization", "Bearer "+tok)
			if err := p.ServeHTTP(rec, r, noopNext); err != nil {
				t.Fatalf("%s: handler error %v", path, err)
			}
			if !allowed[rec.Code] {
				t.Fatalf("%s %q: status %d %s", path, body, rec.Code, rec.Body)
			}
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s: answer is not JSON: %s", path, rec.Body)
			}
		}
	})
}

// FuzzCaddyfile feeds arbitrary blocks to the parser: it may refuse them,
// but must never panic.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"phone {\n prefix /phone\n verification off\n}",
		"phone {\n jwt {\n secret s\n algorithms HS256 HS512\n leeway 30s\n max_auth_age 15m\n }\n}",
		"phone {\n otp {\n length 6\n ttl 10m\n max_attempts 5\n resend_after 0s\n }\n}",
		"phone {\n limits {\n per_number 5 1h\n global 1000 1m\n }\n}",
		"phone {\n numbers {\n default_region US\n allow_countries US CA\n types mobile\n }\n}",
		"phone {\n store sqlite ./x.db\n cache bigcache {\n max_size 64MB\n }\n}",
		"phone {\n sms webhook http://127.0.0.1:1 {\n secret x\n name a\n }\n sms log\n}",
		"phone {\n template fr \"Code {code}\"\n app_name Acme\n}",
		"phone {\n limits {\n per_number x y\n }\n}", "phone /x", "phone {\n jwt\n}", "phone {\n{\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		// Caddy's lexer refuses some inputs before any directive sees
		// them (NewTestDispenser would exit the process on those).
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var p Phone
		_ = p.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
	})
}
