package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// seen is one request as the legacy app received it.
type seen struct {
	method, path, rawQuery string
	body                   []byte
	header                 http.Header
}

// legacyApp is an httptest upstream that records what reaches it.
type legacyApp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newLegacyApp(t *testing.T) *legacyApp {
	a := &legacyApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.reqs = append(a.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body, r.Header.Clone()})
		a.mu.Unlock()
		_, _ = io.WriteString(w, "legacy")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// last returns the last request the app got, failing if there is none.
func (a *legacyApp) last(t *testing.T) seen {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		t.Fatal("the legacy app got no request")
	}
	return a.reqs[len(a.reqs)-1]
}

func (a *legacyApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

// proxyTo is a site upstream: reverse_proxy to the app, telling it the
// user in X-User.
func proxyTo(a *legacyApp) string {
	return "reverse_proxy " + strings.TrimPrefix(a.srv.URL, "http://") + " {\n\t\theader_up X-User {http.auth.user.id}\n\t}"
}

// Non-/phone requests reach the app untouched, but for client-sent
// X-Phone-* headers, which are dropped.
func TestPassThroughUntouched(t *testing.T) {
	app := newLegacyApp(t)
	e := newEnv(t, site{upstream: proxyTo(app)})
	tok := token(t, uniqueUser(t, "u"))
	body := []byte("raw \x00\xff bytes {not json}\r\n")
	for _, method := range []string{"POST", "PUT", "GET", "DELETE", "PATCH"} {
		b := body
		if method == "GET" {
			b = nil
		}
		r := e.doRaw(method, "/legacy/items/42?a=1&b=%2F", map[string]string{
			"Authorization":    "Bearer " + tok,
			"X-Custom":         "Kept As Is",
			"Content-Type":     "application/octet-stream",
			"X-Phone-Number":   "+15550000000",
			"x-phone-user":     "mallory",
			"X-Phone-Verified": "true",
			"X-PHONE-ANYTHING": "1",
		}, b)
		if r.status != 200 || r.raw != "legacy" {
			t.Fatalf("%s: %d %q", method, r.status, r.raw)
		}
		got := app.last(t)
		if got.method != method || got.path != "/legacy/items/42" || got.rawQuery != "a=1&b=%2F" {
			t.Errorf("%s: app saw %s %s?%s", method, got.method, got.path, got.rawQuery)
		}
		if string(got.body) != string(b) {
			t.Errorf("%s: app saw body %q, want %q", method, got.body, b)
		}
		if got.header.Get("X-Custom") != "Kept As Is" || got.header.Get("Authorization") != "Bearer "+tok {
			t.Errorf("%s: headers not passed on: %v", method, got.header)
		}
		for k := range got.header {
			if strings.HasPrefix(strings.ToLower(k), "x-phone-") {
				t.Errorf("%s: client-sent %s reached the app", method, k)
			}
		}
	}
}

// A valid token fills {http.auth.user.id}; without one, or with a bad one,
// it is empty (never the literal placeholder) and the request still goes
// through: the app does its own auth.
func TestPassThroughUserPlaceholder(t *testing.T) {
	app := newLegacyApp(t)
	e := newEnv(t, site{upstream: proxyTo(app)})
	u := uniqueUser(t, "u")
	cases := []struct{ name, auth, user string }{
		{"valid token", "Bearer " + token(t, u), u},
		{"no token", "", ""},
		{"invalid token", "Bearer garbage", ""},
		{"token signed with another secret", "Bearer " + hs256(t, "another-secret-0123456789abcdef", map[string]any{"sub": "mallory"}), ""},
		{"basic auth", "Basic bWFsbG9yeTpwdw==", ""},
	}
	for _, c := range cases {
		hdr := map[string]string{"X-User": "forged"}
		if c.auth != "" {
			hdr["Authorization"] = c.auth
		}
		r := e.doRaw("GET", "/dashboard", hdr, nil)
		if r.status != 200 || r.raw != "legacy" {
			t.Errorf("%s: %d %q, want the app's answer", c.name, r.status, r.raw)
			continue
		}
		got := app.last(t)
		if v := got.header.Values("X-User"); len(v) != 1 || v[0] != c.user {
			t.Errorf("%s: X-User %q, want %q", c.name, v, c.user)
		}
		if got.header.Get("Authorization") != c.auth {
			t.Errorf("%s: Authorization %q not passed on", c.name, got.header.Get("Authorization"))
		}
	}
	// The /phone routes are answered here and never reach the app.
	n := app.count()
	e.do("GET", "/phone", token(t, u), nil).want(t, 200, "")
	e.do("GET", "/phone/nope", "", nil).want(t, 404, "not_found")
	e.do("GET", "/phone", "", nil).want(t, 401, "unauthorized")
	if app.count() != n {
		t.Fatal("a /phone request reached the app")
	}
}
