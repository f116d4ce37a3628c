package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

// FuzzCompatAndAdminBodies is FuzzRequestBodies for the Descope, ReachFive,
// Supabase, Kii and admin routes: whatever the body, a documented status and a JSON
// answer, never a panic or a 500.
func FuzzCompatAndAdminBodies(f *testing.F) {
	for _, seed := range []string{
		`{"loginId":"fuzz-user","phone":"+33612345678"}`, `{"loginId":"fuzz-user","code":"123456"}`,
		`{"loginId":"fuzz-user","phone":"+33612345678","templateOptions":{"a":1,"b":[true]},"providerId":"log","locale":"fr"}`,
		`{"phone_number":"+33612345678"}`, `{"phone_number":"+33612345678","verification_code":"123456"}`,
		`{"user_id":"fuzz-user","phone_number":"+33612345678","verified":true,"primary":true}`,
		`{"primary":true,"reserved_for_second_factor":true}`,
		`{"type":"phone_change","phone":"33612345678","token":"123456","gotrue_meta_security":{}}`, `{"phone":"+33612345678","code_challenge":null}`,
		`{"phoneNumber":"+33612345678"}`, `{"verificationCode":"123456"}`, ``, `{}`, `[]`, `null`, `{"loginId":1}`, `[[[[[[`,
	} {
		f.Add(seed)
	}
	p := provisionPhone(f, `{"jwt":{"secret":"`+benchSecret+`","project_id":"P2fuzz"},"store":{"backend":"memory"},
		"cache":{"max_size":67108864},"sms":[{"provider":"log"}],"compat":["descope","reachfive","supabase","kii"],
		"compat_options":{"kii":{"app_id":"kiiapp1"}},"admin":{"api_key":"sk_fuzz_0123456789abcdef"}}`)
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
		{"PUT", "/api/apps/kiiapp1/users/fuzz-user/phone-number", "Bearer " + tok},
		{"POST", "/api/apps/kiiapp1/users/me/phone-number/verify", "Bearer " + tok},
		{"POST", "/api/apps/kiiapp1/users/fuzz-user/phone-number/resend-verification", "Bearer " + tok},
	}
	allowed := map[int]bool{200: true, 202: true, 400: true, 403: true, 404: true, 409: true, 410: true,
		413: true, 422: true, 429: true, 501: true}
	f.Fuzz(func(t *testing.T, body string) {
		for _, rt := range routes {
			rec := httptest.NewRecorder()
			r := caddyRequest(rt.method, rt.path, body)
			r.Header.Set("Authorization", rt.auth)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-Kii-Appid", "kiiapp1")
			if err := p.ServeHTTP(rec, r, noopNext); err != nil {
				t.Fatalf("%s %s: handler error %v", rt.method, rt.path, err)
			}
			if rec.Code == 204 && strings.Contains(rt.path, "/api/apps/") {
				continue // Kii's success has no body
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

// FuzzKiiPath splits arbitrary paths as Kii's routes do: a path it takes
// is exactly /api/apps/{app}/users/{userID}{route} with one non-empty
// segment for each variable and a known route, and nothing panics.
func FuzzKiiPath(f *testing.F) {
	for _, seed := range []string{
		"/api/apps/a/users/me", "/api/apps/a/users/u1/phone-number", "/api/apps/a/users/u1/phone-number/verify",
		"/api/apps/a/users/me/phone-number/resend-verification", "/api/apps/a/users/phone-number",
		"/api/apps/a/users/phone-number/verify", "/api/apps/a/users/u/../me", "/api/apps/a/users//phone-number",
		"/api/apps//users/me", "/api/apps/a/users/", "/api/apps/a/users/me/", "/api/apps/a/users/a/b/phone-number",
		"/api/apps/", "/api/apps", "/API/apps/a/users/me", "/api/apps/a/users/me/phone-number/verify/phone-number",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		app, user, key, ok := kiiPath(path)
		if !ok {
			return
		}
		if _, known := kiiRoutes[key]; !known {
			t.Fatalf("%q: route key %q is no route", path, key)
		}
		for _, seg := range []string{app, user} {
			if seg == "" || strings.Contains(seg, "/") {
				t.Fatalf("%q: app %q, user %q: not one segment each", path, app, user)
			}
		}
		if back := kiiPrefix + app + "/users/" + user + key; back != path {
			t.Fatalf("%q split as %q %q %q, which rebuild %q", path, app, user, key, back)
		}
	})
}

// FuzzVendorAndAdminPaths sends arbitrary paths (raw: escapes, dot
// segments, double slashes, any case) with each method to a handler
// serving Kii, Supabase, Descope and the admin routes: each answer is
// passed through or a documented status with a JSON body, never a panic
// or a 500.
func FuzzVendorAndAdminPaths(f *testing.F) {
	for _, seed := range []string{
		"/api/apps/kiiapp1/users/me", "/api/apps/kiiapp1/users/fuzz-user/phone-number",
		"/api/apps/kiiapp1/users/me%2Fphone-number", "/api/apps/kiiapp1/users/%2e%2e/phone-number/verify",
		"/api/apps/kiiapp1//users/me", "/api/apps/KIIAPP1/users/me", "/api/apps/kiiapp1/users/me/phone-number/resend-verification/",
		"/auth/v1/user", "/auth/v1/verify/", "/auth/v1//resend", "/AUTH/v1/user", "/v1/auth/otp/verify/voice",
		"/phone/v1/users/u%00", "/phone/v1/users/%2F", "/phone/v1/users/count", "/phone/v1/users/u/phone_numbers",
		"/phone/v1/phone_numbers/idn_%zz", "/phone/v1/users?phone_number=%2B33612345678&limit=2", "/phone//v1/users",
	} {
		f.Add(seed, uint8(0))
	}
	p := provisionPhone(f, `{"jwt":{"secret":"`+benchSecret+`","project_id":"P2fuzz"},"store":{"backend":"memory"},
		"cache":{"max_size":67108864},"sms":[{"provider":"log"}],"compat":["descope","supabase","kii"],
		"compat_options":{"kii":{"app_id":"kiiapp1"}},"admin":{"api_key":"sk_fuzz_0123456789abcdef"}}`)
	withInstantSMS(f, p)
	tok, _ := mintToken(benchSecret, "fuzz-user", "HS256", "", "", time.Hour, time.Now())
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	allowed := map[int]bool{200: true, 204: true, 400: true, 401: true, 403: true, 404: true, 405: true, 409: true,
		413: true, 422: true, 429: true, 501: true}
	f.Fuzz(func(t *testing.T, target string, m uint8) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(target, "/") {
			return // not a request target a client can send
		}
		method := methods[int(m)%len(methods)]
		for _, auth := range []string{"Bearer " + tok, "Bearer sk_fuzz_0123456789abcdef"} {
			r := caddyRequest(method, "/", "")
			r.URL, r.RequestURI = u, target
			r.Header.Set("Authorization", auth)
			r.Header.Set("X-Kii-Appid", "kiiapp1")
			rec := httptest.NewRecorder()
			passed := false
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { passed = true; return nil })
			if err := p.ServeHTTP(rec, r, next); err != nil {
				t.Fatalf("%s %q: handler error %v", method, target, err)
			}
			if passed {
				continue
			}
			if !allowed[rec.Code] {
				t.Fatalf("%s %q: status %d %s", method, target, rec.Code, rec.Body)
			}
			if rec.Code != 204 && method != "HEAD" {
				var out any
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
					t.Fatalf("%s %q: answer is not JSON: %s", method, target, rec.Body)
				}
			}
		}
	})
}

// FuzzAdminUserQuery sends arbitrary query strings to Clerk's user list
// and count: 200, 400 or 422 with a JSON body, never a panic or a 500.
func FuzzAdminUserQuery(f *testing.F) {
	for _, seed := range []string{
		"phone_number=%2B33612345678", "phone_number=%2B33612345678&phone_number=%2B33612345679&limit=1&offset=1",
		"phone_number=%2B33612345678&order_by=-created_at", "phone_number=%2B33612345678&order_by=%2Bcreated_at",
		"phone_number=%2B33612345678&limit=500&offset=2147483647", "phone_number=&limit=0", "limit=-1&offset=x",
		"phone_number=%zz", "phone_number=%2B33612345678;x=1", "%ff=1&phone_number=%2B33612345678", "email_address=a",
		"phone_number=%2B33612345678&limit=1&limit=2", "phone_number=+33612345678", "phone_number=0612345678",
	} {
		f.Add(seed)
	}
	p := provisionPhone(f, adminConfig(`{"backend":"memory"}`, ""))
	// A user to find (the memory store is the process's: another test may
	// have made it already, 422).
	create := caddyRequest("POST", "/phone/v1/phone_numbers", `{"user_id":"fuzz-user","phone_number":"+33612345678"}`)
	create.Header.Set("Authorization", "Bearer "+adminKey)
	if rec := httptest.NewRecorder(); p.ServeHTTP(rec, create, noopNext) != nil || rec.Code != 200 && rec.Code != 422 {
		f.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	allowed := map[int]bool{200: true, 400: true, 422: true}
	f.Fuzz(func(t *testing.T, query string) {
		if strings.ContainsAny(query, " #\x00\r\n") {
			return // not in a request line
		}
		for _, path := range []string{"/phone/v1/users", "/phone/v1/users/count"} {
			r := caddyRequest("GET", path, "")
			r.URL.RawQuery = query
			r.Header.Set("Authorization", "Bearer "+adminKey)
			rec := httptest.NewRecorder()
			if err := p.ServeHTTP(rec, r, noopNext); err != nil {
				t.Fatalf("%s?%s: handler error %v", path, query, err)
			}
			if !allowed[rec.Code] {
				t.Fatalf("%s?%s: status %d %s", path, query, rec.Code, rec.Body)
			}
			var out any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s?%s: answer is not JSON: %s", path, query, rec.Body)
			}
		}
	})
}
