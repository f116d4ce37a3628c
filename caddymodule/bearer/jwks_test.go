package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
)

// jwksServer serves a settable JWKS and counts requests.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	keys   []map[string]any
	status int
	delay  time.Duration
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		keys, status, delay := s.keys, s.status, s.delay
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
	if keys != nil {
		s.keys = keys
	}
}

var zapNop = zap.NewNop()

func b64b(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64b(pub.N.Bytes()), "e": b64b(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(b) - 1) / 2
	return map[string]any{"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name, "x": b64b(b[1 : 1+size]), "y": b64b(b[1+size:])}
}

func edJWK(kid string, pub ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64b(pub)}
}

func TestJWKS(t *testing.T) {
	k := keysOnce()
	srv := newJWKSServer(t,
		rsaJWK("r1", &k.rsa.PublicKey),
		rsaJWK("r2", &k.rsa2.PublicKey),
		ecJWK("e1", &k.p256.PublicKey),
		ecJWK("e3", &k.p384.PublicKey),
		edJWK("d1", k.ed.Public().(ed25519.PublicKey)),
		// Ignored: encryption key, unknown kty.
		func() map[string]any { m := rsaJWK("enc", &k.rsa2.PublicKey); m["use"] = "enc"; return m }(),
		map[string]any{"kty": "oct", "kid": "sym", "k": b64("secret")},
	)
	clock := fake.NewClock(t0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL, Now: clock.Now, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsAt(t0, nil)
	tok := func(m jwt.SigningMethod, key any, kid any) string {
		return "Bearer " + mint(t, m, key, claims, map[string]any{"kid": kid})
	}
	ok := []struct {
		name, header string
	}{
		{"RS256 r1", tok(jwt.SigningMethodRS256, k.rsa, "r1")},
		{"PS384 r2", tok(jwt.SigningMethodPS384, k.rsa2, "r2")},
		{"ES256 e1", tok(jwt.SigningMethodES256, k.p256, "e1")},
		{"ES384 e3", tok(jwt.SigningMethodES384, k.p384, "e3")},
		{"EdDSA d1", tok(jwt.SigningMethodEdDSA, k.ed, "d1")},
		{"RS256 without kid tries the RSA keys", tok(jwt.SigningMethodRS256, k.rsa2, nil)},
	}
	for _, c := range ok {
		if _, err := v.Verify(t.Context(), c.header); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	hits := srv.hits.Load()
	bad := []struct {
		name, header, reason string
	}{
		{"kid of another key", tok(jwt.SigningMethodRS256, k.rsa, "r2"), "bad signature"},
		{"kid of the encryption key", tok(jwt.SigningMethodRS256, k.rsa2, "enc"), "unknown kid"},
		{"kid of an EC key for RS256", tok(jwt.SigningMethodRS256, k.rsa, "e1"), "unknown kid"},
		{"ES256 with the P-384 kid", tok(jwt.SigningMethodES256, k.p256, "e3"), "unknown kid"},
		{"HS256 with the oct kid", "Bearer " + mint(t, jwt.SigningMethodHS256, []byte("secret"), claims, map[string]any{"kid": "sym"}), "algorithm not allowed"},
		{"kid as a URL", tok(jwt.SigningMethodRS256, k.rsa, srv.URL+"/other.json"), "unknown kid"},
	}
	for _, c := range bad {
		_, err := v.Verify(t.Context(), c.header)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.reason)
		}
	}
	// All within 10 s of the first fetch: unknown kids fetched nothing.
	if got := srv.hits.Load(); got != hits {
		t.Errorf("unknown kids caused %d fetches inside the rate limit", got-hits)
	}
}

func TestJWKSRotationAndOutage(t *testing.T) {
	k := keysOnce()
	srv := newJWKSServer(t, rsaJWK("old", &k.rsa.PublicKey))
	clock := fake.NewClock(t0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL, Now: clock.Now, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsAt(t0, jwt.MapClaims{"exp": t0.Add(24 * time.Hour).Unix()})
	oldTok := "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims, map[string]any{"kid": "old"})
	newTok := "Bearer " + mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "new"})
	if _, err := v.Verify(t.Context(), oldTok); err != nil {
		t.Fatal(err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("hits = %d after the first verify, want 1", got)
	}

	// The IdP rotates; a token with the new kid triggers one refetch, once
	// 10 s have passed since the last one.
	srv.set(http.StatusOK, rsaJWK("old", &k.rsa.PublicKey), ecJWK("new", &k.p256.PublicKey))
	if _, err := v.Verify(t.Context(), newTok); err == nil || !strings.Contains(err.Error(), "unknown kid") {
		t.Fatalf("inside the rate limit: err = %v, want unknown kid", err)
	}
	clock.Advance(11 * time.Second)
	if _, err := v.Verify(t.Context(), newTok); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("hits = %d, want 2", got)
	}
	// Random kids right after: no new fetch.
	for i := range 20 {
		h := "Bearer " + mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "rnd" + string(rune('a'+i))})
		if _, err := v.Verify(t.Context(), h); !errors.Is(err, ErrInvalid) {
			t.Fatalf("random kid: %v", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("random kids: hits = %d, want 2", got)
	}

	// The IdP goes down: a refetch fails and the last good set stays.
	srv.set(http.StatusInternalServerError)
	clock.Advance(11 * time.Second)
	if _, err := v.Verify(t.Context(), "Bearer "+mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "zzz"})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kid while down: %v", err)
	}
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("hits = %d, want 3", got)
	}
	for _, h := range []string{oldTok, newTok} {
		if _, err := v.Verify(t.Context(), h); err != nil {
			t.Fatalf("last good set lost: %v", err)
		}
	}
	// A set with no usable key is a failure too, not an empty set.
	srv.set(http.StatusOK, map[string]any{"kty": "oct", "k": "AAAA"})
	clock.Advance(11 * time.Second)
	_, _ = v.Verify(t.Context(), "Bearer "+mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "yyy"}))
	if _, err := v.Verify(t.Context(), oldTok); err != nil {
		t.Fatalf("empty set replaced the good one: %v", err)
	}
	// The server stops answering at all.
	srv.Close()
	clock.Advance(11 * time.Second)
	_, _ = v.Verify(t.Context(), "Bearer "+mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "xxx"}))
	if _, err := v.Verify(t.Context(), newTok); err != nil {
		t.Fatalf("server gone: %v", err)
	}
}

func TestJWKSBackgroundRefreshStopsWithContext(t *testing.T) {
	k := keysOnce()
	srv := newJWKSServer(t, rsaJWK("a", &k.rsa.PublicKey))
	ctx, cancel := context.WithCancel(t.Context())
	_, err := New(ctx, Config{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.hits.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d fetches", srv.hits.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	time.Sleep(30 * time.Millisecond) // let a fetch already started finish
	n := srv.hits.Load()
	time.Sleep(100 * time.Millisecond)
	if got := srv.hits.Load(); got != n {
		t.Fatalf("refresher kept fetching after ctx was done: %d -> %d", n, got)
	}
}

func TestJWKSFetchTimeoutBoundsVerify(t *testing.T) {
	k := keysOnce()
	srv := newJWKSServer(t, rsaJWK("a", &k.rsa.PublicKey))
	srv.set(http.StatusOK)
	srv.mu.Lock()
	srv.delay = 5 * time.Second
	srv.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL, HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h := "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claimsAt(time.Now(), nil), map[string]any{"kid": "a"})
	if _, err := v.Verify(t.Context(), h); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Verify blocked %v on a slow JWKS", d)
	}
	// The caller's context can cut the wait shorter still.
	short, cancelShort := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancelShort()
	v2, err := New(ctx, Config{JWKSURL: srv.URL, HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, _ = v2.Verify(short, h)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Verify ignored its context: %v", d)
	}
}

func TestJWKSWithFileKeys(t *testing.T) {
	k, f := writeKeyFiles(t)
	srv := newJWKSServer(t, ecJWK("e1", &k.p256.PublicKey))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL, PublicKeyFiles: []string{f.rsa}, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsAt(time.Now(), nil)
	for name, h := range map[string]string{
		"file key, no kid":   mint(t, jwt.SigningMethodRS256, k.rsa, claims, nil),
		"file key, some kid": mint(t, jwt.SigningMethodRS256, k.rsa, claims, map[string]any{"kid": "whatever"}),
		"jwks key by kid":    mint(t, jwt.SigningMethodES256, k.p256, claims, map[string]any{"kid": "e1"}),
		"jwks key, no kid":   mint(t, jwt.SigningMethodES256, k.p256, claims, nil),
	} {
		if _, err := v.Verify(t.Context(), "Bearer "+h); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	k := keysOnce()
	good := ecJWK("e", &k.p256.PublicKey)
	offCurve := ecJWK("bad", &k.p256.PublicKey)
	offCurve["y"] = b64b(make([]byte, 32))
	evenE := rsaJWK("even", &k.rsa.PublicKey)
	evenE["e"] = b64b([]byte{1, 0, 0})
	wrongAlg := rsaJWK("walg", &k.rsa.PublicKey)
	wrongAlg["alg"] = "ES256"
	withAlg := rsaJWK("ps", &k.rsa.PublicKey)
	withAlg["alg"] = "PS256"
	cases := []struct {
		name string
		key  map[string]any
		ok   bool
	}{
		{"good EC", good, true},
		{"off curve", offCurve, false},
		{"even exponent", evenE, false},
		{"alg of another family", wrongAlg, false},
		{"alg PS256", withAlg, true},
		{"Ed25519 wrong size", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64b([]byte{1, 2})}, false},
		{"X25519", map[string]any{"kty": "OKP", "crv": "X25519", "x": b64b(make([]byte, 32))}, false},
		{"P-224", map[string]any{"kty": "EC", "crv": "P-224", "x": "AA", "y": "AA"}, false},
		{"use enc", map[string]any{"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": b64b(k.ed.Public().(ed25519.PublicKey))}, false},
	}
	for _, c := range cases {
		body, _ := json.Marshal(map[string]any{"keys": []any{c.key}})
		set, _, err := parseJWKS(body)
		if c.ok != (err == nil) {
			t.Errorf("%s: err = %v", c.name, err)
			continue
		}
		if c.ok && len(set.keys) != 1 {
			t.Errorf("%s: %d keys", c.name, len(set.keys))
		}
	}
	for _, body := range []string{"", "null", `{"keys":null}`, `{"keys":[1,"x",null]}`, `[]`} {
		if _, _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
	// A JWK alg restricts the algorithms of its key.
	body, _ := json.Marshal(map[string]any{"keys": []any{withAlg}})
	set, _, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if set.keys[0].fits("RS256") || !set.keys[0].fits("PS256") {
		t.Error("JWK alg not enforced")
	}
}

func TestB64Fixed(t *testing.T) {
	// Some issuers drop leading zero bytes of EC coordinates.
	b, err := b64Fixed(b64b([]byte{1, 2}), 4)
	if err != nil || string(b) != "\x00\x00\x01\x02" {
		t.Fatalf("b64Fixed = %x, %v", b, err)
	}
	if _, err := b64Fixed(b64b([]byte{1, 2, 3}), 2); err == nil {
		t.Fatal("too long coordinate accepted")
	}
}

func TestJWKSFetchRefusesOversizedAndBadAnswers(t *testing.T) {
	k := keysOnce()
	good, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK("a", &k.rsa.PublicKey)}})
	for name, handler := range map[string]http.HandlerFunc{
		"oversized": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(good[:len(good)-2])
			_, _ = w.Write([]byte(`,"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`))
		},
		"not JSON":      func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) },
		"redirect loop": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.String(), http.StatusFound) },
	} {
		srv := httptest.NewServer(handler)
		s := newJWKSSource(t.Context(), srv.URL, &http.Client{Timeout: time.Second}, zapNop, time.Now)
		if err := s.fetch(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if s.keys.Load() != nil {
			t.Errorf("%s: stored a key set", name)
		}
		srv.Close()
	}
}
