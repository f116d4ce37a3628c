// Package e2e drives the phone module through a real Caddy server, started
// in this process by caddytest, exactly as a platform team would run it.
// All caddytest tests live here: Caddy's admin port is fixed, so they must
// share one process and run one at a time.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"

	_ "github.com/caddy-phone/caddy-phone/caddymodule"
	"github.com/caddy-phone/caddy-phone/sms"
)

const (
	jwtSecret  = "e2e-secret-0123456789abcdef"
	hookSecret = "hook-secret-0123456789"
)

// Ports: caddytest's admin port 2999 and sites from 9080, unless
// PHONE_E2E_PORTS="<admin> <http>" moves them (so that two copies of this
// suite can run on one machine).
var (
	adminPort = 2999
	httpPort  = 9080
	httpsPort = 9083
	base      = "http://localhost:9080"
)

func TestMain(m *testing.M) {
	flag.Parse() // before startCaddy rewrites os.Args for Caddy's own CLI
	if v := os.Getenv("PHONE_E2E_PORTS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d %d", &adminPort, &httpPort); err != nil {
			fmt.Fprintln(os.Stderr, "PHONE_E2E_PORTS: want \"<admin port> <http port>\":", err)
			os.Exit(2)
		}
		httpsPort = httpPort + 3
		base = fmt.Sprintf("http://localhost:%d", httpPort)
	}
	caddytest.Default.AdminPort = adminPort
	dir, err := os.MkdirTemp("", "caddy-phone-e2e")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	// caddytest starts Caddy lazily and *skips* the test when it cannot;
	// start it here instead so that a Caddy that cannot start fails the run.
	if err := startCaddy(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: Caddy did not start:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startCaddy(dir string) error {
	cfg := fmt.Sprintf("{\n\tadmin localhost:%d\n}\n", adminPort)
	f := dir + "/init.caddyfile"
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		return err
	}
	os.Args = []string{"caddy", "run", "--config", f, "--adapter", "caddyfile"}
	go caddycmdMain()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", adminPort))
		if err == nil {
			res.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("admin API not listening on localhost:%d", adminPort)
}

// site describes one test's Caddyfile; zero values give a working default.
type site struct {
	phone    string // extra lines inside phone { }
	jwt      string // extra lines inside its jwt { } (jwtLines)
	sms      string // sms lines; default: one webhook to the test's SMS sink
	store    string // default: defaultStore, a sqlite database of the test's own
	cache    string // default: defaultCache, bigcache
	upstream string // default: respond with the user placeholder
	global   string // extra global options
	others   string // further site blocks, after the phone site
}

// env is one test's running Caddy, SMS sink and client.
type env struct {
	t      *testing.T
	tester *caddytest.Tester
	sink   *smsSink
	client *http.Client
	// cacheSecret is the `secret` of this test's config: a new one gives
	// each test a fresh challenge cache (the pool keys caches by it).
	cacheSecret string
	// store and cache are this env's default store and cache lines.
	store, cache string
}

func newEnv(t *testing.T, s site) *env {
	t.Helper()
	sink := newSMSSink(t)
	e := &env{t: t, sink: sink, client: &http.Client{Timeout: 15 * time.Second},
		cacheSecret: newCacheSecret()}
	e.tester = caddytest.NewTester(t)
	e.load(s)
	return e
}

// withDefaults fills what s leaves empty. The default store and cache are
// chosen once per env, so a reload keeps them.
func (e *env) withDefaults(s site) site {
	if s.sms == "" {
		s.sms = webhookLine(e.sink.srv.URL, "")
	}
	if e.store == "" {
		e.store, e.cache = defaultStore(e.t), defaultCache(e.t)
	}
	if s.store == "" {
		s.store = e.store
	}
	if s.cache == "" {
		s.cache = e.cache
	}
	if s.upstream == "" {
		s.upstream = `respond "user={http.auth.user.id}"`
	}
	return s
}

func (e *env) load(s site) {
	e.t.Helper()
	s = e.withDefaults(s)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1s
	%s
}
:%d {
	phone {
		jwt {
			secret %s
			%s
		}
		secret %s
		%s
		%s
		%s
		%s
	}
	%s
}
%s
`, adminPort, httpPort, httpsPort, s.global, httpPort, jwtSecret, s.jwt, e.cacheSecret, s.store, s.cache, s.sms, s.phone, s.upstream, s.others)
	e.tester.InitServer(cfg, "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
	e.reloaded()
}

// reloaded drops the client's kept-alive connections: the old config's
// server closes them, and a POST sent on one would fail with EOF (Go
// retries only idempotent requests on a closed connection).
func (e *env) reloaded() {
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
}

// token mints an HS256 token for user with extra claims.
func token(t testing.TB, user string, extra ...any) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (e *env) do(method, path, tok string, body any) response {
	e.t.Helper()
	return e.doAt(base, method, path, tok, body)
}

// doAt is do against another site address.
func (e *env) doAt(site, method, path, tok string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, site+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return e.send(req)
}

// send makes the request and decodes the answer.
func (e *env) send(req *http.Request) response {
	e.t.Helper()
	res, err := e.client.Do(req)
	if errors.Is(err, io.EOF) && req.GetBody != nil {
		// Right after a reload, the previous config's server may close a
		// connection it accepted while shutting down, unanswered: the
		// request reached no handler, so it is sent once more.
		e.t.Logf("%s %s: %v; sending it again", req.Method, req.URL.Path, err)
		if req.Body, err = req.GetBody(); err == nil {
			res, err = e.client.Do(req)
		}
	}
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// want checks status and, for error answers, the error code.
func (r response) want(t *testing.T, status int, errCode string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if errCode != "" && r.body["error"] != errCode {
		t.Fatalf("error %v, want %q; body %s", r.body["error"], errCode, r.raw)
	}
	return r
}

// smsSink is a webhook SMS gateway that checks the signature and the
// body of SPEC §8 and keeps the messages.
type smsSink struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []sms.Message
	fail bool // answer 500
}

var codeRE = regexp.MustCompile(`\b\d{4,10}\b`)

func newSMSSink(t *testing.T) *smsSink {
	s := &smsSink{t: t}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *smsSink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := sms.VerifySignature([]byte(hookSecret), r.Header.Get("X-Phone-Signature"), body, time.Now(), time.Minute); err != nil {
		s.t.Errorf("sms webhook: bad signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		s.t.Errorf("sms webhook: body not JSON: %v", err)
	}
	for _, k := range []string{"id", "to", "body", "code", "locale", "purpose", "user_id", "template_options", "channel"} {
		if _, ok := fields[k]; !ok {
			s.t.Errorf("sms webhook: body lacks %q: %s", k, body)
		}
	}
	var m sms.Message
	_ = json.Unmarshal(body, &m)
	s.mu.Lock()
	fail := s.fail
	if !fail {
		s.msgs = append(s.msgs, m)
	}
	s.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func (s *smsSink) setFail(v bool) {
	s.mu.Lock()
	s.fail = v
	s.mu.Unlock()
}

// last returns the last message sent to user, failing if there is none.
func (s *smsSink) last(user string) sms.Message {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.msgs) - 1; i >= 0; i-- {
		if s.msgs[i].UserID == user {
			return s.msgs[i]
		}
	}
	s.t.Fatalf("no SMS sent for %s", user)
	return sms.Message{}
}

func (s *smsSink) count(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.UserID == user {
			n++
		}
	}
	return n
}

// uniqueUser gives each test its own users: the memory store is shared by
// the whole process.
func uniqueUser(t *testing.T, name string) string {
	return fmt.Sprintf("%s-%s-%d", t.Name(), name, time.Now().UnixNano())
}

func newTester(t *testing.T) *caddytest.Tester { return caddytest.NewTester(t) }

// webhookLine is an `sms webhook` directive for a sink, optionally named.
func webhookLine(url, name string) string {
	l := "sms webhook " + url + " {\n\t\t\tsecret " + hookSecret + "\n"
	if name != "" {
		l += "\t\t\tname " + name + "\n"
	}
	return l + "\t\t}"
}

func newCacheSecret() string { return fmt.Sprintf("otp-secret-%d", time.Now().UnixNano()) }

// ---- Helpers for the auth, error, pass-through, reload, adapt and log tests.

// forceReload posts the running config back to Caddy with
// `Cache-Control: must-revalidate`, so Caddy provisions it anew even though
// it is unchanged (a plain re-load of the same config is a no-op).
func (e *env) forceReload() {
	e.t.Helper()
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", adminPort))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://localhost:%d/load", adminPort), bytes.NewReader(cfg))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("forced reload: %d %s", res.StatusCode, body)
	}
	e.reloaded()
}

// loadRaw posts a Caddyfile to the admin /load endpoint and returns the
// answer; unlike load it does not fail the test when Caddy refuses it.
func loadRaw(t *testing.T, caddyfile string) (int, string) {
	t.Helper()
	// The admin endpoint can drop a connection while it swaps configs;
	// a transport error is retried, a refusal is an answer.
	var res *http.Response
	var err error
	for try := 0; try < 3; try++ {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://localhost:%d/load", adminPort), strings.NewReader(caddyfile))
		req.Header.Set("Content-Type", "text/caddyfile")
		if res, err = (&http.Client{Timeout: 30 * time.Second}).Do(req); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// jwtLines are extra lines for site.jwt, beside the harness's `secret`
// (a second jwt block would be "already specified").
func jwtLines(lines ...string) string {
	return strings.Join(lines, "\n")
}

// signToken signs exactly claims (no defaults) with method and key.
func signToken(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// doRaw is do with the request headers given as they are (keys are not
// canonicalised, Authorization included) and a raw body.
func (e *env) doRaw(method, path string, hdr map[string]string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	return e.send(req)
}

// defaultStore and defaultCache give each test its own store and cache;
// backends_test.go swaps them to run the same tests on other backends.
var (
	defaultStore = func(t *testing.T) string { return "store sqlite " + t.TempDir() + "/phone.db" }
	defaultCache = func(t *testing.T) string { return "" }
)

// ---- TLS sites (the ReachFive SDK only calls https://<domain>).

// tlsBase is the address of the site loadTLS serves.
func tlsBase() string { return fmt.Sprintf("https://localhost:%d", httpsPort) }

// loadTLS is load for a site on https://localhost:<httpsPort> with `tls
// internal` (no HTTP site, no redirects, nothing installed in the system
// trust store, the CA and certificates kept under caddyDataDir: Caddy's
// default storage was fixed before TestMain set XDG_DATA_HOME). It waits
// until the site's certificate is served and makes
// e.client trust Caddy's local root (trustCaddyRoot, in node_test.go).
func (e *env) loadTLS(s site) {
	e.t.Helper()
	s = e.withDefaults(s)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1s
	skip_install_trust
	auto_https disable_redirects
	storage file_system %s
	%s
}
https://localhost:%d {
	tls internal
	phone {
		jwt {
			secret %s
			%s
		}
		secret %s
		%s
		%s
		%s
		%s
	}
	%s
}
`, adminPort, httpPort, httpsPort, caddyDataDir(), s.global, httpsPort, jwtSecret, s.jwt, e.cacheSecret, s.store, s.cache, s.sms,
		s.phone, s.upstream)
	e.tester.InitServer(cfg, "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
	e.client = trustCaddyRoot(e.t)
}
