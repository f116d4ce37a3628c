package e2e

import (
	"strings"
	"testing"
)

// descopeLoginSite is descopeSite with login_id_claim email.
func descopeLoginSite(extra string) site {
	return site{jwt: jwtLines("project_id " + descopeProject),
		phone: "compat descope {\n\t\t\tlogin_id_claim email\n\t\t}\n" + extra}
}

// `compat descope { login_id_claim email }` (SPEC §6): the update's
// loginId is the token's e-mail, not its subject; the token-less verify
// finds the user by that e-mail through the index in the shared cache; a
// loginId no update named costs verify_per_ip like any token-less poll.
// In flowTests, so it runs on every store and cache (Redis included).
func TestDescopeLoginIDClaim(t *testing.T) {
	e := newEnv(t, descopeLoginSite("limits {\n\t\tverify_per_ip 4 1h\n\t}"))
	u := uniqueUser(t, "u")
	email := strings.ToLower(u) + "@example.com"
	tok := token(t, u, "email", email)
	update := func(login string) response {
		return e.doRaw("POST", "/v1/auth/otp/update/phone/sms", map[string]string{"Authorization": "Bearer " + descopeProject + ":" + tok},
			[]byte(`{"loginId":"`+login+`","phone":"+14155552671"}`))
	}
	verify := func(login, code string) response {
		return e.doRaw("POST", "/v1/auth/otp/verify/sms", map[string]string{"Authorization": "Bearer " + descopeProject},
			[]byte(`{"loginId":"`+login+`","code":"`+code+`"}`))
	}
	update(u).want(t, 403, "forbidden")
	update(email).want(t, 200, "")
	code := e.sink.last(u).Code
	verify(u, code).want(t, 409, "no_pending_verification") // IP: 1
	r := verify(email, code).want(t, 200, "")
	if user, _ := r.body["user"].(map[string]any); user["userId"] != u {
		t.Fatalf("verify: %s", r.raw)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+14155552671" || st.body["verified"] != true {
		t.Fatalf("status: %s", st.raw)
	}
	for range 3 { // IP: 2..4
		verify("nobody-"+email, "123456").want(t, 409, "no_pending_verification")
	}
	if r = verify("nobody-"+email, "123456").want(t, 429, "rate_limited"); r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %s", r.raw)
	}
}
