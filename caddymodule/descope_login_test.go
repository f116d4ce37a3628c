package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// loginClaimConfig is compatConfig with `compat descope { login_id_claim
// email }`; extra is spliced into the JSON.
func loginClaimConfig(extra string) string {
	return compatConfig(`,"compat_options":{"descope":{"login_id_claim":"email"}}` + extra)
}

// tokWith mints a fresh HS256 token for user with extra claims.
func (h *compatHandler) tokWith(user string, claims jwt.MapClaims) string {
	h.t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(benchSecret))
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// With login_id_claim, the update's loginId is the token's e-mail, not its
// subject, and the token-less verify finds the user by that e-mail.
func TestDescopeLoginIDClaim(t *testing.T) {
	h := newCompatHandler(t, loginClaimConfig(""))
	u, number := compatUser(t, "u"), compatNumber()
	email := strings.ToLower(u) + "@example.com"
	tok := h.tokWith(u, jwt.MapClaims{"email": email})
	upd := func(login, tok string) string {
		return h.call("POST", descopeUpdate, "Bearer P2abc:"+tok, `{"loginId":"`+login+`","phone":"`+number+`"}`).Body.String()
	}

	// The subject is not the login ID any more; nor is a token without
	// the claim, or with a claim that is not a string.
	wantDescopeError(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+tok, `{"loginId":"`+u+`","phone":"`+number+`"}`), 403, "forbidden", "E011001")
	wantDescopeError(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+email+`","phone":"`+number+`"}`), 403, "forbidden", "E011001")
	wantDescopeError(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tokWith(u, jwt.MapClaims{"email": 5}), `{"loginId":"5","phone":"`+number+`"}`), 403, "forbidden", "E011001")
	if h.sink.count() != 0 {
		t.Fatal("an SMS went out")
	}

	if body := upd(email, tok); !strings.Contains(body, `"maskedPhone"`) {
		t.Fatalf("update: %s", body)
	}
	code := h.sink.last(t, u).Code
	verify := func(login, code string) map[string]any {
		return decoded(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+login+`","code":"`+code+`"}`), 200)
	}
	// The subject finds nothing without a token: it is not a login ID.
	wantDescopeError(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+u+`","code":"`+code+`"}`), 409, "no_pending_verification", "E062108")
	body := verify(email, code)
	user, _ := body["user"].(map[string]any)
	if user["userId"] != u || user["phone"] != number || user["verifiedPhone"] != true {
		t.Fatalf("verify: %v", body)
	}
	if ids, _ := user["loginIds"].([]any); len(ids) != 1 || ids[0] != email {
		t.Fatalf("loginIds: %v", body)
	}
	st, err := h.p.service.Status(context.Background(), u)
	if err != nil || st.User.PhoneNumber != number || !st.User.Verified {
		t.Fatalf("status %+v, %v", st, err)
	}
	// Consumed: the e-mail finds no challenge now.
	wantDescopeError(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+email+`","code":"`+code+`"}`), 409, "no_pending_verification", "E062108")

	// A verify with the user's token names the login ID too.
	second := compatNumber()
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+tok, `{"loginId":"`+email+`","phone":"`+second+`"}`), 200)
	code = h.sink.last(t, u).Code
	wantDescopeError(t, h.call("POST", descopeVerify, "Bearer P2abc:"+tok, `{"loginId":"`+u+`","code":"`+code+`"}`), 403, "forbidden", "E011001")
	decoded(t, h.call("POST", descopeVerify, "Bearer P2abc:"+tok, `{"loginId":"`+email+`","code":"`+code+`"}`), 200)
}

// Two users whose tokens carry one e-mail: the latest update wins the
// token-less verify; the other still verifies with its token.
func TestDescopeLoginIDLatestUpdateWins(t *testing.T) {
	h := newCompatHandler(t, loginClaimConfig(""))
	a, b := compatUser(t, "a"), compatUser(t, "b")
	email := "shared-" + strings.ToLower(a) + "@example.com"
	tokA, tokB := h.tokWith(a, jwt.MapClaims{"email": email}), h.tokWith(b, jwt.MapClaims{"email": email})
	numA, numB := compatNumber(), compatNumber()
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+tokA, `{"loginId":"`+email+`","phone":"`+numA+`"}`), 200)
	codeA := h.sink.last(t, a).Code
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+tokB, `{"loginId":"`+email+`","phone":"`+numB+`"}`), 200)
	codeB := h.sink.last(t, b).Code
	body := decoded(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+email+`","code":"`+codeB+`"}`), 200)
	if user, _ := body["user"].(map[string]any); user["userId"] != b {
		t.Fatalf("verify: %v", body)
	}
	decoded(t, h.call("POST", descopeVerify, "Bearer P2abc:"+tokA, `{"loginId":"`+email+`","code":"`+codeA+`"}`), 200)
}

// `compat descope { login_id_claim … }` in the Caddyfile, and a claim
// name that is none refused at Provision.
func TestDescopeLoginIDClaimConfig(t *testing.T) {
	p, err := parsePhone(t, "phone {\n compat descope {\n  login_id_claim email\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.CompatOptions["descope"]); got != `{"login_id_claim":"email"}` {
		t.Fatalf("compat_options = %s", got)
	}
	if p, err = parsePhone(t, "phone {\n compat descope\n}"); err != nil || p.CompatOptions != nil {
		t.Fatalf("compat descope alone: %v, %v", p.CompatOptions, err)
	}
	for _, claim := range []string{" email", "e\u0001mail"} {
		raw, _ := json.Marshal(claim)
		err := provisionError(t, compatConfig(`,"compat_options":{"descope":{"login_id_claim":`+string(raw)+`}}`))
		if err == nil || !strings.Contains(err.Error(), "login_id_claim must name a claim") {
			t.Errorf("%q: err = %v", claim, err)
		}
	}
}
