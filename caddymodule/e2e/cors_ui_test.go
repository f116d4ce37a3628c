package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A real Chromium on a page of another origin calls the API as Descope's
// web SDK does (credentials: 'include', an x-descope-* header): from a
// listed origin it reads the answers, errors included; from an unlisted
// one the browser blocks the call.
func TestCORSBrowser(t *testing.T) {
	page := func() *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<!doctype html><title>app</title><p>app</p>")
		}))
		t.Cleanup(s.Close)
		return s
	}
	listed, unlisted := page(), page()
	e := newEnv(t, site{
		jwt:   jwtLines("project_id P2cors"),
		phone: "compat descope\ncors " + listed.URL,
	})
	user := uniqueUser(t, "u")
	tok := token(t, user)
	b := newBrowser(t)

	call := func(path, auth, body string) string {
		t.Helper()
		method := "GET"
		if body != "" {
			method = "POST"
		}
		b.eval(fmt.Sprintf(`window.__r = ""; fetch(%q, {method: %q, credentials: "include",
			headers: Object.assign({"Content-Type": "application/json", "x-descope-sdk-name": "web-js"}, %q ? {"Authorization": %q} : {}),
			body: %q || undefined})
		.then(function(r){ return r.text().then(function(t){ window.__r = r.status + " " + t; }); })
		.catch(function(e){ window.__r = "blocked " + e.name; }); "started"`,
			uiBase()+path, method, auth, auth, body))
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if r := b.eval(`window.__r || ""`); r != "" {
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no answer", path)
		return ""
	}

	b.do(chromedp.Navigate(listed.URL + "/"))
	if r := call("/phone/update", "Bearer "+tok, `{"phone_number":"+33612345670"}`); !strings.HasPrefix(r, "200 ") || !strings.Contains(r, `"status"`) {
		t.Fatalf("update from a listed origin: %s", r)
	}
	if r := call("/phone", "", ""); !strings.HasPrefix(r, "401 ") || !strings.Contains(r, "unauthorized") {
		t.Fatalf("an error from a listed origin must be readable: %s", r)
	}
	if r := call("/v1/auth/otp/update/phone/sms", "Bearer P2cors:"+tok, `{"loginId":"x","phone":"+33612345671"}`); strings.HasPrefix(r, "blocked") {
		t.Fatalf("Descope route from a listed origin: %s", r)
	}

	b.do(chromedp.Navigate(unlisted.URL + "/"))
	if r := call("/phone/update", "Bearer "+tok, `{"phone_number":"+33612345672"}`); r != "blocked TypeError" {
		t.Fatalf("update from an unlisted origin: %s", r)
	}
	// The preflight refused, the browser never sent the update: one SMS.
	if n := e.sink.count(user); n != 1 {
		t.Fatalf("%d SMS for %s, want 1 (the listed origin's update)", n, user)
	}
}
