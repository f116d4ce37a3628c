package e2e

import (
	"strings"
	"testing"
)

// A browser on a listed origin calls the user API and a compat route
// through a real Caddy: preflights answer 204, answers (errors too) carry
// the allow-origin and credentials headers; an unlisted origin, the admin
// endpoints and pass-through traffic get no CORS header.
func TestCORSThroughCaddy(t *testing.T) {
	const app = "https://app.example.com"
	e := newEnv(t, site{
		jwt:   jwtLines("project_id P2cors"),
		phone: "compat descope reachfive\ncors " + app + " http://localhost:5173\nadmin {\n\tapi_key sk_test_cors_0123456789abcdef\n}",
	})
	preflight := func(path, origin, headers string) response {
		return e.doRaw("OPTIONS", path, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers,
		}, nil)
	}
	for _, path := range []string{"/phone/update", "/v1/auth/otp/update/phone/sms", "/identity/v1/update-phone-number"} {
		r := preflight(path, app, "authorization,content-type,x-descope-sdk-name,x-r5-correlation-id")
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != app ||
			r.header.Get("Access-Control-Allow-Credentials") != "true" ||
			r.header.Get("Access-Control-Allow-Headers") != "authorization,content-type,x-descope-sdk-name,x-r5-correlation-id" ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
			r.header.Get("Access-Control-Max-Age") == "" || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Fatalf("%s: preflight %d %v", path, r.status, r.header)
		}
		r = preflight(path, "https://evil.example.com", "authorization")
		if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: unlisted preflight %d %v", path, r.status, r.header)
		}
	}

	u := uniqueUser(t, "u")
	tok := token(t, u)
	hdr := map[string]string{"Origin": app, "Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	ok := e.doRaw("POST", "/phone/update", hdr, []byte(`{"phone_number":"+33612345678"}`)).want(t, 200, "")
	bad := e.doRaw("POST", "/phone/verify", hdr, []byte(`{"code":"000000x"}`))
	noTok := e.doRaw("GET", "/phone", map[string]string{"Origin": app}, nil).want(t, 401, "unauthorized")
	for _, r := range []response{ok, bad, noTok} {
		if r.header.Get("Access-Control-Allow-Origin") != app || r.header.Get("Access-Control-Allow-Credentials") != "true" ||
			r.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
			t.Fatalf("answer %d lacks CORS headers: %v", r.status, r.header)
		}
	}
	if bad.status < 400 {
		t.Fatalf("bad code answered %d", bad.status)
	}
	if r := e.doRaw("GET", "/phone", map[string]string{"Origin": "https://evil.example.com", "Authorization": "Bearer " + tok}, nil).want(t, 200, ""); r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Vary") == "" {
		t.Fatalf("unlisted origin: %v", r.header)
	}
	for _, path := range []string{"/api/anything", "/phone/v1/phone_numbers/x"} {
		r := e.doRaw("GET", path, map[string]string{"Origin": app, "Authorization": "Bearer sk_test_cors_0123456789abcdef"}, nil)
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: %d carries CORS: %v", path, r.status, r.header)
		}
		if r = preflight(path, app, "authorization"); r.status == 204 || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: preflight %d %v", path, r.status, r.header)
		}
	}
}
