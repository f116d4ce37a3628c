package bearer

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary header values to a verifier that accepts HS256,
// EdDSA and the project form: Verify must never panic, must fail with one of
// the two sentinels, must not quote the credential in its error, and must only
// succeed with a user.
func FuzzVerify(f *testing.F) {
	// Its own key: keysOnce's RSA generation would slow every fuzz worker.
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	edPKIX, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		f.Fatal(err)
	}
	edFile := writePEM(f, f.TempDir(), "ed.pem", "PUBLIC KEY", edPKIX)
	now := t0
	claims := claimsAt(now, nil)
	hs := mint(f, jwt.SigningMethodHS256, []byte(testSecret), claims, nil)
	ed := mint(f, jwt.SigningMethodEdDSA, edKey, claims, map[string]any{"kid": "k"})
	for _, s := range []string{
		"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer a.b.c", "Bearer ..", "Bearer P2abc",
		"Bearer P2abc:", "Bearer :", "Bearer " + hs, "BEARER   " + hs + "  ", "Bearer P2abc:" + hs,
		"Bearer wrong:" + hs, "Bearer " + ed, "Bearer " + hs[:len(hs)-3], "Bearer " + strings.Replace(hs, ".", "..", 1),
		"Bearer " + b64(`{"alg":"none"}`) + "." + b64(`{"sub":"x"}`) + ".",
		"Bearer " + b64(`{"alg":"HS256","crit":["b64"],"b64":false}`) + "." + b64(`{"sub":"x"}`) + ".sig",
		"Bearer " + b64(`{"alg":"EdDSA","kid":{"a":1}}`) + "." + b64(`{"sub":"x","exp":"soon"}`) + ".AAAA",
		"Bearer " + b64(`{"alg":"HS256"}`) + "." + b64(`{"sub":"x","exp":1e400}`) + ".AAAA",
		"Bearer " + strings.Repeat("A", MaxTokenBytes+1),
	} {
		f.Add(s)
	}
	var v *Verifier
	v, err = New(f.Context(), Config{
		Secret:         testSecret,
		PublicKeyFiles: []string{edFile},
		ProjectID:      "P2abc",
		Leeway:         time.Minute,
		Now:            func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, err := v.Verify(t.Context(), header)
		_ = v.ProjectOnly(header)
		if err == nil {
			if id == nil || id.UserID == "" {
				t.Fatalf("success without a user: %+v", id)
			}
			return
		}
		if id != nil {
			t.Fatal("identity returned with an error")
		}
		if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error outside the sentinels: %v", err)
		}
		if cred, ok := bearerCredential(header); ok && len(cred) >= 12 && strings.Contains(err.Error(), cred) {
			t.Fatalf("error quotes the credential: %v", err)
		}
	})
}

// FuzzMayBeJWT: the quick refusal of junk (mayBeJWT) never refuses a
// string golang-jwt would parse: whatever it refuses, golang-jwt refuses
// as malformed too. The seeds include headers that start with JSON
// whitespace, which golang-jwt accepts.
func FuzzMayBeJWT(f *testing.F) {
	hs := mint(f, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(t0, nil), nil)
	for _, s := range []string{"", "bad.token.value", "a.b.c", "..", hs, hs[1:], "x" + hs,
		b64(` {"alg":"HS256"}`) + "." + b64(`{"sub":"x"}`) + ".sig",
		b64("\t{\"alg\":\"HS256\"}") + "." + b64(`{"sub":"x"}`) + ".sig",
		b64("\r\n{\"alg\":\"HS256\"}") + "." + b64(`{"sub":"x"}`) + ".sig",
		b64("\n{\"alg\":\"HS256\"}") + "." + b64(`{"sub":"x"}`) + ".sig",
	} {
		f.Add(s)
	}
	p := jwt.NewParser()
	f.Fuzz(func(t *testing.T, token string) {
		if mayBeJWT(token) {
			return
		}
		_, _, err := p.ParseUnverified(token, jwt.MapClaims{})
		if !errors.Is(err, jwt.ErrTokenMalformed) {
			t.Fatalf("mayBeJWT refused %q, which golang-jwt parses (err %v)", token, err)
		}
	})
}
