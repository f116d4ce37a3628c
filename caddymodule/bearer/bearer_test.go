package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type keyFiles struct {
	rsa, rsaPKCS1, rsaCert, p256, p384, p521, ed string
}

func writeKeyFiles(t *testing.T) (*testKeys, keyFiles) {
	t.Helper()
	k := keysOnce()
	dir := t.TempDir()
	return k, keyFiles{
		rsa:      writePEM(t, dir, "rsa.pem", "PUBLIC KEY", k.rsaPKIX),
		rsaPKCS1: writePEM(t, dir, "rsa1.pem", "RSA PUBLIC KEY", k.rsaPKCS1),
		rsaCert:  writePEM(t, dir, "cert.pem", "CERTIFICATE", k.rsaCertDER),
		p256:     writePEM(t, dir, "p256.pem", "PUBLIC KEY", k.p256PKIX),
		p384:     writePEM(t, dir, "p384.pem", "PUBLIC KEY", k.p384PKIX),
		p521:     writePEM(t, dir, "p521.pem", "PUBLIC KEY", k.p521PKIX),
		ed:       writePEM(t, dir, "ed.pem", "PUBLIC KEY", k.edPKIX),
	}
}

func TestVerify(t *testing.T) {
	k, f := writeKeyFiles(t)
	now := t0
	hs := Config{Secret: testSecret}
	rsaCfg := Config{PublicKeyFiles: []string{f.rsa}}
	claims := func(extra jwt.MapClaims) jwt.MapClaims { return claimsAt(now, extra) }
	hs256 := func(extra jwt.MapClaims) string {
		return "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claims(extra), nil)
	}
	noneTok := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil)
	// Algorithm confusion: HS256 keyed with the RSA public key as its PEM
	// text, the classic attack on libraries that hand the key to any alg.
	rsaPEMBytes, err := os.ReadFile(f.rsa)
	if err != nil {
		t.Fatal(err)
	}
	confused := mint(t, jwt.SigningMethodHS256, rsaPEMBytes, claims(nil), nil)
	confusedDER := mint(t, jwt.SigningMethodHS256, k.rsaPKIX, claims(nil), nil)
	big := hs256(jwt.MapClaims{"pad": strings.Repeat("x", MaxTokenBytes)})

	cases := []struct {
		name     string
		cfg      Config
		header   string
		wantErr  error  // nil, ErrMissing or ErrInvalid
		reason   string // substring of the error
		wantUser string
	}{
		// Each algorithm family.
		{name: "HS256", cfg: hs, header: hs256(nil), wantUser: "user-1"},
		{name: "HS384", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS384, []byte(testSecret), claims(nil), nil), wantUser: "user-1"},
		{name: "HS512", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS512, []byte(testSecret), claims(nil), nil), wantUser: "user-1"},
		{name: "RS256", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims(nil), nil), wantUser: "user-1"},
		{name: "RS512", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodRS512, k.rsa, claims(nil), nil), wantUser: "user-1"},
		{name: "PS256", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodPS256, k.rsa, claims(nil), nil), wantUser: "user-1"},
		{name: "RS256 PKCS1 PEM", cfg: Config{PublicKeyFiles: []string{f.rsaPKCS1}}, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims(nil), nil), wantUser: "user-1"},
		{name: "RS256 certificate PEM", cfg: Config{PublicKeyFiles: []string{f.rsaCert}}, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims(nil), nil), wantUser: "user-1"},
		{name: "ES256", cfg: Config{PublicKeyFiles: []string{f.p256}}, header: "Bearer " + mint(t, jwt.SigningMethodES256, k.p256, claims(nil), nil), wantUser: "user-1"},
		{name: "ES384", cfg: Config{PublicKeyFiles: []string{f.p384}}, header: "Bearer " + mint(t, jwt.SigningMethodES384, k.p384, claims(nil), nil), wantUser: "user-1"},
		{name: "ES512", cfg: Config{PublicKeyFiles: []string{f.p521}}, header: "Bearer " + mint(t, jwt.SigningMethodES512, k.p521, claims(nil), nil), wantUser: "user-1"},
		{name: "EdDSA", cfg: Config{PublicKeyFiles: []string{f.ed}}, header: "Bearer " + mint(t, jwt.SigningMethodEdDSA, k.ed, claims(nil), nil), wantUser: "user-1"},
		{name: "several key files pick the right one", cfg: Config{PublicKeyFiles: []string{f.rsa, f.p256, f.ed}}, header: "Bearer " + mint(t, jwt.SigningMethodEdDSA, k.ed, claims(nil), nil), wantUser: "user-1"},
		{name: "kid in header is ignored for file keys", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims(nil), map[string]any{"kid": "../../etc/passwd"}), wantUser: "user-1"},

		// Header shapes.
		{name: "lower-case scheme", cfg: hs, header: "bearer " + strings.TrimPrefix(hs256(nil), "Bearer "), wantUser: "user-1"},
		{name: "upper-case scheme, extra blanks", cfg: hs, header: " BEARER  \t" + strings.TrimPrefix(hs256(nil), "Bearer ") + " ", wantUser: "user-1"},
		{name: "empty header", cfg: hs, header: "", wantErr: ErrMissing},
		{name: "scheme only", cfg: hs, header: "Bearer", wantErr: ErrMissing},
		{name: "scheme and blanks", cfg: hs, header: "Bearer   ", wantErr: ErrMissing},
		{name: "other scheme", cfg: hs, header: "Basic dXNlcjpwYXNz", wantErr: ErrMissing},
		{name: "no separator", cfg: hs, header: "Bearerabc.def.ghi", wantErr: ErrMissing},
		{name: "garbage", cfg: hs, header: "Bearer abc", wantErr: ErrInvalid, reason: "malformed"},
		{name: "oversized", cfg: hs, header: big, wantErr: ErrInvalid, reason: "too large"},

		// Algorithm attacks.
		{name: "alg none", cfg: hs, header: "Bearer " + noneTok, wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "alg none, explicit allow-list", cfg: Config{Secret: testSecret, Algorithms: []string{"HS256"}}, header: "Bearer " + noneTok, wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "confusion: HS256 keyed with RSA PEM", cfg: rsaCfg, header: "Bearer " + confused, wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "confusion: HS256 keyed with RSA DER", cfg: rsaCfg, header: "Bearer " + confusedDER, wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "confusion: HS256 allowed with secret and RSA key", cfg: Config{Secret: testSecret, PublicKeyFiles: []string{f.rsa}}, header: "Bearer " + confused, wantErr: ErrInvalid, reason: "bad signature"},
		{name: "HS256 refused with RSA-only allow-list", cfg: Config{Secret: testSecret, PublicKeyFiles: []string{f.rsa}, Algorithms: []string{"RS256"}}, header: hs256(nil), wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "ES384 token, P-256 key", cfg: Config{PublicKeyFiles: []string{f.p256}, Algorithms: []string{"ES256"}}, header: "Bearer " + mint(t, jwt.SigningMethodES384, k.p384, claims(nil), nil), wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "ES256 header over a P-384 key file", cfg: Config{PublicKeyFiles: []string{f.p384, f.rsa}, Algorithms: []string{"ES384", "RS256"}}, header: "Bearer " + mint(t, jwt.SigningMethodES256, k.p256, claims(nil), nil), wantErr: ErrInvalid, reason: "algorithm not allowed"},
		{name: "RS256 signed by another key", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa2, claims(nil), nil), wantErr: ErrInvalid, reason: "bad signature"},
		{name: "EdDSA signed by another key", cfg: Config{PublicKeyFiles: []string{f.ed}}, header: "Bearer " + mint(t, jwt.SigningMethodEdDSA, k.ed2, claims(nil), nil), wantErr: ErrInvalid, reason: "bad signature"},
		{name: "HS256 wrong secret", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS256, []byte("another secret"), claims(nil), nil), wantErr: ErrInvalid, reason: "bad signature"},
		{name: "unknown alg", cfg: hs, header: "Bearer " + forgeHeader(t, hs256(nil), `{"alg":"XX999","typ":"JWT"}`), wantErr: ErrInvalid, reason: "algorithm unknown"},
		{name: "crit header", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), map[string]any{"crit": []string{"exp"}}), wantErr: ErrInvalid, reason: "crit"},
		{name: "crit header not a list", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), map[string]any{"crit": "b64"}), wantErr: ErrInvalid, reason: "crit"},
		{name: "empty crit header", cfg: hs, header: "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), map[string]any{"crit": []string{}}), wantUser: "user-1"},
		{name: "kid not a string", cfg: rsaCfg, header: "Bearer " + mint(t, jwt.SigningMethodRS256, k.rsa, claims(nil), map[string]any{"kid": 7}), wantErr: ErrInvalid, reason: "kid"},

		// Registered claims.
		{name: "issuer ok", cfg: Config{Secret: testSecret, Issuer: "https://idp"}, header: hs256(jwt.MapClaims{"iss": "https://idp"}), wantUser: "user-1"},
		{name: "wrong issuer", cfg: Config{Secret: testSecret, Issuer: "https://idp"}, header: hs256(jwt.MapClaims{"iss": "https://evil"}), wantErr: ErrInvalid, reason: "wrong issuer"},
		{name: "missing issuer", cfg: Config{Secret: testSecret, Issuer: "https://idp"}, header: hs256(nil), wantErr: ErrInvalid, reason: "missing"},
		{name: "audience ok (list)", cfg: Config{Secret: testSecret, Audience: []string{"legacy-app", "other"}}, header: hs256(jwt.MapClaims{"aud": []string{"x", "other"}}), wantUser: "user-1"},
		{name: "audience ok (string)", cfg: Config{Secret: testSecret, Audience: []string{"legacy-app"}}, header: hs256(jwt.MapClaims{"aud": "legacy-app"}), wantUser: "user-1"},
		{name: "wrong audience", cfg: Config{Secret: testSecret, Audience: []string{"legacy-app"}}, header: hs256(jwt.MapClaims{"aud": "other-app"}), wantErr: ErrInvalid, reason: "wrong audience"},
		{name: "missing audience", cfg: Config{Secret: testSecret, Audience: []string{"legacy-app"}}, header: hs256(nil), wantErr: ErrInvalid, reason: "missing"},
		{name: "expired", cfg: hs, header: hs256(jwt.MapClaims{"exp": now.Add(-time.Second).Unix()}), wantErr: ErrInvalid, reason: "expired"},
		{name: "exp zero", cfg: hs, header: hs256(jwt.MapClaims{"exp": 0}), wantErr: ErrInvalid, reason: "expired"},
		{name: "exp not a number", cfg: hs, header: hs256(jwt.MapClaims{"exp": "tomorrow"}), wantErr: ErrInvalid, reason: "wrong type"},
		{name: "exp far away", cfg: hs, header: hs256(jwt.MapClaims{"exp": 1e12}), wantUser: "user-1"},
		{name: "no exp refused", cfg: hs, header: hs256(jwt.MapClaims{"exp": nil}), wantErr: ErrInvalid, reason: "exp missing"},
		{name: "expired within leeway", cfg: Config{Secret: testSecret, Leeway: 30 * time.Second}, header: hs256(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()}), wantUser: "user-1"},
		{name: "expired beyond leeway", cfg: Config{Secret: testSecret, Leeway: 30 * time.Second}, header: hs256(jwt.MapClaims{"exp": now.Add(-31 * time.Second).Unix()}), wantErr: ErrInvalid, reason: "expired"},
		{name: "nbf in the future", cfg: hs, header: hs256(jwt.MapClaims{"nbf": now.Add(10 * time.Second).Unix()}), wantErr: ErrInvalid, reason: "nbf"},
		{name: "nbf within leeway", cfg: Config{Secret: testSecret, Leeway: 30 * time.Second}, header: hs256(jwt.MapClaims{"nbf": now.Add(10 * time.Second).Unix()}), wantUser: "user-1"},
		{name: "iat in the future", cfg: hs, header: hs256(jwt.MapClaims{"iat": now.Add(10 * time.Second).Unix()}), wantErr: ErrInvalid, reason: "iat"},
		{name: "iat beyond leeway", cfg: Config{Secret: testSecret, Leeway: 30 * time.Second}, header: hs256(jwt.MapClaims{"iat": now.Add(31 * time.Second).Unix()}), wantErr: ErrInvalid, reason: "iat"},
		{name: "iat within leeway", cfg: Config{Secret: testSecret, Leeway: 30 * time.Second}, header: hs256(jwt.MapClaims{"iat": now.Add(10 * time.Second).Unix()}), wantUser: "user-1"},
		{name: "auth_time not a number", cfg: hs, header: hs256(jwt.MapClaims{"auth_time": "yesterday"}), wantErr: ErrInvalid, reason: "auth_time"},

		// User claim.
		{name: "missing sub", cfg: hs, header: hs256(jwt.MapClaims{"sub": nil}), wantErr: ErrInvalid, reason: "user claim"},
		{name: "empty sub", cfg: hs, header: hs256(jwt.MapClaims{"sub": ""}), wantErr: ErrInvalid, reason: "user claim"},
		{name: "blank sub", cfg: hs, header: hs256(jwt.MapClaims{"sub": "  "}), wantErr: ErrInvalid, reason: "user claim"},
		{name: "sub with a newline", cfg: hs, header: hs256(jwt.MapClaims{"sub": "a\nb"}), wantErr: ErrInvalid, reason: "user claim"},
		{name: "sub not a string", cfg: hs, header: hs256(jwt.MapClaims{"sub": 42}), wantErr: ErrInvalid},
		{name: "custom user claim", cfg: Config{Secret: testSecret, UserClaim: "uid"}, header: hs256(jwt.MapClaims{"uid": "u-9"}), wantUser: "u-9"},
		{name: "custom user claim not a string", cfg: Config{Secret: testSecret, UserClaim: "uid"}, header: hs256(jwt.MapClaims{"uid": 9}), wantErr: ErrInvalid, reason: "user claim"},
		{name: "custom user claim missing", cfg: Config{Secret: testSecret, UserClaim: "uid"}, header: hs256(nil), wantErr: ErrInvalid, reason: "user claim"},

		// Descope project form.
		{name: "project form", cfg: Config{Secret: testSecret, ProjectID: "P2abc"}, header: "Bearer P2abc:" + strings.TrimPrefix(hs256(nil), "Bearer "), wantUser: "user-1"},
		{name: "plain form with project configured", cfg: Config{Secret: testSecret, ProjectID: "P2abc"}, header: hs256(nil), wantUser: "user-1"},
		{name: "wrong project", cfg: Config{Secret: testSecret, ProjectID: "P2abc"}, header: "Bearer P2abd:" + strings.TrimPrefix(hs256(nil), "Bearer "), wantErr: ErrInvalid, reason: "wrong project_id"},
		{name: "project form not configured", cfg: hs, header: "Bearer P2abc:" + strings.TrimPrefix(hs256(nil), "Bearer "), wantErr: ErrInvalid, reason: "project_id form"},
		{name: "project only on Verify", cfg: Config{Secret: testSecret, ProjectID: "P2abc"}, header: "Bearer P2abc", wantErr: ErrInvalid, reason: "malformed"},
		{name: "project with empty token", cfg: Config{Secret: testSecret, ProjectID: "P2abc"}, header: "Bearer P2abc:", wantErr: ErrMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cacheOn := range []bool{false, true} {
				cfg := tc.cfg
				cfg.Now = func() time.Time { return now }
				if !cacheOn {
					cfg.CacheEntries = -1
				}
				v, err := New(t.Context(), cfg)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				// Twice: the second call of a valid token is a cache hit.
				for range 2 {
					id, err := v.Verify(t.Context(), tc.header)
					checkResult(t, tc.header, id, err, tc.wantErr, tc.reason, tc.wantUser)
				}
				if !cacheOn || tc.wantErr == nil {
					continue
				}
				if n := v.cache.len(); n != 0 {
					t.Errorf("a refused token was cached (%d entries)", n)
				}
			}
		})
	}
}

func checkResult(t *testing.T, header string, id *Identity, err, wantErr error, reason, wantUser string) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if id.UserID != wantUser {
			t.Fatalf("UserID = %q, want %q", id.UserID, wantUser)
		}
		found := false
		id.StringClaims(func(_, v string) bool { found = v == wantUser; return !found })
		if !found {
			t.Fatalf("no string claim holds the user %q", wantUser)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("err = %v, want %v", err, wantErr)
	}
	if id != nil {
		t.Fatal("identity returned with an error")
	}
	if !strings.Contains(err.Error(), reason) {
		t.Fatalf("err = %q, want reason %q", err, reason)
	}
	// Errors name the reason, never the token.
	if cred, ok := bearerCredential(header); ok && len(cred) > 8 {
		for _, part := range strings.FieldsFunc(cred, func(r rune) bool { return r == '.' || r == ':' }) {
			if len(part) > 8 && strings.Contains(err.Error(), part) {
				t.Fatalf("error %q quotes the token", err)
			}
		}
	}
}

// forgeHeader replaces the header segment of a token.
func forgeHeader(t *testing.T, header, hdrJSON string) string {
	t.Helper()
	tok := strings.TrimPrefix(header, "Bearer ")
	parts := strings.Split(tok, ".")
	parts[0] = b64(hdrJSON)
	return strings.Join(parts, ".")
}

func TestIdentityFields(t *testing.T) {
	now := t0
	v, err := New(t.Context(), Config{Secret: testSecret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	iat := now.Add(-2 * time.Minute).Unix()
	authTime := now.Add(-20 * time.Minute).Unix()
	exp := now.Add(time.Hour).Unix()
	tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{
		"sub": "u1", "iat": iat, "auth_time": authTime, "exp": exp, "email": "a@example.com",
	}, nil)
	id, err := v.Verify(t.Context(), "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.SignInTime().Unix() != authTime {
		t.Fatalf("SignInTime %v, want auth_time %v (it is preferred to iat)", id.SignInTime(), authTime)
	}
	if v, ok := id.Claim("email"); !ok || v != "a@example.com" {
		t.Fatalf("email claim: %v %v", v, ok)
	}

	tok = mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "u1", "iat": iat, "exp": exp}, nil)
	id, err = v.Verify(t.Context(), "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.SignInTime().Unix() != iat {
		t.Fatalf("SignInTime without auth_time: %v", id.SignInTime())
	}
	id, err = v.Verify(t.Context(), "Bearer "+mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "u1", "exp": exp}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !id.SignInTime().IsZero() {
		t.Fatal("SignInTime must be zero without iat and auth_time")
	}
}

func TestProjectOnly(t *testing.T) {
	v, err := New(t.Context(), Config{Secret: testSecret, ProjectID: "P2abc"})
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]bool{
		"Bearer P2abc":        true,
		"bearer  P2abc ":      true,
		"Bearer P2abd":        false,
		"Bearer P2ab":         false,
		"Bearer P2abcd":       false,
		"Bearer P2abc:":       false,
		"Bearer P2abc:x.y.z":  false,
		"Basic P2abc":         false,
		"P2abc":               false,
		"":                    false,
		"Bearer p2abc":        false,
		"Bearer P2abc P2abc ": false,
	} {
		if got := v.ProjectOnly(h); got != want {
			t.Errorf("ProjectOnly(%q) = %v, want %v", h, got, want)
		}
	}
	v2, err := New(t.Context(), Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if v2.ProjectOnly("Bearer ") || v2.ProjectOnly("Bearer P2abc") {
		t.Error("ProjectOnly without a project_id must be false")
	}
}

func TestNewConfigErrors(t *testing.T) {
	k, f := writeKeyFiles(t)
	dir := t.TempDir()
	priv := writePEM(t, dir, "priv.pem", "PRIVATE KEY", mustPKCS8(t, k.p256))
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224DER, err := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p224File := writePEM(t, dir, "p224.pem", "PUBLIC KEY", p224DER)
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{}, "jwt: no key"},
		{"unknown alg", Config{Secret: testSecret, Algorithms: []string{"HS257"}}, `jwt: algorithms: unknown algorithm "HS257"`},
		{"none", Config{Secret: testSecret, Algorithms: []string{"none"}}, "jwt: algorithms: none is never allowed"},
		{"HS without secret", Config{PublicKeyFiles: []string{f.rsa}, Algorithms: []string{"RS256", "HS256"}}, "jwt: algorithms: HS256 needs secret"},
		{"RS without RSA key", Config{Secret: testSecret, Algorithms: []string{"RS256"}}, "jwt: algorithms: RS256 needs an RSA public_key_file or jwks_url"},
		{"ES256 with a P-384 key", Config{PublicKeyFiles: []string{f.p384}, Algorithms: []string{"ES256"}}, "jwt: algorithms: ES256 needs a P-256 public_key_file or jwks_url"},
		{"EdDSA without key", Config{PublicKeyFiles: []string{f.rsa}, Algorithms: []string{"EdDSA"}}, "jwt: algorithms: EdDSA needs an Ed25519"},
		{"negative leeway", Config{Secret: testSecret, Leeway: -time.Second}, "jwt: leeway"},
		{"bad jwks url", Config{JWKSURL: "file:///etc/passwd"}, "jwt: jwks_url"},
		{"relative jwks url", Config{JWKSURL: "/jwks.json"}, "jwt: jwks_url"},
		{"private key file", Config{PublicKeyFiles: []string{priv}}, "jwt: public_key_file: " + priv + ": holds a private key"},
		{"missing file", Config{PublicKeyFiles: []string{filepath.Join(dir, "nope.pem")}}, "jwt: public_key_file:"},
		{"P-224 key", Config{PublicKeyFiles: []string{p224File}}, "unsupported ECDSA curve"},
		{"no PEM in file", Config{PublicKeyFiles: []string{empty}}, "no PEM public key"},
		{"empty audience", Config{Secret: testSecret, Audience: []string{""}}, "jwt: audience"},
		{"project id with colon", Config{Secret: testSecret, ProjectID: "a:b"}, "jwt: project_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.cfg.Secret != "" && strings.Contains(err.Error(), tc.cfg.Secret) {
				t.Fatal("error quotes the secret")
			}
		})
	}
}

func TestDefaultAlgorithms(t *testing.T) {
	_, f := writeKeyFiles(t)
	cases := []struct {
		cfg  Config
		want []string
	}{
		{Config{Secret: testSecret}, []string{"HS256", "HS384", "HS512"}},
		{Config{PublicKeyFiles: []string{f.rsa}}, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{Config{PublicKeyFiles: []string{f.p256}}, []string{"ES256"}},
		{Config{PublicKeyFiles: []string{f.p384}}, []string{"ES384"}},
		{Config{PublicKeyFiles: []string{f.p521}}, []string{"ES512"}},
		{Config{PublicKeyFiles: []string{f.ed}}, []string{"EdDSA"}},
		{Config{Secret: testSecret, PublicKeyFiles: []string{f.ed, f.p256}}, []string{"HS256", "HS384", "HS512", "EdDSA", "ES256"}},
		{Config{Algorithms: []string{"rs256", "eddsa", "RS256"}, PublicKeyFiles: []string{f.rsa, f.ed}}, []string{"RS256", "EdDSA"}},
	}
	for _, tc := range cases {
		v, err := New(t.Context(), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Algorithms(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: algorithms %v, want %v", tc.cfg.PublicKeyFiles, got, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: "http://127.0.0.1:1/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Algorithms(); slices.ContainsFunc(got, isHS) || len(got) != 10 {
		t.Errorf("JWKS default algorithms %v", got)
	}
}

// TestIdentityKeepsWhatCallersRead: every string claim, byte for byte
// (NUL, long values), and of the other claims only those KeepClaims names.
func TestIdentityKeepsWhatCallersRead(t *testing.T) {
	v, err := New(t.Context(), Config{Secret: testSecret, Now: func() time.Time { return t0 }, KeepClaims: []string{"admin", "roles", "absent"}})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 300) // a length over one varint byte
	want := map[string]string{"sub": "user-9", "nul": "a\x00b", "email": "a@example.com", "long": long, "": "empty name", "empty": ""}
	claims := jwt.MapClaims{"exp": t0.Add(time.Hour).Unix(), "admin": true, "roles": []any{"x", "admin"}, "level": 3, "other": map[string]any{"a": 1}}
	for k, s := range want {
		claims[k] = s
	}
	id, err := v.Verify(t.Context(), "Bearer "+mint(t, jwt.SigningMethodHS256, []byte(testSecret), claims, nil))
	if err != nil {
		t.Fatal(err)
	}
	if id.UserID != "user-9" {
		t.Fatalf("UserID %q", id.UserID)
	}
	got := map[string]string{}
	id.StringClaims(func(name, value string) bool { got[name] = value; return true })
	if !maps.Equal(got, want) {
		t.Fatalf("string claims %q, want %q", got, want)
	}
	for name, s := range want {
		if v, ok := id.Claim(name); !ok || v != s {
			t.Fatalf("Claim(%q) = %v, %v", name, v, ok)
		}
	}
	if v, ok := id.Claim("admin"); !ok || v != true {
		t.Fatalf("kept admin claim: %v %v", v, ok)
	}
	if v, ok := id.Claim("roles"); !ok || !reflect.DeepEqual(v, []any{"x", "admin"}) {
		t.Fatalf("kept roles claim: %v %v", v, ok)
	}
	for _, name := range []string{"level", "other", "exp", "absent"} {
		if v, ok := id.Claim(name); ok {
			t.Fatalf("claim %q kept though not named: %v", name, v)
		}
	}
	n := 0
	id.StringClaims(func(string, string) bool { n++; return false })
	if n != 1 {
		t.Fatalf("StringClaims went on after yield returned false (%d calls)", n)
	}
}
