package e2e

// The security test matrix of the README's "Security defaults" table: each
// attack runs through a real Caddy. Rows already covered elsewhere (the
// shared 401, lockout, resend, verify_per_user, body errors, log
// redaction, one winner among concurrent verifies) are not repeated here.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	gotoken "go/token"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ---- Helpers of this file.

// loopback is the site's address on 127.0.0.1 (base may resolve to ::1,
// and trusted_proxies below names 127.0.0.1).
func loopback() string { return fmt.Sprintf("http://127.0.0.1:%d", httpPort) }

// at sends a request to 127.0.0.1 with the given headers (values as they
// are) and body.
func (e *env) at(method, path string, hdr http.Header, body []byte) response {
	e.t.Helper()
	r, err := e.try(method, path, hdr, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is at for other goroutines: it returns the error instead of ending
// the test.
func (e *env) try(method, path string, hdr http.Header, body []byte) (response, error) {
	req, err := http.NewRequest(method, loopback()+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := e.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, err
}

func bearerHdr(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// jsonBody marshals v.
func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// the401 is the one 401 answer every refused token must get; it is read
// from the running server with a garbage token.
func the401(t *testing.T, e *env) response {
	t.Helper()
	r := e.at("GET", "/phone", bearerHdr("garbage"), nil).want(t, 401, "unauthorized")
	if r.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	return r
}

// wantSame401 checks r is exactly the shared 401.
func wantSame401(t *testing.T, what string, r, canon response) {
	t.Helper()
	if r.status != 401 || r.raw != canon.raw || r.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Errorf("%s: %d %q (WWW-Authenticate %q), want the shared 401 %s", what, r.status, r.raw,
			r.header.Get("WWW-Authenticate"), canon.raw)
	}
}

var (
	rsaOnce sync.Once
	rsaKeys [3]*rsa.PrivateKey // the IdP's key A, its rotated key B, an attacker's key
)

// rsaKey returns test RSA key i (0: IdP A, 1: IdP B, 2: attacker).
func rsaKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

// writePublicPEM writes key's public half as a PKIX "PUBLIC KEY" PEM file
// and returns its path and bytes.
func writePublicPEM(t *testing.T, key *rsa.PrivateKey) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// freshClaims are valid claims for user with a random jti, so that each
// token is new to the verified-token cache and checked in full.
func freshClaims(user string, extra ...any) jwt.MapClaims {
	now := time.Now()
	var j [8]byte
	_, _ = rand.Read(j[:])
	c := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(j[:])}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

// signWith signs claims with method and key, adding hdr to the JOSE header.
func signWith(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, hdr map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWT builds a token from a header and claims as given, signed by sign
// over "<header>.<claims>" (nil: an empty signature).
func rawJWT(t *testing.T, header map[string]any, claims jwt.MapClaims, sign func(input []byte) []byte) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString(jsonBody(t, header)) + "." +
		base64.RawURLEncoding.EncodeToString(jsonBody(t, claims))
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hmacSHA256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

// rsaJWK is the JWKS form of key's public half.
func rsaJWK(key *rsa.PrivateKey, kid string) map[string]string {
	return map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}
}

// hitCounter is an httptest server that counts the requests it gets and
// answers 404: an attacker's server a token points at.
type hitCounter struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   int
}

func newHitCounter(t *testing.T) *hitCounter {
	h := &hitCounter{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hitCounter) hits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// jwksServer serves a JWKS document it can change, slow down or fail.
type jwksServer struct {
	srv         *httptest.Server
	mu          sync.Mutex
	keys        []map[string]string
	hang        bool // hold requests until the client gives up
	hits        []time.Time
	release     chan struct{}
	releaseOnce sync.Once
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	j := &jwksServer{keys: keys, release: make(chan struct{})}
	j.srv = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(j.srv.Close)
	t.Cleanup(j.unblock) // runs first: a held request must not stall Close
	return j
}

func (j *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	j.hits = append(j.hits, time.Now())
	hang, doc := j.hang, map[string]any{"keys": j.keys}
	j.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-j.release:
		}
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(doc)
}

func (j *jwksServer) unblock() { j.releaseOnce.Do(func() { close(j.release) }) }

func (j *jwksServer) set(hang bool, keys ...map[string]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hang = hang
	if keys != nil {
		j.keys = keys
	}
}

// count returns the number of fetches so far and the time of the last.
func (j *jwksServer) count() (int, time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.hits) == 0 {
		return 0, time.Time{}
	}
	return len(j.hits), j.hits[len(j.hits)-1]
}

// waitRefetchAllowed sleeps until the verifier may refetch the JWKS again
// (it refetches on an unknown kid at most once per 10 s).
func (j *jwksServer) waitRefetchAllowed() {
	_, last := j.count()
	time.Sleep(time.Until(last.Add(10*time.Second + 300*time.Millisecond)))
}

// loadJWTOnly loads the usual site but with exactly these jwt lines (no
// harness secret), for configurations without an HMAC key.
func (e *env) loadJWTOnly(jwtLines ...string) {
	e.t.Helper()
	if e.store == "" {
		e.store, e.cache = defaultStore(e.t), defaultCache(e.t)
	}
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1s
}
:%d {
	phone {
		jwt {
			%s
		}
		secret %s
		%s
		%s
		%s
	}
	respond "user={http.auth.user.id}"
}
`, adminPort, httpPort, httpsPort, httpPort, strings.Join(jwtLines, "\n\t\t\t"), e.cacheSecret, e.store, e.cache,
		webhookLine(e.sink.srv.URL, ""))
	e.tester.InitServer(cfg, "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
}

func newBareEnv(t *testing.T) *env {
	e := &env{t: t, sink: newSMSSink(t), client: &http.Client{Timeout: 15 * time.Second}, cacheSecret: newCacheSecret()}
	e.tester = newTester(t)
	return e
}

// ---- Tokens.

// An RS256 public_key_file: an HS256 token whose HMAC key is the PEM file
// itself (the classic RS/HS confusion) is refused, whether or not an HMAC
// secret is also configured, as are its variants (DER bytes, HS384/512).
func TestAlgorithmConfusionPublicKeyFile(t *testing.T) {
	key := rsaKey(t, 0)
	pemPath, pemBytes := writePublicPEM(t, key)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	forged := func(t *testing.T, u string) map[string]string {
		return map[string]string{
			"HS256 keyed with the PEM":                 signWith(t, jwt.SigningMethodHS256, pemBytes, freshClaims(u), nil),
			"HS256 keyed with the PEM, no newline":     signWith(t, jwt.SigningMethodHS256, bytes.TrimSpace(pemBytes), freshClaims(u), nil),
			"HS384 keyed with the PEM":                 signWith(t, jwt.SigningMethodHS384, pemBytes, freshClaims(u), nil),
			"HS512 keyed with the PEM":                 signWith(t, jwt.SigningMethodHS512, pemBytes, freshClaims(u), nil),
			"HS256 keyed with the DER":                 signWith(t, jwt.SigningMethodHS256, der, freshClaims(u), nil),
			"HS256 keyed with the PEM, RS256 kid hint": signWith(t, jwt.SigningMethodHS256, pemBytes, freshClaims(u), map[string]any{"kid": "idp"}),
		}
	}
	for _, c := range []struct {
		name string
		load func(e *env)
	}{
		{"public_key_file only", func(e *env) { e.loadJWTOnly("public_key_file " + pemPath) }},
		{"public_key_file and secret", func(e *env) { e.load(site{jwt: jwtLines("public_key_file " + pemPath)}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newBareEnv(t)
			c.load(e)
			u := uniqueUser(t, "u")
			// The real key works, so a refusal below is the attack's.
			r := e.at("GET", "/phone", bearerHdr(signWith(t, jwt.SigningMethodRS256, key, freshClaims(u), nil)), nil).want(t, 200, "")
			if r.body["user_id"] != u {
				t.Fatal(r.raw)
			}
			canon := the401(t, e)
			for name, tok := range forged(t, u) {
				wantSame401(t, name, e.at("GET", "/phone", bearerHdr(tok), nil), canon)
				wantSame401(t, name+" (update)", e.at("POST", "/phone/update", bearerHdr(tok), []byte(`{"phone_number":"+14155552671"}`)), canon)
			}
			if e.sink.count(u) != 0 {
				t.Fatal("a forged token sent an SMS")
			}
		})
	}
}

// Token headers cannot choose the key or the rules: alg none in every
// spelling, kid path/URL/SQL injection, jku/x5u/jwk pointing at the
// attacker, crit extensions the verifier does not understand, and tokens
// over 8 KiB are all refused with the shared 401, quickly, and no request
// ever reaches the attacker's server.
func TestTokenHeaderAttacks(t *testing.T) {
	key, attacker := rsaKey(t, 0), rsaKey(t, 2)
	pemPath, _ := writePublicPEM(t, key)
	evil := newHitCounter(t)
	e := newBareEnv(t)
	e.loadJWTOnly("public_key_file " + pemPath)
	u := uniqueUser(t, "u")
	canon := the401(t, e)
	good := func(hdr map[string]any, extra ...any) string {
		return signWith(t, jwt.SigningMethodRS256, key, freshClaims(u, extra...), hdr)
	}
	bad := func(hdr map[string]any) string {
		return signWith(t, jwt.SigningMethodRS256, attacker, freshClaims(u), hdr)
	}
	e.at("GET", "/phone", bearerHdr(good(nil)), nil).want(t, 200, "")
	// A kid names nothing with file keys: the signature decides.
	e.at("GET", "/phone", bearerHdr(good(map[string]any{"kid": "anything"})), nil).want(t, 200, "")

	rsSig := func(in []byte) []byte {
		s, err := jwt.SigningMethodRS256.Sign(string(in), key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	attackerJWK := rsaJWK(attacker, "idp")
	cases := map[string]string{}
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		cases["alg "+alg] = rawJWT(t, map[string]any{"alg": alg, "typ": "JWT"}, freshClaims(u), nil)
		cases["alg "+alg+" with a real RS256 signature"] = rawJWT(t, map[string]any{"alg": alg}, freshClaims(u), rsSig)
	}
	cases["alg missing"] = rawJWT(t, map[string]any{"typ": "JWT"}, freshClaims(u), rsSig)
	cases["alg empty"] = rawJWT(t, map[string]any{"alg": ""}, freshClaims(u), rsSig)
	for _, kid := range []string{
		"../../../../../../etc/passwd", "/dev/null", "file:///etc/passwd", evil.srv.URL + "/jwks.json",
		"' OR '1'='1", "idp\x00", strings.Repeat("k", 4000), "|/bin/sh",
	} {
		cases["kid "+strconv.Quote(kid[:min(len(kid), 40)])] = bad(map[string]any{"kid": kid})
	}
	cases["kid not a string"] = good(map[string]any{"kid": map[string]any{"$ne": ""}})
	cases["jku at the attacker"] = bad(map[string]any{"jku": evil.srv.URL + "/jwks.json", "kid": "idp"})
	cases["x5u at the attacker"] = bad(map[string]any{"x5u": evil.srv.URL + "/cert.pem"})
	cases["embedded jwk of the attacker"] = bad(map[string]any{"jwk": attackerJWK, "kid": "idp"})
	cases["attacker ES256 key"] = func() string {
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return signWith(t, jwt.SigningMethodES256, ek, freshClaims(u), nil)
	}()
	// crit: signed with the real key, so only the extension is at fault.
	cases["crit exp"] = good(map[string]any{"crit": []string{"exp"}, "exp": 1})
	cases["crit b64"] = good(map[string]any{"crit": []string{"b64"}, "b64": false})
	cases["crit unknown URI"] = good(map[string]any{"crit": []string{"https://evil.example/ext"}, "https://evil.example/ext": true})
	cases["crit not a list"] = good(map[string]any{"crit": "exp"})
	cases["crit with a non-string"] = good(map[string]any{"crit": []any{1}})
	for name, tok := range cases {
		start := time.Now()
		wantSame401(t, name, e.at("GET", "/phone", bearerHdr(tok), nil), canon)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %s", name, d)
		}
	}
	if n := evil.hits(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}

	// Size: a validly signed token of up to 8 KiB is fine; one byte over is
	// refused before any parsing, and a huge header costs nothing.
	under, over := "", ""
	for n := 5400; over == ""; n++ {
		tok := good(nil, "pad", strings.Repeat("a", n))
		switch {
		case len(tok) <= 8<<10:
			under = tok
		default:
			over = tok
		}
	}
	if under == "" || len(over) > 8<<10+4 {
		t.Fatalf("token sizes %d and %d do not straddle 8 KiB", len(under), len(over))
	}
	e.at("GET", "/phone", bearerHdr(under), nil).want(t, 200, "")
	for name, tok := range map[string]string{
		fmt.Sprintf("valid token of %d bytes", len(over)): over,
		"12 KiB token":         strings.Repeat("A", 12<<10),
		"12 KiB token of dots": strings.Repeat("a.", 6<<10),
	} {
		start := time.Now()
		wantSame401(t, name, e.at("GET", "/phone", bearerHdr(tok), nil), canon)
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %s", name, d)
		}
	}
	// Beyond Caddy's own header limit (16 KiB by default) the server
	// refuses the request before any handler runs.
	start := time.Now()
	if r := e.at("GET", "/phone", bearerHdr(strings.Repeat("A", 512<<10)), nil); r.status != 431 && r.raw != canon.raw {
		t.Errorf("512 KiB token: %d %.100s, want 431 or the shared 401", r.status, r.raw)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("512 KiB token: refused after %s", d)
	}
	e.at("GET", "/phone", bearerHdr(good(nil)), nil).want(t, 200, "")
}

// jwks_url: an RS256 token with a kid verifies; random kids cannot turn
// the verifier into a fetch flood; a rotated-in key works once the IdP
// publishes it; while the JWKS server hangs, an unknown kid gets the
// shared 401 within the fetch timeout, known kids keep verifying without
// waiting, and after the failed fetch (and with the server gone) the last
// good key set is still used.
func TestJWKSRotationAndOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the JWKS refetch interval three times (~30 s)")
	}
	keyA, keyB, attacker := rsaKey(t, 0), rsaKey(t, 1), rsaKey(t, 2)
	jw := newJWKSServer(t, rsaJWK(keyA, "a"))
	evil := newHitCounter(t)
	e := newEnv(t, site{jwt: jwtLines("jwks_url " + jw.srv.URL + "/.well-known/jwks.json")})
	u := uniqueUser(t, "u")
	tok := func(key *rsa.PrivateKey, kid string) string {
		return signWith(t, jwt.SigningMethodRS256, key, freshClaims(u), map[string]any{"kid": kid})
	}
	get := func(tok string) response { return e.at("GET", "/phone", bearerHdr(tok), nil) }

	r := get(tok(keyA, "a")).want(t, 200, "")
	if r.body["user_id"] != u {
		t.Fatal(r.raw)
	}
	canon := the401(t, e)
	// B is not published yet; A under B's kid is no better.
	wantSame401(t, "unpublished kid", get(tok(keyB, "b")), canon)
	wantSame401(t, "known key under an unknown kid", get(tok(keyA, "b")), canon)
	wantSame401(t, "attacker key under a known kid", get(tok(attacker, "a")), canon)
	wantSame401(t, "jku at the attacker", get(signWith(t, jwt.SigningMethodRS256, attacker, freshClaims(u),
		map[string]any{"kid": "evil", "jku": evil.srv.URL + "/jwks.json"})), canon)
	wantSame401(t, "kid naming the attacker's JWKS", get(tok(attacker, evil.srv.URL+"/jwks.json")), canon)

	// A flood of random kids costs at most one refetch per 10 s.
	before, _ := jw.count()
	for i := range 30 {
		wantSame401(t, "random kid", get(tok(attacker, fmt.Sprintf("r%d", i))), canon)
	}
	if after, _ := jw.count(); after-before > 1 {
		t.Fatalf("30 unknown kids made %d JWKS fetches, want at most 1", after-before)
	}
	if evil.hits() != 0 {
		t.Fatal("a token made the verifier fetch the attacker's URL")
	}

	// Rotation: the IdP publishes B; an unknown kid refetches the set.
	jw.set(false, rsaJWK(keyA, "a"), rsaJWK(keyB, "b"))
	jw.waitRefetchAllowed()
	before, _ = jw.count()
	get(tok(keyB, "b")).want(t, 200, "")
	if after, _ := jw.count(); after != before+1 {
		t.Fatalf("rotation: %d fetches, want 1", after-before)
	}
	get(tok(keyA, "a")).want(t, 200, "")

	// Outage: the JWKS server accepts connections and never answers.
	jw.set(true)
	jw.waitRefetchAllowed()
	before, _ = jw.count()
	const waiters = 5
	var wg sync.WaitGroup
	took := make([]time.Duration, waiters)
	got := make([]response, waiters)
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := e.try("GET", "/phone", bearerHdr(tok(keyB, fmt.Sprintf("c%d", i))), nil)
			if err != nil {
				t.Errorf("unknown kid during the outage: %v", err)
			}
			got[i], took[i] = r, time.Since(start)
		}()
	}
	time.Sleep(500 * time.Millisecond) // the unknown kids now wait on the fetch
	for _, k := range []struct {
		key *rsa.PrivateKey
		kid string
	}{{keyA, "a"}, {keyB, "b"}} {
		start := time.Now()
		get(tok(k.key, k.kid)).want(t, 200, "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("kid %s waited %s behind the hanging JWKS fetch", k.kid, d)
		}
	}
	wg.Wait()
	for i := range waiters {
		wantSame401(t, "unknown kid during the outage", got[i], canon)
		// The fetch timeout is 5 s; a request never waits much longer.
		if took[i] > 7*time.Second {
			t.Errorf("unknown kid answered after %s, want within the 5 s fetch timeout", took[i])
		}
	}
	if after, _ := jw.count(); after != before+1 {
		t.Errorf("%d concurrent unknown kids made %d fetches, want 1", waiters, after-before)
	}
	get(tok(keyA, "a")).want(t, 200, "") // the failed fetch kept the last good set
	get(tok(keyB, "b")).want(t, 200, "")

	// Down: the server is gone (connection refused).
	jw.unblock()
	jw.srv.Close()
	jw.waitRefetchAllowed()
	start := time.Now()
	wantSame401(t, "unknown kid with the JWKS server down", get(tok(keyB, "d")), canon)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("unknown kid with the JWKS server down answered after %s", d)
	}
	get(tok(keyA, "a")).want(t, 200, "")
	get(tok(keyB, "b")).want(t, 200, "")
}

// ---- Client IP.

// Without trusted_proxies, the client IP is the TCP peer: X-Forwarded-For,
// X-Real-IP and Forwarded are not believed, so rotating them does not
// dodge per_ip.
func TestPerIPIgnoresSpoofedForwardedFor(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n per_ip 2 1h\n}"})
	numbers := []string{"+14155552671", "+33612345678", "+447911123456", "+33612345600"}
	spoof := []http.Header{
		{"X-Forwarded-For": {"203.0.113.1"}},
		{"X-Forwarded-For": {"203.0.113.2, 198.51.100.2"}, "X-Real-Ip": {"203.0.113.2"}},
		{"X-Forwarded-For": {"203.0.113.3"}, "Forwarded": {"for=203.0.113.3"}},
		{"X-Real-Ip": {"203.0.113.4"}},
	}
	for i, h := range spoof {
		u := uniqueUser(t, "u"+strconv.Itoa(i))
		h.Set("Authorization", "Bearer "+token(t, u))
		r := e.at("POST", "/phone/update", h, []byte(`{"phone_number":"`+numbers[i]+`"}`))
		if i < 2 {
			r.want(t, 200, "")
			continue
		}
		wantRetry(t, r, 3590, 3600)
		if e.sink.count(u) != 0 {
			t.Fatal("a spoofed forwarding header bought an SMS")
		}
	}
}

// With `servers { trusted_proxies static 127.0.0.1/32 }`, Caddy's client
// IP (the first X-Forwarded-For address from a trusted peer) is what
// per_ip counts.
func TestPerIPFollowsTrustedProxies(t *testing.T) {
	e := newEnv(t, site{
		global: "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}",
		phone:  "limits {\n per_ip 2 1h\n}",
	})
	numbers := []string{"+14155552671", "+33612345678", "+447911123456", "+33612345600", "+33612345601", "+33612345602", "+33612345603"}
	n := 0
	update := func(xff string) response {
		u := uniqueUser(t, "u"+strconv.Itoa(n))
		h := bearerHdr(token(t, u))
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		r := e.at("POST", "/phone/update", h, []byte(`{"phone_number":"`+numbers[n]+`"}`))
		n++
		return r
	}
	update("203.0.113.1").want(t, 200, "")
	update("203.0.113.1").want(t, 200, "")
	wantRetry(t, update("203.0.113.1"), 3590, 3600)
	// Another client behind the same proxy has its own budget, and so has
	// the proxy itself.
	update("203.0.113.2").want(t, 200, "")
	update("").want(t, 200, "")
	update("").want(t, 200, "")
	wantRetry(t, update(""), 3590, 3600)
}

// ---- Brute force.

// 50 concurrent wrong guesses at one challenge: exactly max_attempts are
// judged (attempts_left 4..0, each once), the rest are too_many_attempts,
// and the right code is refused afterwards.
func TestConcurrentGuessesBounded(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n max_attempts 5\n}\nlimits {\n verify_per_user 1000 1h\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	n, _ := strconv.Atoi(code)
	var mu sync.Mutex
	var left []int
	locked := 0
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		guess := fmt.Sprintf("%06d", (n+i)%1000000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.try("POST", "/phone/verify", bearerHdr(tok), []byte(`{"code":"`+guess+`"}`))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == 400 && r.body["error"] == "invalid_code":
				left = append(left, int(r.body["attempts_left"].(float64)))
			case r.status == 429 && r.body["error"] == "too_many_attempts":
				locked++
			default:
				t.Errorf("guess: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	slices.Sort(left)
	if !slices.Equal(left, []int{0, 1, 2, 3, 4}) || locked != 45 {
		t.Fatalf("judged guesses with attempts_left %v and %d locked, want [0 1 2 3 4] and 45", left, locked)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 429, "too_many_attempts")
	if st := e.do("GET", "/phone", tok, nil); st.body["verified"] != false {
		t.Fatalf("verified after the lockout: %s", st.raw)
	}
}

// The attacker's best strategy, mixing updates (new challenges) and
// resends (new codes), gets at most max_attempts judged guesses per
// challenge and verify_per_user in all; then even the right code fails.
func TestBruteForceBudgetAcrossResendsAndUpdates(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n max_attempts 3\n resend_after 0s\n}\n" +
		"limits {\n verify_per_user 7 1h\n per_user 100 1h\n per_number 100 1h\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	judged, refusedByBudget := 0, false
	code := ""
	for round := 0; round < 10 && !refusedByBudget; round++ {
		e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
		perChallenge := 0
		for try := 0; try < 10; try++ {
			if try%2 == 1 {
				// A resend between guesses: a new code, the same count.
				rs := e.do("POST", "/phone/resend", tok, nil)
				if rs.status != 200 && rs.status != 429 {
					t.Fatalf("resend: %d %s", rs.status, rs.raw)
				}
			}
			code = e.sink.last(u).Code
			r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)})
			if r.status == 400 && r.body["error"] == "invalid_code" {
				judged++
				perChallenge++
				continue
			}
			if r.status == 429 && r.body["error"] == "rate_limited" {
				refusedByBudget = true
			} else if r.status != 429 || r.body["error"] != "too_many_attempts" {
				t.Fatalf("guess: %d %s", r.status, r.raw)
			}
			break
		}
		if perChallenge > 3 {
			t.Fatalf("%d guesses judged on one challenge, max_attempts is 3", perChallenge)
		}
	}
	if judged > 7 || !refusedByBudget {
		t.Fatalf("%d guesses judged in an hour (budget refused: %v), want at most verify_per_user 7", judged, refusedByBudget)
	}
	wantRetry(t, e.do("POST", "/phone/verify", tok, map[string]any{"code": code}), 1, 3600)
}

// ---- Concurrency.

// 20 concurrent updates of one user to 20 numbers end in one consistent
// state: GET /phone shows the number of the last code sent, and only that
// code verifies it.
func TestConcurrentUpdatesOneUser(t *testing.T) {
	for _, verified := range []bool{false, true} {
		t.Run(map[bool]string{false: "no number yet", true: "verified number"}[verified], func(t *testing.T) {
			e := newEnv(t, site{phone: "otp {\n max_attempts 30\n}\n" +
				"limits {\n per_user 100 1h\n per_ip 100 1h\n verify_per_user 100 1h\n}"})
			u := uniqueUser(t, "u")
			tok := token(t, u)
			const old = "+447911123456"
			want := 200
			if verified {
				verifyNumber(t, e, u, tok, old)
				want = 202
			}
			sentBefore := e.sink.count(u)
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := e.try("POST", "/phone/update", bearerHdr(tok), fmt.Appendf(nil, `{"phone_number":"+336123456%02d"}`, i))
					if err != nil {
						t.Errorf("update %d: %v", i, err)
					} else if r.status != want {
						t.Errorf("update %d: %d %s", i, r.status, r.raw)
					}
				}()
			}
			wg.Wait()
			if n := e.sink.count(u) - sentBefore; n != 20 {
				t.Fatalf("%d SMS sent, want 20", n)
			}
			last := e.sink.last(u)
			st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
			if verified {
				if st.body["phone_number"] != old || st.body["verified"] != true || st.body["pending_phone_number"] != last.To {
					t.Fatalf("state %s, want %s verified with %s pending", st.raw, old, last.To)
				}
			} else if st.body["phone_number"] != last.To || st.body["verified"] != false || st.body["pending_phone_number"] != nil {
				t.Fatalf("state %s, want %s unverified", st.raw, last.To)
			}
			// Every earlier code is void, with or without its number.
			e.sink.mu.Lock()
			var earlier []struct{ to, code string }
			for _, m := range e.sink.msgs {
				if m.UserID == u && m.Code != last.Code && m.To != last.To && m.Purpose == "update" {
					earlier = append(earlier, struct{ to, code string }{m.To, m.Code})
				}
			}
			e.sink.mu.Unlock()
			if len(earlier) < 5 {
				t.Fatalf("only %d earlier codes to try", len(earlier))
			}
			for _, m := range earlier[:5] {
				e.do("POST", "/phone/verify", tok, map[string]any{"code": m.code}).want(t, 400, "invalid_code")
				e.do("POST", "/phone/verify", tok, map[string]any{"code": m.code, "phone_number": m.to}).want(t, 409, "no_pending_verification")
			}
			v := e.do("POST", "/phone/verify", tok, map[string]any{"code": last.Code}).want(t, 200, "")
			if v.body["phone_number"] != last.To {
				t.Fatalf("verified %s", v.raw)
			}
			st = e.do("GET", "/phone", tok, nil).want(t, 200, "")
			if st.body["phone_number"] != last.To || st.body["verified"] != true || st.body["pending_phone_number"] != nil {
				t.Fatalf("final state %s", st.raw)
			}
		})
	}
}

// ---- Hostile bodies (beyond TestBodyErrors).

// Streams without a length, the 16 KiB boundary, invalid UTF-8 forms, a
// BOM, lone surrogates, huge numbers and deep nesting on every body route:
// 400 or 413 (never 500), quickly, and Caddy keeps serving.
func TestHostileBodies(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n resend_after 0s\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	auth := bearerHdr(tok)

	// A 1 MiB chunked body (no Content-Length) is cut at 16 KiB.
	req, _ := http.NewRequest("POST", loopback()+"/phone/update", io.MultiReader(
		strings.NewReader(`{"phone_number":"+14155552671","locale":"`), strings.NewReader(strings.Repeat("a", 1<<20)),
		strings.NewReader(`"}`)))
	req.ContentLength = -1
	req.Header = auth.Clone()
	start := time.Now()
	e.send(req).want(t, 413, "payload_too_large")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("chunked 1 MiB body answered after %s", d)
	}

	// Exactly 16 KiB is accepted; one byte more is not.
	exact := []byte(`{"phone_number":"+14155552671"}`)
	exact = append(exact, bytes.Repeat([]byte(" "), 16<<10-len(exact))...)
	e.at("POST", "/phone/update", auth, exact).want(t, 200, "")
	e.at("POST", "/phone/update", auth, append(exact, ' ')).want(t, 413, "payload_too_large")

	for _, c := range []struct {
		name, path, body string
		status           int
	}{
		{"NUL byte", "/phone/update", "{\"phone_number\":\"+1415\x005552671\"}", 400},
		{"escaped NUL", "/phone/update", `{"phone_number":"+1415\u00005552671"}`, 400},
		{"overlong UTF-8", "/phone/update", "{\"phone_number\":\"+1415\xc0\xaf5552671\"}", 400},
		{"UTF-8 surrogate half", "/phone/update", "{\"phone_number\":\"+1415\xed\xa0\x805552671\"}", 400},
		{"escaped lone surrogate", "/phone/update", `{"phone_number":"+1415\ud8005552671"}`, 400},
		{"UTF-16 body", "/phone/update", "\xff\xfe{\x00\"\x00p\x00", 400},
		{"byte-order mark", "/phone/update", "\xef\xbb\xbf{\"phone_number\":\"+14155552671\"}", 400},
		{"huge exponent", "/phone/verify", `{"code":1e999999999}`, 400},
		{"huge integer", "/phone/verify", `{"code":` + strings.Repeat("9", 10000) + `}`, 400},
		{"deep arrays in verify", "/phone/verify", `{"code":` + strings.Repeat("[", 8000), 400},
		{"deep objects in verify", "/phone/verify", `{"code":"1","x":` + strings.Repeat(`{"a":`, 2500) + `1` + strings.Repeat("}", 2501), 400},
		{"deep arrays in resend", "/phone/resend", `{"locale":` + strings.Repeat("[", 8000), 400},
		{"deep objects in resend", "/phone/resend", strings.Repeat(`{"a":`, 3000), 400},
		{"code too long", "/phone/verify", `{"code":"` + strings.Repeat("1", 5000) + `"}`, 400},
		{"code not digits", "/phone/verify", `{"code":"' OR 1=1 --"}`, 400},
		{"phone_number an object", "/phone/update", `{"phone_number":{"$gt":""}}`, 400},
		{"phone_number an array", "/phone/update", `{"phone_number":["+14155552671","+33612345678"]}`, 400},
	} {
		start := time.Now()
		r := e.at("POST", c.path, auth, []byte(c.body))
		if r.status != c.status {
			t.Errorf("%s: %d %.200s, want %d", c.name, r.status, r.raw, c.status)
		}
		if r.body["error"] == nil || r.body["message"] == nil {
			t.Errorf("%s: not an error body: %.200s", c.name, r.raw)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: answered after %s", c.name, d)
		}
		e.at("GET", "/phone", auth, nil).want(t, 200, "")
	}
}

// ---- Header injection.

// CR/LF in phone_number, locale, template_options or token claims never
// becomes a header line: numbers are refused (400), other values travel
// as JSON data, tokens whose user holds a control character are refused,
// and neither the SMS webhook nor the upstream app ever sees an injected
// header. Log lines stay one JSON object each.
func TestCRLFInjection(t *testing.T) {
	app := newLegacyApp(t)
	e := newBareEnv(t)
	var mu sync.Mutex
	var hookHeaders []http.Header
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hookHeaders = append(hookHeaders, r.Header.Clone())
		mu.Unlock()
		e.sink.serve(w, r)
	}))
	t.Cleanup(hook.Close)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	e.load(site{
		global: "log {\n\t\toutput file " + logFile + "\n\t\tlevel DEBUG\n\t}",
		sms:    webhookLine(hook.URL, ""),
		phone:  "inject_headers\notp {\n resend_after 0s\n}\ntemplate \"Code {code} {k}\"",
		upstream: "reverse_proxy " + strings.TrimPrefix(app.srv.URL, "http://") +
			" {\n\t\theader_up X-Email {http.auth.user.email}\n\t}",
	})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	auth := bearerHdr(tok)
	const inj = "\r\nX-Injected: 1"
	clean := func(where string, h http.Header) {
		t.Helper()
		for k, vs := range h {
			if strings.EqualFold(k, "X-Injected") {
				t.Errorf("%s: injected header %s", where, k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Errorf("%s: header %s holds a line break: %q", where, k, v)
				}
			}
		}
	}

	for _, n := range []string{"+14155552671" + inj, "+14155552671\nX-Injected: 1", "+14155552671\rX-Injected: 1",
		"+1415555\r\n2671", "+14155552671\u2028X", "+14155552671\u0085X", "+14155552671%0d%0aX-Injected:%201"} {
		r := e.at("POST", "/phone/update", auth, jsonBody(t, map[string]any{"phone_number": n})).want(t, 400, "invalid_phone_number")
		clean("400 answer", r.header)
	}
	if e.sink.count(u) != 0 {
		t.Fatal("a number with a line break was sent an SMS")
	}

	opts := map[string]string{"k": "v" + inj, "x" + inj: "y"}
	r := e.at("POST", "/phone/update", auth, jsonBody(t, map[string]any{"phone_number": "+14155552671",
		"locale": "fr" + inj, "template_options": opts}))
	if r.status != 200 && r.status != 400 {
		t.Fatalf("update with line breaks in locale and options: %d %s", r.status, r.raw)
	}
	clean("update answer", r.header)
	if r.status == 200 {
		m := e.sink.last(u)
		if strings.ContainsAny(m.Locale, "\r\n") || m.To != "+14155552671" {
			t.Errorf("webhook message %+v", m)
		}
		// Options are data: they arrive intact, as JSON strings.
		if !maps2Equal(m.TemplateOptions, opts) {
			t.Errorf("template_options %q, want %q", m.TemplateOptions, opts)
		}
	} else {
		e.at("POST", "/phone/update", auth, []byte(`{"phone_number":"+14155552671"}`)).want(t, 200, "")
	}
	e.at("POST", "/phone/resend", auth, jsonBody(t, map[string]any{"locale": "en" + inj})).want(t, 200, "")
	e.at("POST", "/phone/verify", auth, jsonBody(t, map[string]any{"code": e.sink.last(u).Code, "phone_number": "+14155552671" + inj})).
		want(t, 400, "invalid_phone_number")
	e.at("POST", "/phone/verify", auth, jsonBody(t, map[string]any{"code": e.sink.last(u).Code})).want(t, 200, "")
	mu.Lock()
	if len(hookHeaders) < 2 {
		t.Errorf("the webhook got %d requests", len(hookHeaders))
	}
	for _, h := range hookHeaders {
		clean("SMS webhook", h)
	}
	mu.Unlock()

	// The app hears the verified number in clean headers.
	r = e.at("GET", "/app", auth, nil)
	if r.status != 200 {
		t.Fatalf("app: %d %s", r.status, r.raw)
	}
	got := app.last(t)
	if got.header.Get("X-Phone-Number") != "+14155552671" || got.header.Get("X-Phone-User") != u {
		t.Fatalf("app headers %v", got.header)
	}

	// A user claim with a line break is no user; another claim with one
	// never reaches the app as a header line (Go's transport refuses it).
	canon := the401(t, e)
	badSub := token(t, "mallory"+inj)
	wantSame401(t, "sub with CRLF", e.at("GET", "/phone", bearerHdr(badSub), nil), canon)
	for _, c := range []struct{ name, tok string }{
		{"sub with CRLF", badSub},
		{"email claim with CRLF", token(t, u, "email", "a@example.com"+inj)},
		{"email claim with LF", token(t, u, "email", "a@example.com\nX-Injected: 1")},
	} {
		n := app.count()
		r := e.at("GET", "/app", bearerHdr(c.tok), nil)
		clean(c.name+": answer", r.header)
		if app.count() > n {
			h := app.last(t).header
			clean(c.name+": app", h)
			if c.name == "sub with CRLF" && (h.Get("X-Phone-User") != "" || h.Get("X-Phone-Number") != "") {
				t.Errorf("%s: the app was told a user: %v", c.name, h)
			}
		} else if r.status != http.StatusBadGateway {
			t.Errorf("%s: %d %s, want the app's answer or 502", c.name, r.status, r.raw)
		}
	}
	app.mu.Lock()
	for _, s := range app.reqs {
		clean("app", s.header)
	}
	app.mu.Unlock()

	// Log forging: every line of the log is one JSON object.
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines: the check would prove nothing", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) || strings.HasPrefix(l, "X-Injected") {
			t.Errorf("log line is not one JSON object: %q", l)
		}
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ---- Enumeration.

// Until the code proved possession, asking for a number another user has
// verified looks exactly like asking for a free one: same status, same
// body shape, an SMS sent, the same pending state, resend and wrong-code
// answers; only the right code reveals it (409), and the holder's record
// never moves.
func TestNoEnumerationBeforePossession(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n resend_after 0s\n}"})
	owner := uniqueUser(t, "owner")
	const taken = "+14155552671"
	verifyNumber(t, e, owner, token(t, owner), taken)

	type trial struct {
		user, tok string
		answers   []response
	}
	// shape strips what legitimately differs (the number itself) so the
	// rest of two answers can be compared byte for byte.
	shape := func(r response) string {
		b := map[string]any{}
		for k, v := range r.body {
			b[k] = v
		}
		for _, k := range []string{"phone_number", "pending_phone_number", "masked_phone", "user_id", "pending_expires_at"} {
			if v, ok := b[k].(string); ok {
				b[k] = fmt.Sprintf("<%d chars>", len(v))
			}
		}
		return fmt.Sprintf("%d %s", r.status, jsonBody(t, b))
	}
	for _, rule := range []struct {
		name     string
		verified bool
		free     string
	}{{"rule 2 (no number)", false, "+14155552672"}, {"rule 3 (verified number)", true, "+14155552673"}} {
		t.Run(rule.name, func(t *testing.T) {
			free := rule.free
			var ts [2]trial
			for i, number := range []string{taken, free} {
				tr := &ts[i]
				tr.user = uniqueUser(t, "a"+strconv.Itoa(i))
				tr.tok = token(t, tr.user)
				if rule.verified {
					verifyNumber(t, e, tr.user, tr.tok, fmt.Sprintf("+3361234567%d", i))
					tr.answers = append(tr.answers, e.do("GET", "/phone", tr.tok, nil))
				}
				sent := e.sink.count(tr.user)
				tr.answers = append(tr.answers,
					e.do("POST", "/phone/update", tr.tok, map[string]any{"phone_number": number}),
					e.do("GET", "/phone", tr.tok, nil),
					e.do("POST", "/phone/resend", tr.tok, nil))
				code := e.sink.last(tr.user).Code
				tr.answers = append(tr.answers, e.do("POST", "/phone/verify", tr.tok, map[string]any{"code": wrongCode(code)}))
				if e.sink.count(tr.user) != sent+2 {
					t.Fatalf("%s: %d SMS, want 2", number, e.sink.count(tr.user)-sent)
				}
			}
			for i := range ts[0].answers {
				a, b := shape(ts[0].answers[i]), shape(ts[1].answers[i])
				if a != b {
					t.Errorf("answer %d differs before possession:\n taken: %s\n free:  %s", i, a, b)
				}
			}
			// Possession proven: only now is the taken number refused.
			e.do("POST", "/phone/verify", ts[0].tok, map[string]any{"code": e.sink.last(ts[0].user).Code}).want(t, 409, "phone_number_in_use")
			e.do("POST", "/phone/verify", ts[1].tok, map[string]any{"code": e.sink.last(ts[1].user).Code}).want(t, 200, "")
			st := e.do("GET", "/phone", ts[0].tok, nil)
			if st.body["verified"] == true && st.body["phone_number"] == taken {
				t.Fatalf("the loser holds the number: %s", st.raw)
			}
			st = e.do("GET", "/phone", token(t, owner), nil)
			if st.body["phone_number"] != taken || st.body["verified"] != true {
				t.Fatalf("the holder's record moved: %s", st.raw)
			}
		})
	}
}

// ---- Constant-time comparison.

// A wrong code's answer time cannot depend on how many digits were right,
// by construction: verify compares HMAC-SHA256 digests of the codes (keyed,
// bound to user and number) with hmac.Equal, which is constant-time, and
// never compares a code or a MAC with ==, bytes.Equal or strings. A timing
// test would be flaky; this test reads the source of flow.Service.Verify
// and codeMAC and fails if that construction changes.
func TestCodeComparisonIsConstantTime(t *testing.T) {
	fset := gotoken.NewFileSet()
	dir := filepath.Join("..", "flow")
	files := map[string]*ast.File{}
	for _, name := range []string{"verify.go", "challenge.go"} {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	fn := func(file, recv, name string) *ast.FuncDecl {
		for _, d := range files[file].Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name && (recv == "") == (fd.Recv == nil) {
				return fd
			}
		}
		t.Fatalf("%s: no func %s", file, name)
		return nil
	}
	src := func(n ast.Node) string {
		var b strings.Builder
		_ = printer.Fprint(&b, fset, n)
		return b.String()
	}
	isCall := func(n ast.Node, pkg, name string) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return false
		}
		s, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		id, ok := s.X.(*ast.Ident)
		return ok && id.Name == pkg && s.Sel.Name == name
	}

	verify := fn("verify.go", "Service", "Verify")
	equal := 0
	ast.Inspect(verify, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			if isCall(x, "hmac", "Equal") {
				equal++
				t.Logf("code compared at %s: %s", fset.Position(x.Pos()), src(x))
			}
			for _, bad := range [][2]string{{"bytes", "Equal"}, {"strings", "EqualFold"}, {"reflect", "DeepEqual"}, {"strings", "Compare"}, {"bytes", "Compare"}} {
				if isCall(x, bad[0], bad[1]) {
					t.Errorf("%s: Verify compares with %s.%s", fset.Position(x.Pos()), bad[0], bad[1])
				}
			}
		case *ast.BinaryExpr:
			if x.Op != gotoken.EQL && x.Op != gotoken.NEQ {
				break
			}
			l, r := src(x.X), src(x.Y)
			secret := func(s string) bool { return strings.Contains(s, "MAC") || strings.Contains(s, "mac") || s == "r.Code" }
			if (secret(l) || secret(r)) && l != `""` && r != `""` {
				t.Errorf("%s: Verify compares a code or MAC with %s: %s", fset.Position(x.Pos()), x.Op, src(x))
			}
		}
		return true
	})
	if equal != 1 {
		t.Fatalf("Verify calls hmac.Equal %d times, want 1", equal)
	}
	// The compared values are HMAC-SHA256 digests, not the codes.
	mac := fn("challenge.go", "", "codeMAC")
	keyed := false
	ast.Inspect(mac, func(n ast.Node) bool {
		if isCall(n, "hmac", "New") && strings.Contains(src(n), "sha256.New") {
			keyed = true
		}
		return true
	})
	if !keyed {
		t.Fatal("codeMAC is no longer hmac.New(sha256.New, secret)")
	}
}
