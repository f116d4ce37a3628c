package caddymodule

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// GET <prefix>/ui is the static page, without a token, with strict headers;
// HEAD has the headers only; other methods are 405 with Allow.
func TestUIPage(t *testing.T) {
	p := provisionPhone(t, benchConfig)
	serve := func(method, path string) *httptest.ResponseRecorder {
		t.Helper()
		rec := httptest.NewRecorder()
		if err := p.ServeHTTP(rec, caddyRequest(method, path, ""), noopNext); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	rec := serve(http.MethodGet, "/phone/ui")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /phone/ui: %d %s", rec.Code, rec.Body)
	}
	h := rec.Header()
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "connect-src 'self'", "form-action 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "script-src 'sha256-", "style-src 'sha256-"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP lacks %q: %s", d, csp)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %s", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		"Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s %q, want %q", k, got, v)
		}
	}
	page := rec.Body.String()
	if !strings.HasPrefix(page, "<!doctype html>") {
		t.Errorf("body is not the page: %.60q", page)
	}
	// The CSP's hashes are those of the page's inline script and style.
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("page has no <%s>", tag)
		}
		sum := sha256.Sum256([]byte(m[1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %s", want)
		}
	}

	head := serve(http.MethodHead, "/phone/ui")
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Security-Policy") != csp {
		t.Errorf("HEAD /phone/ui: %d, %d body bytes, CSP %q", head.Code, head.Body.Len(), head.Header().Get("Content-Security-Policy"))
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := serve(m, "/phone/ui")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" ||
			!strings.Contains(rec.Body.String(), `"method_not_allowed"`) {
			t.Errorf("%s /phone/ui: %d Allow %q %s", m, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
	for _, path := range []string{"/phone/ui/", "/phone/uix", "/phone/ui/x"} {
		if rec := serve(http.MethodGet, path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
}

// The page lives under a custom prefix too.
func TestUIPageCustomPrefix(t *testing.T) {
	p := provisionPhone(t, strings.Replace(benchConfig, `{"jwt"`, `{"prefix":"/account/phone/","jwt"`, 1))
	rec := httptest.NewRecorder()
	if err := p.ServeHTTP(rec, caddyRequest(http.MethodGet, "/account/phone/ui", ""), noopNext); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "<!doctype html>") {
		t.Fatalf("GET /account/phone/ui: %d", rec.Code)
	}
	passed := false
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { passed = true; return nil })
	if err := p.ServeHTTP(httptest.NewRecorder(), caddyRequest(http.MethodGet, "/phone/ui", ""), next); err != nil {
		t.Fatal(err)
	}
	if !passed {
		t.Error("/phone/ui outside the custom prefix was not passed on")
	}
}

// The page is self-contained, shows data only through textContent, and
// has the seed docs' form fields.
func TestUIPageContent(t *testing.T) {
	page := string(uiPage)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
		"localStorage", "sessionStorage", "http://", "https://", " src=", " href=", "style=\""} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{
		`<label for="phone">Phone number</label>`,
		`<input id="phone" type="tel"`,
		`<label for="code">Verification code</label>`,
		`inputmode="numeric" autocomplete="one-time-code"`,
		`"/update"`, `"/verify"`, `"/resend"`, `"DELETE", "/pending"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// No input has a name, so a submit without the script sends nothing
	// (above all, never the token in a URL).
	if regexp.MustCompile(`<input[^>]*\sname=`).MatchString(page) {
		t.Error("an input has a name attribute")
	}
}
