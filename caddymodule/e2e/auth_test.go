package e2e

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	challengeBare    = `Bearer realm="phone"`
	challengeInvalid = `Bearer realm="phone", error="invalid_token"`
)

// hs256 signs claims with secret.
func hs256(t *testing.T, secret string, claims jwt.MapClaims) string {
	return signToken(t, jwt.SigningMethodHS256, []byte(secret), claims)
}

// unsigned is an alg:none token: header and claims, empty signature.
func unsigned(t *testing.T, claims jwt.MapClaims) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
}

// tamper changes one character in the middle of the signature.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// Every refused credential gets the same 401 body, whatever the reason;
// the challenge carries error="invalid_token" only when a bearer token was
// presented (RFC 6750 §3.1: none for a request without one, or with
// another scheme).
func TestAuthFailuresShareOneAnswer(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "u")
	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": u, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	cases := []struct {
		name, auth, challenge string
	}{
		{"missing header", "", challengeBare},
		{"garbage token", "Bearer garbage", challengeInvalid},
		{"wrong signature", "Bearer " + tamper(token(t, u)), challengeInvalid},
		{"expired", "Bearer " + hs256(t, jwtSecret, claims("exp", now.Add(-time.Minute).Unix())), challengeInvalid},
		{"nbf in the future", "Bearer " + hs256(t, jwtSecret, claims("nbf", now.Add(time.Hour).Unix())), challengeInvalid},
		{"alg none", "Bearer " + unsigned(t, claims()), challengeInvalid},
		{"other secret", "Bearer " + hs256(t, "another-secret-0123456789abcdef", claims()), challengeInvalid},
		{"no sub", "Bearer " + hs256(t, jwtSecret, claims("sub", nil)), challengeInvalid},
		{"empty sub", "Bearer " + hs256(t, jwtSecret, claims("sub", "")), challengeInvalid},
		{"numeric sub", "Bearer " + hs256(t, jwtSecret, claims("sub", 42)), challengeInvalid},
		{"basic scheme", "Basic " + token(t, u), challengeBare},
	}
	var first string
	for _, c := range cases {
		for _, route := range []struct{ method, path string }{{"GET", "/phone"}, {"POST", "/phone/update"}} {
			hdr := map[string]string{}
			if c.auth != "" {
				hdr["Authorization"] = c.auth
			}
			r := e.doRaw(route.method, route.path, hdr, []byte(`{"phone_number":"+14155552671"}`))
			if r.status != 401 || r.body["error"] != "unauthorized" {
				t.Errorf("%s, %s %s: %d %s", c.name, route.method, route.path, r.status, r.raw)
				continue
			}
			if first == "" {
				first = r.raw
				if m, _ := r.body["message"].(string); m == "" || len(r.body) != 2 {
					t.Errorf("401 body %s: want exactly error and a message", r.raw)
				}
			}
			if r.raw != first {
				t.Errorf("%s, %s %s: body %s differs from %s", c.name, route.method, route.path, r.raw, first)
			}
			if got := r.header.Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("%s, %s %s: WWW-Authenticate %q, want %q", c.name, route.method, route.path, got, c.challenge)
			}
		}
	}
	if e.sink.count(u) != 0 {
		t.Fatal("a refused request sent an SMS")
	}
	// The same user with a good token is fine.
	e.do("GET", "/phone", token(t, u), nil).want(t, 200, "")
}

func TestIssuerAndAudience(t *testing.T) {
	e := newEnv(t, site{jwt: jwtLines("issuer https://idp.example.com", "audience legacy-app other-app")})
	u := uniqueUser(t, "u")
	now := time.Now()
	tok := func(kv ...any) string {
		c := jwt.MapClaims{"sub": u, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return hs256(t, jwtSecret, c)
	}
	cases := []struct {
		name   string
		tok    string
		status int
	}{
		{"right iss and aud", tok("iss", "https://idp.example.com", "aud", "legacy-app"), 200},
		{"aud list holding one accepted value", tok("iss", "https://idp.example.com", "aud", []string{"x", "other-app"}), 200},
		{"wrong iss", tok("iss", "https://evil.example.com", "aud", "legacy-app"), 401},
		{"no iss", tok("aud", "legacy-app"), 401},
		{"wrong aud", tok("iss", "https://idp.example.com", "aud", "another-app"), 401},
		{"no aud", tok("iss", "https://idp.example.com"), 401},
	}
	for _, c := range cases {
		r := e.do("GET", "/phone", c.tok, nil)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		}
		if c.status == 401 && r.body["error"] != "unauthorized" {
			t.Errorf("%s: %s", c.name, r.raw)
		}
		if c.status == 200 && r.body["user_id"] != u {
			t.Errorf("%s: %s", c.name, r.raw)
		}
	}
}

func TestProjectIDForm(t *testing.T) {
	e := newEnv(t, site{jwt: jwtLines("project_id P2abc")})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	r := e.do("GET", "/phone", "P2abc:"+tok, nil).want(t, 200, "")
	if r.body["user_id"] != u {
		t.Fatal(r.raw)
	}
	e.do("GET", "/phone", tok, nil).want(t, 200, "") // the plain form is still accepted
	r = e.do("GET", "/phone", "P2xyz:"+tok, nil).want(t, 401, "unauthorized")
	if got := r.header.Get("WWW-Authenticate"); got != challengeInvalid {
		t.Fatalf("WWW-Authenticate %q", got)
	}
	e.do("GET", "/phone", "P2abc", nil).want(t, 401, "unauthorized")            // the project alone is no user token
	e.do("GET", "/phone", "P2abc:garbage", nil).want(t, 401, "unauthorized")    // right project, bad token
	e.do("GET", "/phone", "P2abc:P2abc:"+tok, nil).want(t, 401, "unauthorized") // not the project
}

// Only update needs a recent sign-in: auth_time when present, else iat.
func TestMaxAuthAge(t *testing.T) {
	e := newEnv(t, site{jwt: jwtLines("max_auth_age 1m")})
	u := uniqueUser(t, "u")
	now := time.Now()
	old, recent := now.Add(-2*time.Hour).Unix(), now.Add(-10*time.Second).Unix()
	body := map[string]any{"phone_number": "+14155552671"}

	stale := token(t, u, "iat", old)
	r := e.do("POST", "/phone/update", stale, body).want(t, 401, "reauthentication_required")
	if got := r.header.Get("WWW-Authenticate"); got != challengeInvalid {
		t.Fatalf("WWW-Authenticate %q", got)
	}
	if m, _ := r.body["message"].(string); m == "" {
		t.Fatalf("no message: %s", r.raw)
	}
	e.do("GET", "/phone", stale, nil).want(t, 200, "")

	// auth_time wins over iat, both ways.
	e.do("POST", "/phone/update", token(t, u, "iat", recent, "auth_time", old), body).want(t, 401, "reauthentication_required")
	noTimes := hs256(t, jwtSecret, jwt.MapClaims{"sub": u, "exp": now.Add(time.Hour).Unix()})
	e.do("POST", "/phone/update", noTimes, body).want(t, 401, "reauthentication_required")
	if e.sink.count(u) != 0 {
		t.Fatal("a refused update sent an SMS")
	}
	e.do("POST", "/phone/update", token(t, u, "iat", old, "auth_time", recent), body).want(t, 200, "")
	// verify does not need a recent sign-in.
	e.do("POST", "/phone/verify", stale, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")
}
