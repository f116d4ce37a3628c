package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

const legacyToken = "Bearer s3cr3t-legacy-token"

// legacyApp is a small stand-in for the legacy app's user API, keeping
// its side of the HTTPUsers contract: GET and PATCH /users/{id} (PATCH
// creates unknown users), and 409 when a verified write would give a
// second user a verified number.
type legacyApp struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	users map[string]appUser
	reqs  []appRequest
}

type appUser struct {
	Phone    *string
	Verified bool
}

type appRequest struct {
	Method, URI string
	Header      http.Header
	Body        string
}

func newLegacyApp(t *testing.T) *legacyApp {
	t.Helper()
	a := &legacyApp{t: t, users: map[string]appUser{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *legacyApp) requests() []appRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appRequest(nil), a.reqs...)
}

func (a *legacyApp) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reqs = append(a.reqs, appRequest{r.Method, r.RequestURI, r.Header.Clone(), string(body)})
	if r.Header.Get("Authorization") != legacyToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	path := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(path, "/users/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		http.NotFound(w, r)
		return
	}
	id, err := url.PathUnescape(rest)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodGet:
		u, ok := a.users[id]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": "someone", "phone": u.Phone, "phone_verified": u.Verified})
	case http.MethodPatch:
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		var in struct {
			Phone    *string `json:"phone"`
			Verified *bool   `json:"phone_verified"`
		}
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || in.Verified == nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if *in.Verified && in.Phone != nil {
			for other, u := range a.users {
				if other != id && u.Verified && u.Phone != nil && *u.Phone == *in.Phone {
					writeJSON(w, http.StatusConflict, map[string]any{"error": "phone_taken"})
					return
				}
			}
		}
		a.users[id] = appUser{Phone: in.Phone, Verified: *in.Verified}
		writeJSON(w, http.StatusOK, map[string]any{"id": id})
	default:
		w.Header().Set("Allow", "GET, PATCH")
		http.Error(w, "", http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func appConfig(base string) store.HTTPConfig {
	return store.HTTPConfig{
		BaseURL: base,
		Headers: map[string]string{"Authorization": legacyToken},
	}
}

func newHTTPUsers(t *testing.T, cfg store.HTTPConfig) *store.HTTPUsers {
	t.Helper()
	s, err := store.NewHTTPUsers(cfg)
	if err != nil {
		t.Fatalf("NewHTTPUsers: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// countingServer answers every request with handle and counts them.
func countingServer(t *testing.T, handle func(n int32, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(n.Add(1), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, legacyToken, "s3cr3t") {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error text %q holds %q", err, s)
		}
	}
}

func TestHTTPUsers(t *testing.T) {
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		return newHTTPUsers(t, appConfig(newLegacyApp(t).srv.URL))
	})
}

func TestHTTPUsersRequests(t *testing.T) {
	ctx := context.Background()
	app := newLegacyApp(t)
	cfg := appConfig(app.srv.URL)
	cfg.Headers["X-Tenant"] = "acme"
	s := newHTTPUsers(t, cfg)

	const id = "a/b c"
	const esc = "/users/a%2Fb%20c"
	if err := s.Set(ctx, store.User{ID: id, PhoneNumber: "+15550001111", Verified: true}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if want := (store.User{ID: id, PhoneNumber: "+15550001111", Verified: true}); err != nil || got != want {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	if err := s.Set(ctx, store.User{ID: id, Verified: true}); err != nil {
		t.Fatal(err)
	}

	want := []appRequest{
		{Method: "PATCH", URI: esc, Body: `{"phone":"+15550001111","phone_verified":true}`},
		{Method: "GET", URI: esc},
		// Removing sends null and never a verified flag without a number.
		{Method: "PATCH", URI: esc, Body: `{"phone":null,"phone_verified":false}`},
	}
	reqs := app.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		r := reqs[i]
		if r.Method != w.Method || r.URI != w.URI || r.Body != w.Body {
			t.Errorf("request %d = %s %s %s; want %s %s %s", i, r.Method, r.URI, r.Body, w.Method, w.URI, w.Body)
		}
		for k, v := range map[string]string{
			"Authorization": legacyToken,
			"X-Tenant":      "acme",
			"Accept":        "application/json",
		} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, got, v)
			}
		}
		ct := r.Header.Get("Content-Type")
		if w.Method == "PATCH" && ct != "application/json" {
			t.Errorf("request %d: Content-Type = %q", i, ct)
		}
		if w.Method == "GET" && (ct != "" || r.Body != "") {
			t.Errorf("request %d: GET with a body (%q, %q)", i, ct, r.Body)
		}
	}
}

func TestHTTPUsersCustomEndpoints(t *testing.T) {
	ctx := context.Background()
	var (
		mu   sync.Mutex
		seen []string
	)
	srv, _ := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Host+" "+r.RequestURI+" "+string(b))
		mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			writeJSON(w, http.StatusOK, map[string]any{"phone": "+15550002222", "phone_verified": true})
		case http.MethodPut:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	s := newHTTPUsers(t, store.HTTPConfig{
		BaseURL:   srv.URL + "/api/v2/",
		GetMethod: "post",
		GetPath:   "/internal/users/{user_id}/phone?who={user_id}",
		SetMethod: "PUT",
		SetPath:   "/internal/users/{user_id}/phone",
		Headers:   map[string]string{"host": "legacy.internal"},
	})
	if _, err := s.Get(ctx, "x+y&z"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, store.User{ID: "x+y&z", PhoneNumber: "+15550002222"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST legacy.internal /api/v2/internal/users/x+y&z/phone?who=x%2By%26z ",
		`PUT legacy.internal /api/v2/internal/users/x+y&z/phone {"phone":"+15550002222","phone_verified":false}`,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestHTTPUsersDotSegmentIDs(t *testing.T) {
	ctx := context.Background()
	app := newLegacyApp(t)
	s := newHTTPUsers(t, appConfig(app.srv.URL))
	for _, id := range []string{".", "..", "../admin", "a/../b", `..\x`, "a/."} {
		if _, err := s.Get(ctx, id); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Get(%q) = %v, want a refusal", id, err)
		}
		if err := s.Set(ctx, store.User{ID: id, PhoneNumber: "+15550003333"}); err == nil {
			t.Errorf("Set(%q) succeeded", id)
		}
	}
	if n := len(app.requests()); n != 0 {
		t.Fatalf("%d requests sent for unsafe IDs", n)
	}
	// Dots inside a segment are harmless and escaped slashes stay in it.
	for id, uri := range map[string]string{"a..b": "/users/a..b", "...": "/users/...", "x/y": "/users/x%2Fy"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		reqs := app.requests()
		if got := reqs[len(reqs)-1].URI; got != uri {
			t.Errorf("Get(%q) asked %s, want %s", id, got, uri)
		}
	}
}

func TestHTTPUsersGetResponses(t *testing.T) {
	big := `{"phone":"+15550004444","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   store.User
		fail   bool
	}{
		{"404 is no number", 404, `{"error":"not found"}`, store.User{ID: "u"}, false},
		{"number verified", 200, `{"phone":"+15550004444","phone_verified":true}`, store.User{ID: "u", PhoneNumber: "+15550004444", Verified: true}, false},
		{"verified absent", 200, `{"phone":"+15550004444"}`, store.User{ID: "u", PhoneNumber: "+15550004444"}, false},
		{"verified as 1", 200, `{"phone":"+15550004444","phone_verified":1}`, store.User{ID: "u", PhoneNumber: "+15550004444", Verified: true}, false},
		{"verified null", 200, `{"phone":"+15550004444","phone_verified":null}`, store.User{ID: "u", PhoneNumber: "+15550004444"}, false},
		{"phone null", 200, `{"phone":null,"phone_verified":false}`, store.User{ID: "u"}, false},
		{"phone absent", 200, `{"id":"u"}`, store.User{ID: "u"}, false},
		{"phone empty", 200, `{"phone":""}`, store.User{ID: "u"}, false},
		{"verified without number", 200, `{"phone":null,"phone_verified":true}`, store.User{ID: "u"}, false},
		{"phone not a string", 200, `{"phone":15550004444}`, store.User{}, true},
		{"verified a string", 200, `{"phone":"+15550004444","phone_verified":"yes"}`, store.User{}, true},
		{"not JSON", 200, `<html>+15550004444</html>`, store.User{}, true},
		{"array", 200, `[{"phone":"+15550004444"}]`, store.User{}, true},
		{"empty", 200, ``, store.User{}, true},
		{"trailing data", 200, `{"phone":null} {}`, store.User{}, true},
		{"over 1 MiB", 200, big, store.User{}, true},
		{"400", 400, `{"phone":"+15550004444"}`, store.User{}, true},
		{"401", 401, ``, store.User{}, true},
		{"403", 403, ``, store.User{}, true},
		{"429", 429, ``, store.User{}, true},
		{"redirect", 302, ``, store.User{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				if r.URL.Path == "/elsewhere" {
					t.Error("redirect followed")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			s := newHTTPUsers(t, store.HTTPConfig{BaseURL: srv.URL})
			got, err := s.Get(context.Background(), "u")
			if tc.fail {
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("Get = %+v, %v; want ErrUnavailable", got, err)
				}
				noSecrets(t, err, "+15550004444")
				// Only 5xx and transport errors are retried.
				if c := n.Load(); c != 1 {
					t.Errorf("%d attempts, want 1", c)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Get = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestHTTPUsersCredentialsError(t *testing.T) {
	app := newLegacyApp(t)
	cfg := appConfig(app.srv.URL)
	cfg.Headers["Authorization"] = "Bearer wrong-s3cr3t"
	s := newHTTPUsers(t, cfg)
	_, err := s.Get(context.Background(), "u")
	var se *store.HTTPStatusError
	if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &se) || se.StatusCode != 401 {
		t.Fatalf("Get = %v; want ErrUnavailable with HTTPStatusError 401", err)
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("error %q does not say 401 / credentials", err)
	}
	if se.Attempts != 1 || len(app.requests()) != 1 {
		t.Errorf("a 401 was retried: %d attempts", len(app.requests()))
	}
	noSecrets(t, err, "wrong-s3cr3t")
}

func TestHTTPUsersRetryThenSuccess(t *testing.T) {
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		writeJSON(w, 200, map[string]any{"phone": "+15550005555", "phone_verified": true})
	})
	s := newHTTPUsers(t, store.HTTPConfig{BaseURL: srv.URL})
	got, err := s.Get(context.Background(), "u")
	if want := (store.User{ID: "u", PhoneNumber: "+15550005555", Verified: true}); err != nil || got != want {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	if c := n.Load(); c != 2 {
		t.Fatalf("%d attempts, want 2", c)
	}
}

func TestHTTPUsersAlways5xx(t *testing.T) {
	for _, tc := range []struct {
		retries  int
		attempts int32
	}{{0, 3}, {1, 2}, {-1, 1}, {3, 4}} {
		t.Run(fmt.Sprint("retries=", tc.retries), func(t *testing.T) {
			srv, n := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "down", http.StatusServiceUnavailable)
			})
			cfg := appConfig(srv.URL)
			cfg.Retries = tc.retries
			s := newHTTPUsers(t, cfg)
			_, err := s.Get(context.Background(), "u")
			var se *store.HTTPStatusError
			if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &se) || se.StatusCode != 503 {
				t.Fatalf("Get: %v; want ErrUnavailable with status 503", err)
			}
			if c := n.Load(); c != tc.attempts || se.Attempts != int(tc.attempts) {
				t.Fatalf("%d attempts (error says %d), want %d", c, se.Attempts, tc.attempts)
			}
		})
	}
}

// hangingServer never answers until the client gives up.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	done := make(chan struct{})
	srv, n := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before srv.Close
	return srv, n
}

func TestHTTPUsersTimeout(t *testing.T) {
	srv, n := hangingServer(t)
	const timeout = 100 * time.Millisecond
	cfg := appConfig(srv.URL)
	cfg.Timeout = timeout
	s := newHTTPUsers(t, cfg)

	start := time.Now()
	_, err := s.Get(context.Background(), "u")
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v; want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if c := n.Load(); c != 3 {
		t.Fatalf("%d attempts, want 3", c)
	}
	// 3 attempts of 100ms plus backoffs of 100ms and 200ms.
	if min, max := 3*timeout, 3*timeout+300*time.Millisecond+time.Second; took < min || took > max {
		t.Fatalf("took %v, want between %v and %v", took, min, max)
	}

	// A write times out once and is not tried again.
	n.Store(0)
	err = s.Set(context.Background(), store.User{ID: "u", PhoneNumber: "+15550007777", Verified: true})
	if !errors.Is(err, store.ErrUnavailable) || n.Load() != 1 {
		t.Fatalf("Set = %v after %d attempts; want ErrUnavailable after 1", err, n.Load())
	}
	noSecrets(t, err, "+15550007777", "15550007777")
}

func TestHTTPUsersCallerContext(t *testing.T) {
	srv, _ := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	cfg := appConfig(srv.URL)
	cfg.Retries = 10
	s := newHTTPUsers(t, cfg)
	// The caller's deadline cuts the backoff short.
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Get(ctx, "u")
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v; want ErrUnavailable wrapping the caller's deadline", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v after a 250ms deadline", took)
	}
}

func TestHTTPUsersConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	s := newHTTPUsers(t, appConfig(base))
	if _, err := s.Get(context.Background(), "u"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get = %v, want ErrUnavailable", err)
	}
	if err := s.Set(context.Background(), store.User{ID: "u"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Set = %v, want ErrUnavailable", err)
	}
}

func TestHTTPUsersSetStatuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		verified bool
		want     error // nil, ErrPhoneInUse or ErrUnavailable
	}{
		{"200", 200, true, nil},
		{"204", 204, false, nil},
		{"409 verified", 409, true, store.ErrPhoneInUse},
		// 409 for an unverified write breaks the contract; telling the
		// user "in use" here would reveal the holder before the code.
		{"409 unverified", 409, false, store.ErrUnavailable},
		{"404 unknown user", 404, true, store.ErrUnavailable},
		{"400", 400, true, store.ErrUnavailable},
		{"403", 403, true, store.ErrUnavailable},
		{"500 not retried", 500, true, store.ErrUnavailable},
		{"503 not retried", 503, true, store.ErrUnavailable},
		{"301 not followed", 301, true, store.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					t.Error("redirect followed")
				}
				if tc.status == 301 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			})
			s := newHTTPUsers(t, appConfig(srv.URL))
			err := s.Set(context.Background(), store.User{ID: "u", PhoneNumber: "+15550008888", Verified: tc.verified})
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Set = %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Set = %v, want %v", err, tc.want)
			case errors.Is(tc.want, store.ErrUnavailable) && errors.Is(err, store.ErrPhoneInUse):
				t.Fatalf("Set = %v, must not be ErrPhoneInUse", err)
			}
			if c := n.Load(); c != 1 {
				t.Fatalf("%d attempts, want exactly 1", c)
			}
			noSecrets(t, err, "+15550008888", "15550008888")
		})
	}
}

func TestHTTPUsersDottedFields(t *testing.T) {
	ctx := context.Background()
	var lastBody atomic.Value
	srv, _ := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			lastBody.Store(string(b))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, `{"id":"u","profile":{"phone":"+15550009999","contact":{"verified":true}}}`)
	})
	s := newHTTPUsers(t, store.HTTPConfig{
		BaseURL:       srv.URL,
		PhoneField:    "profile.phone",
		VerifiedField: "profile.contact.verified",
	})
	got, err := s.Get(ctx, "u")
	if want := (store.User{ID: "u", PhoneNumber: "+15550009999", Verified: true}); err != nil || got != want {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	if err := s.Set(ctx, store.User{ID: "u", PhoneNumber: "+15550009999", Verified: true}); err != nil {
		t.Fatal(err)
	}
	if b, want := lastBody.Load(), `{"profile":{"contact":{"verified":true},"phone":"+15550009999"}}`; b != want {
		t.Fatalf("Set body = %s, want %s", b, want)
	}

	// Missing or null parents mean no number; a non-object parent is an error.
	for body, wantErr := range map[string]bool{
		`{"id":"u"}`:                   false,
		`{"profile":null}`:             false,
		`{"profile":{}}`:               false,
		`{"profile":"+15550009999"}`:   true,
		`{"profile":{"contact":true}}`: true,
	} {
		srv, _ := countingServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
		s := newHTTPUsers(t, store.HTTPConfig{BaseURL: srv.URL, PhoneField: "profile.phone", VerifiedField: "profile.contact.verified"})
		got, err := s.Get(ctx, "u")
		if wantErr != (err != nil) || (err == nil && got != store.User{ID: "u"}) {
			t.Errorf("body %s: Get = %+v, %v; want error %v", body, got, err, wantErr)
		}
		noSecrets(t, err, "+15550009999")
	}
}

func TestHTTPUsersEmptyIDAndClose(t *testing.T) {
	ctx := context.Background()
	app := newLegacyApp(t)
	s, err := store.NewHTTPUsers(appConfig(app.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := s.Get(ctx, ""); err != nil || u != (store.User{}) {
		t.Fatalf(`Get("") = %+v, %v`, u, err)
	}
	if err := s.Set(ctx, store.User{PhoneNumber: "+15550001234"}); err == nil {
		t.Fatal("Set with no ID succeeded")
	}
	if len(app.requests()) != 0 {
		t.Fatal("a request was sent for an empty ID")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "u"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}
}

func TestHTTPUsersOwnClient(t *testing.T) {
	app := newLegacyApp(t)
	client := &http.Client{Transport: &http.Transport{}}
	cfg := appConfig(app.srv.URL)
	cfg.Client = client
	s := newHTTPUsers(t, cfg)
	if err := s.Set(context.Background(), store.User{ID: "u", PhoneNumber: "+15550001234"}); err != nil {
		t.Fatal(err)
	}
	if client.CheckRedirect != nil {
		t.Fatal("the caller's client was modified")
	}
}

func TestNewHTTPUsersConfig(t *testing.T) {
	ok := func(c *store.HTTPConfig) {}
	for _, tc := range []struct {
		name string
		edit func(*store.HTTPConfig)
		want string // substring of the error; "" = valid
	}{
		{"defaults", ok, ""},
		{"base with prefix", func(c *store.HTTPConfig) { c.BaseURL = "https://legacy:3000/api/" }, ""},
		{"lowercase methods", func(c *store.HTTPConfig) {
			c.GetMethod, c.GetPath, c.SetMethod, c.SetPath = "get", "/u/{user_id}", "put", "/u/{user_id}"
		}, ""},
		{"no base", func(c *store.HTTPConfig) { c.BaseURL = "" }, "base URL is empty"},
		{"bad scheme", func(c *store.HTTPConfig) { c.BaseURL = "ftp://legacy" }, "scheme"},
		{"no scheme", func(c *store.HTTPConfig) { c.BaseURL = "legacy:3000" }, "base URL"},
		{"no host", func(c *store.HTTPConfig) { c.BaseURL = "http:///users" }, "no host"},
		{"credentials in URL", func(c *store.HTTPConfig) { c.BaseURL = "http://me:s3cr3t@legacy" }, "credentials"},
		{"query in base", func(c *store.HTTPConfig) { c.BaseURL = "http://legacy/?x=1" }, "query"},
		{"unparsable base", func(c *store.HTTPConfig) { c.BaseURL = "http://legacy:s3cr3t/" }, "base URL"},
		{"get method alone", func(c *store.HTTPConfig) { c.GetMethod = "GET" }, "get: method and path"},
		{"set path alone", func(c *store.HTTPConfig) { c.SetPath = "/u/{user_id}" }, "set: method and path"},
		{"get DELETE", func(c *store.HTTPConfig) { c.GetMethod, c.GetPath = "DELETE", "/u/{user_id}" }, "want GET or POST"},
		{"set GET", func(c *store.HTTPConfig) { c.SetMethod, c.SetPath = "GET", "/u/{user_id}" }, "want PATCH, PUT or POST"},
		{"get path without id", func(c *store.HTTPConfig) { c.GetMethod, c.GetPath = "GET", "/users/me" }, "must contain {user_id}"},
		{"set path without id", func(c *store.HTTPConfig) { c.SetMethod, c.SetPath = "PATCH", "/users" }, "must contain {user_id}"},
		{"relative path", func(c *store.HTTPConfig) { c.GetMethod, c.GetPath = "GET", "users/{user_id}" }, "must start with /"},
		{"unknown placeholder", func(c *store.HTTPConfig) { c.GetMethod, c.GetPath = "GET", "/users/{id}/{user_id}" }, "unknown placeholder"},
		{"fragment", func(c *store.HTTPConfig) { c.GetMethod, c.GetPath = "GET", "/users/{user_id}#x" }, "fragment"},
		{"bad header name", func(c *store.HTTPConfig) { c.Headers = map[string]string{"Bad Name": "x"} }, "not a valid HTTP token"},
		{"empty header", func(c *store.HTTPConfig) { c.Headers = map[string]string{"Authorization": ""} }, "empty value"},
		{"unset env in header", func(c *store.HTTPConfig) { c.Headers = map[string]string{"Authorization": "Bearer "} }, "ends with a space"},
		{"header newline", func(c *store.HTTPConfig) { c.Headers = map[string]string{"Authorization": "Bearer s3cr3t\r\nX: y"} }, "control character"},
		{"empty phone field", func(c *store.HTTPConfig) { c.PhoneField = "profile..phone" }, "phone_field"},
		{"empty verified segment", func(c *store.HTTPConfig) { c.VerifiedField = "." }, "verified_field"},
		{"same fields", func(c *store.HTTPConfig) { c.PhoneField, c.VerifiedField = "phone", "phone" }, "overlap"},
		{"nested fields", func(c *store.HTTPConfig) { c.PhoneField, c.VerifiedField = "phone", "phone.verified" }, "overlap"},
		{"negative timeout", func(c *store.HTTPConfig) { c.Timeout = -time.Second }, "timeout"},
		{"too many retries", func(c *store.HTTPConfig) { c.Retries = 11 }, "retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := store.HTTPConfig{BaseURL: "http://legacy:3000", Headers: map[string]string{"Authorization": legacyToken}}
			tc.edit(&cfg)
			s, err := store.NewHTTPUsers(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("NewHTTPUsers: %v", err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewHTTPUsers = %v; want an error with %q", err, tc.want)
			}
			noSecrets(t, err)
		})
	}
}
