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

// FuzzCompatAndAdminBodies is FuzzRequestBodies for the Descope, ReachFive
// and admin routes: whatever the body, a documented status and a JSON
// answer, never a panic or a 500.
func FuzzCompatAndAdminBodies(f *testing.F) {
	for _, seed := range []string{
		`{"loginId":"fuzz-user","phone":"+33612345678"}`, `{"loginId":"fuzz-user","code":"123456"}`,
		`{"loginId":"fuzz-user","phone":"+33612345678","templateOptions":{"a":1,"b":[true]},"providerId":"log","locale":"fr"}`,
		`{"phone_number":"+33612345678"}`, `{"phone_number":"+33612345678","verification_code":"123456"}`,
		`{"user_id":"fuzz-user","phone_number":"+33612345678","verified":true,"primary":true}`,
		`{"primary":true,"reserved_for_second_factor":true}`,
		`{"type":"phone_change","phone":"33612345678","token":"123456","gotrue_meta_security":{}}`, `{"phone":"+33612345678","code_challenge":null}`, ``, `{}`, `[]`, `null`, `{"loginId":1}`, `[[[[[[`,
	} {
		f.Add(seed)
	}
	p := provisionPhone(f, `{"jwt":{"secret":"`+benchSecret+`","project_id":"P2fuzz"},"store":{"backend":"memory"},
		"cache":{"max_size":67108864},"sms":[{"provider":"log"}],"compat":["descope","reachfive","supabase"],
		"admin":{"api_key":"sk_fuzz_0123456789abcdef"}}`)
	withInstantSMS(f, p)
	tok, _ := mintToken(benchSecret, "fuzz-user", "HS256", "", "", time.Hour, time.Now())
	routes := []struct{ method, path, auth string }{
		{"POST", "/v1/auth/otp/update/phone/sms", "Bearer P2fuzz:" + tok},
		{"POST", "/v1/auth/otp/verify/sms", "Bearer P2fuzz"},
		{"POST", "/identity/v1/update-phone-number", "Bearer " + tok},
		{"POST", "/identity/v1/verify-phone-number", "Bearer " + tok},
		{"POST", "/identity/v1/send-phone-number-verification", "Bearer " + tok},
		{"POST", "/phone/v1/phone_numbers", "Bearer sk_fuzz_0123456789abcdef"},
		{"PATCH", "/phone/v1/phone_numbers/idn_fuzz", "Bearer sk_fuzz_0123456789abcdef"},
		{"PUT", "/auth/v1/user", "Bearer " + tok},
		{"POST", "/auth/v1/verify", "Bearer anon"},
		{"POST", "/auth/v1/resend", "Bearer anon"},
	}
	allowed := map[int]bool{200: true, 202: true, 400: true, 403: true, 404: true, 409: true, 410: true,
		413: true, 422: true, 429: true, 501: true}
	f.Fuzz(func(t *testing.T, body string) {
		for _, rt := range routes {
			rec := httptest.NewRecorder()
			r := caddyRequest(rt.method, rt.path, body)
			r.Header.Set("Authorization", rt.auth)
			r.Header.Set("Content-Type", "application/json")
			if err := p.ServeHTTP(rec, r, noopNext); err != nil {
				t.Fatalf("%s %s: handler error %v", rt.method, rt.path, err)
			}
			if !allowed[rec.Code] {
				t.Fatalf("%s %s %q: status %d %s", rt.method, rt.path, body, rec.Code, rec.Body)
			}
			var out any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s %s: answer is not JSON: %s", rt.method, rt.path, rec.Body)
			}
		}
	})
}
