package caddymodule

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const corsApp = "https://app.example.com"

// corsHandler serves our API, both SDK shapes and the admin endpoints,
// with browsers on corsApp (and one more origin) allowed.
func corsHandler(t *testing.T) *compatHandler {
	return newCompatHandler(t, compatConfig(`,"cors":["https://APP.example.com:443","http://localhost:5173"],
		"admin":{"api_key":"`+adminKey+`"}`))
}

// preflight is a browser's OPTIONS before a call with custom headers.
func (h *compatHandler) preflight(path, origin, method, headers string) *httptest.ResponseRecorder {
	h.t.Helper()
	hdr := []string{"Origin", origin, "Access-Control-Request-Method", method}
	if headers != "" {
		hdr = append(hdr, "Access-Control-Request-Headers", headers)
	}
	return h.call("OPTIONS", path, "", "", hdr...)
}

// wantCORS checks the headers of an answer to a listed origin.
func wantCORS(t *testing.T, rec *httptest.ResponseRecorder, origin string) {
	t.Helper()
	hd := rec.Header()
	if hd.Get("Access-Control-Allow-Origin") != origin || hd.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("%d: want allow-origin %s with credentials, got %v", rec.Code, origin, hd)
	}
	if !varies(hd.Values("Vary"), "Origin") {
		t.Fatalf("%d: Vary %q lacks Origin", rec.Code, hd.Values("Vary"))
	}
}

func varies(vary []string, name string) bool {
	for _, v := range vary {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// wantNoCORS checks that an answer carries no CORS header at all.
func wantNoCORS(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for k := range rec.Header() {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("%d: unexpected %s: %v", rec.Code, k, rec.Header())
		}
	}
}

// A preflight from a listed origin to the user API and to every compat
// route answers 204 with what the browser needs; from any other, 403
// without a CORS header.
func TestCORSPreflight(t *testing.T) {
	h := corsHandler(t)
	paths := []string{"/phone", "/phone/update", "/phone/verify", "/phone/pending"}
	for _, v := range []string{"descope", "reachfive"} {
		for path := range vendorDialects[v].routes {
			paths = append(paths, path)
		}
	}
	for _, path := range paths {
		if !strings.HasPrefix(path, "/") {
			t.Fatalf("bad path %q", path)
		}
		// Descope's web SDK: credentials include, x-descope-* headers.
		rec := h.preflight(path, corsApp, "POST", "authorization,content-type,x-descope-sdk-name,x-descope-sdk-version")
		if rec.Code != 204 {
			t.Fatalf("%s: preflight %d, want 204", path, rec.Code)
		}
		wantCORS(t, rec, corsApp)
		hd := rec.Header()
		if got := hd.Get("Access-Control-Allow-Headers"); got != "authorization,content-type,x-descope-sdk-name,x-descope-sdk-version" {
			t.Fatalf("%s: allow-headers %q", path, got)
		}
		for _, m := range []string{"GET", "POST", "DELETE"} {
			if !strings.Contains(hd.Get("Access-Control-Allow-Methods"), m) {
				t.Fatalf("%s: allow-methods %q lacks %s", path, hd.Get("Access-Control-Allow-Methods"), m)
			}
		}
		if hd.Get("Access-Control-Max-Age") == "" {
			t.Fatalf("%s: no max-age", path)
		}
		if !varies(hd.Values("Vary"), "Access-Control-Request-Headers") {
			t.Fatalf("%s: Vary %q", path, hd.Values("Vary"))
		}
		// ReachFive's correlation header, from the other listed origin.
		rec = h.preflight(path, "http://localhost:5173", "POST", "X-R5-Correlation-Id")
		if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Headers") != "X-R5-Correlation-Id" {
			t.Fatalf("%s: reachfive preflight %d %v", path, rec.Code, rec.Header())
		}
		wantCORS(t, rec, "http://localhost:5173")

		for _, bad := range []string{"https://evil.example.com", "http://app.example.com", "https://app.example.com:8443", "null"} {
			rec = h.preflight(path, bad, "POST", "authorization")
			if rec.Code != 403 {
				t.Fatalf("%s from %s: preflight %d, want 403", path, bad, rec.Code)
			}
			wantNoCORS(t, rec)
			if !varies(rec.Header().Values("Vary"), "Origin") {
				t.Fatalf("%s from %s: Vary %q", path, bad, rec.Header().Values("Vary"))
			}
		}
	}
	if h.nexted != 0 || h.sink.count() != 0 {
		t.Fatalf("preflights reached next (%d) or sent SMS (%d)", h.nexted, h.sink.count())
	}
	// An OPTIONS that is no preflight is an ordinary call: 405.
	if rec := h.call("OPTIONS", "/phone/update", "", "", "Origin", corsApp); rec.Code != 405 {
		t.Fatalf("plain OPTIONS %d, want 405", rec.Code)
	} else {
		wantCORS(t, rec, corsApp)
	}
}

// Every answer to a listed origin, success or error, carries the
// allow-origin and credentials headers and exposes Retry-After; an
// unlisted origin gets none, but the answer still varies by Origin.
func TestCORSAnswers(t *testing.T) {
	h := corsHandler(t)
	u := compatUser(t, "u")
	tok := "Bearer " + h.tok(u)
	origin := []string{"Origin", corsApp}

	ok := h.call("GET", "/phone", tok, "", origin...)
	decoded(t, ok, 200)
	wantCORS(t, ok, corsApp)
	if got := ok.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") {
		t.Fatalf("expose-headers %q", got)
	}
	for _, c := range []struct {
		method, path, auth, body string
		status                   int
	}{
		{"GET", "/phone", "", "", 401},                              // our error
		{"POST", "/phone/update", tok, "{", 400},                    // a bad body
		{"GET", "/phone/nowhere", tok, "", 404},                     // an unknown route
		{"GET", "/phone/update", tok, "", 405},                      // a wrong method
		{"POST", "/v1/auth/otp/verify/sms", "", "{}", 401},          // Descope's shape
		{"POST", "/identity/v1/update-phone-number", "", "{}", 401}, // ReachFive's
		{"GET", "/identity/v1/config?client_id=x", "", "", 200},
		{"GET", "/identity/v1/userinfo?fields=phone_number", tok, "", 200}, // getUser
	} {
		rec := h.call(c.method, c.path, c.auth, c.body, origin...)
		if rec.Code != c.status {
			t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
		}
		wantCORS(t, rec, corsApp)
		if got := rec.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") {
			t.Fatalf("%s %s: expose-headers %q", c.method, c.path, got)
		}

		rec = h.call(c.method, c.path, c.auth, c.body, "Origin", "https://evil.example.com")
		if rec.Code != c.status {
			t.Fatalf("%s %s unlisted: %d", c.method, c.path, rec.Code)
		}
		wantNoCORS(t, rec)
		if !varies(rec.Header().Values("Vary"), "Origin") {
			t.Fatalf("%s %s: unlisted answer without Vary: Origin", c.method, c.path)
		}
		// Same-origin and server calls send no Origin; the answer still varies.
		rec = h.call(c.method, c.path, c.auth, c.body)
		wantNoCORS(t, rec)
		if !varies(rec.Header().Values("Vary"), "Origin") {
			t.Fatalf("%s %s: no Vary: Origin", c.method, c.path)
		}
	}

	// A 429 with Retry-After, which the page must be able to read.
	h2 := newCompatHandler(t, compatConfig(`,"cors":["`+corsApp+`"],"limits":{"per_user":{"count":1,"window":"1h"}}`))
	u2 := compatUser(t, "limited")
	tok2 := "Bearer " + h2.tok(u2)
	decoded(t, h2.call("POST", "/phone/update", tok2, `{"phone_number":"`+compatNumber()+`"}`, origin...), 200)
	rec := h2.call("POST", "/phone/update", tok2, `{"phone_number":"`+compatNumber()+`"}`, origin...)
	decoded(t, rec, 429)
	wantCORS(t, rec, corsApp)
	if rec.Header().Get("Retry-After") == "" || rec.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("429: %v", rec.Header())
	}
}

// Admin routes never answer cross-origin, pass-through traffic is
// untouched, and without `cors` nothing changes.
func TestCORSAdminPassThroughUntouched(t *testing.T) {
	h := corsHandler(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/phone/v1/phone_numbers/x"},
		{"GET", "/api/anything"},
		{"POST", "/v1/auth/otp/unknown"},        // under Descope's prefix, no route of ours
		{"POST", "/identity/v1/update-profile"}, // under ReachFive's
	} {
		for _, rec := range []*httptest.ResponseRecorder{
			h.call(c.method, c.path, "Bearer "+adminKey, "", "Origin", corsApp),
			h.preflight(c.path, corsApp, c.method, "authorization"),
		} {
			wantNoCORS(t, rec)
			if varies(rec.Header().Values("Vary"), "Origin") || rec.Code == 204 {
				t.Fatalf("%s %s: %d %v", c.method, c.path, rec.Code, rec.Header())
			}
		}
	}

	plain := newCompatHandler(t, compatConfig(""))
	rec := plain.preflight("/phone/update", corsApp, "POST", "authorization")
	if rec.Code != 405 {
		t.Fatalf("preflight without cors: %d, want 405 as before", rec.Code)
	}
	wantNoCORS(t, rec)
	if rec = plain.call("GET", "/phone", "", "", "Origin", corsApp); rec.Header().Get("Vary") != "" {
		t.Fatalf("without cors: Vary %q", rec.Header().Get("Vary"))
	}
	wantNoCORS(t, rec)
}

// Origins are checked at provision: scheme://host[:port] and nothing else.
func TestCORSOriginsChecked(t *testing.T) {
	for _, bad := range []string{
		"*", "https://*.example.com", "app.example.com", "https://app.example.com/",
		"https://app.example.com/app", "https://app.example.com?x=1", "ftp://app.example.com",
		"https://user@app.example.com", "https://", "https://app.example.com:abc", "null", "",
	} {
		cfg := compatConfig(`,"cors":["https://ok.example.com",` + string(must(json.Marshal(bad))) + `]`)
		err := provisionError(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "cors: origin") || !strings.Contains(err.Error(), "scheme://host[:port]") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	set, err := compileCORS([]string{"HTTPS://App.Example.com:443", "http://[::1]:80", "http://localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"https://app.example.com", "http://[::1]", "http://localhost:8080"} {
		if _, ok := set[want]; !ok {
			t.Errorf("normalised set %v lacks %s", set, want)
		}
	}
}

// The Caddyfile line: a list of origins, given once.
func TestCORSCaddyfile(t *testing.T) {
	p, err := parsePhone(t, "phone {\ncors https://app.example.com http://localhost:5173\n}")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.CORS, []string{"https://app.example.com", "http://localhost:5173"}) {
		t.Fatalf("cors %q", p.CORS)
	}
	for _, c := range []struct{ input, want string }{
		{"cors", "cors: want at least one value"},
		{"cors https://a.example.com\ncors https://b.example.com", "cors: already specified"},
	} {
		if _, err := parsePhone(t, "phone {\n"+c.input+"\n}"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.input, err, c.want)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
