package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// Descope's own SDK (@descope/node-sdk 2.13 on @descope/core-js-sdk 2.71),
// unmodified, with baseUrl = this Caddy (SPEC §6).

const descopeProject = "P2abc"

// descopeSite serves `compat descope` with the project ID the SDK sends.
func descopeSite(extra string) site {
	return site{jwt: jwtLines("project_id " + descopeProject), phone: "compat descope\n" + extra}
}

// sdkNumber is a French mobile number no other test of this run verifies.
func sdkNumber() string { return fmt.Sprintf("+3361%07d", time.Now().UnixNano()/1000%10000000) }

// descope runs descope.mjs <action> with the site's base URL and project.
func descope(t *testing.T, node, action string, params map[string]any) sdkResult {
	t.Helper()
	p := map[string]any{"baseUrl": base, "projectId": descopeProject}
	for k, v := range params {
		p[k] = v
	}
	return runSDK(t, node, "descope.mjs", action, p)
}

// sdk.otp.update.phone.sms(loginId, phone, token, options) then
// sdk.otp.verify.sms(loginId, code): the number ends verified.
func TestSDKDescopeUpdateVerify(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeSite(""))
	u, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, u)

	r := descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok,
		"options": map[string]any{"templateOptions": map[string]any{"name": "Ann", "n": 5}, "addToLoginIDs": true,
			"onMergeUseExisting": true}})
	if !r.OK || r.Code != 200 || r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("update: %s", r.raw)
	}
	msg := e.sink.last(u)
	if msg.To != number || msg.Purpose != "update" || msg.TemplateOptions["name"] != "Ann" || msg.TemplateOptions["n"] != "5" {
		t.Fatalf("sms: %+v", msg)
	}

	r = descope(t, node, "verify", map[string]any{"loginId": u, "code": msg.Code})
	if !r.OK || r.Code != 200 {
		t.Fatalf("verify: %s", r.raw)
	}
	if user, _ := r.Data["user"].(map[string]any); user["phone"] != number || user["verifiedPhone"] != true {
		t.Fatalf("verify data: %s", r.raw)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != number || st.body["verified"] != true {
		t.Fatalf("status after the SDK's verify: %s", st.raw)
	}
}

// descopeErrors is what the SDK exports as DescopeErrors, read from the SDK
// itself; the codes must be the ones SPEC §6 names.
func descopeErrors(t *testing.T, node string) map[string]any {
	t.Helper()
	r := descope(t, node, "errors", nil)
	want := map[string]string{"badRequest": "E011001", "missingArguments": "E011002", "invalidRequest": "E011003",
		"wrongOTPCode": "E061102", "tooManyOTPAttempts": "E061103", "userNotFound": "E062108"}
	for name, code := range want {
		if r.Data[name] != code {
			t.Fatalf("DescopeErrors.%s: want %s, the SDK has %s", name, code, r.raw)
		}
	}
	return r.Data
}

// wantDescopeSDKError checks an SdkResponse.error: the status, Descope's
// errorCode and, where the SDK exports that code, the DescopeErrors name
// app code compares it with (name "" for a code it does not export); our
// own code stays in error, the texts in errorDescription/errorMessage.
func wantDescopeSDKError(t *testing.T, errs map[string]any, r sdkResult, status int, ours, code, name string) {
	t.Helper()
	desc, _ := r.Error["errorDescription"].(string)
	if r.OK || r.Code != status || r.Error["errorCode"] != code || r.Error["error"] != ours || desc == "" ||
		r.Error["errorMessage"] != desc || r.ErrorName != name {
		t.Fatalf("want %d %s (%s, DescopeErrors.%s): %s", status, ours, code, name, r.raw)
	}
	if name != "" && errs[name] != r.Error["errorCode"] {
		t.Fatalf("errorCode %v is not DescopeErrors.%s (%v)", r.Error["errorCode"], name, errs[name])
	}
}

// The SDK hands our errors back as its SdkResponse.error, with Descope's
// own code in errorCode (so `err.errorCode === DescopeErrors.wrongOTPCode`
// holds in app code) and, for a 429, Retry-After read into retryAfter.
func TestSDKDescopeErrors(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeSite(""))
	errs := descopeErrors(t, node)
	u, other, number := uniqueUser(t, "u"), uniqueUser(t, "other"), sdkNumber()
	tok := token(t, u)
	wantErr := func(r sdkResult, status int, ours, code, name string) {
		t.Helper()
		wantDescopeSDKError(t, errs, r, status, ours, code, name)
	}

	// loginId of another user.
	wantErr(descope(t, node, "update", map[string]any{"loginId": other, "phone": number, "token": tok}), 403, "forbidden", "E011001", "badRequest")
	// A token the site does not trust.
	wantErr(descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": "a.b.c"}), 401, "unauthorized", "E011001", "badRequest")
	// A number that is not one (though the SDK's own check lets it through).
	wantErr(descope(t, node, "update", map[string]any{"loginId": u, "phone": "+1000000000", "token": tok}), 400, "invalid_phone_number", "E011003", "invalidRequest")
	// A verify for a loginId with nothing open.
	wantErr(descope(t, node, "verify", map[string]any{"loginId": other, "code": "123456"}), 409, "no_pending_verification", "E062108", "userNotFound")

	r := descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok})
	if !r.OK {
		t.Fatalf("update: %s", r.raw)
	}
	code := e.sink.last(u).Code
	// The same number again within resend_after: E130429, which the SDK
	// does not export.
	r = descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok})
	wantErr(r, 429, "rate_limited", "E130429", "")
	if ra, _ := r.Error["retryAfter"].(float64); ra < 1 {
		t.Fatalf("retryAfter: %s", r.raw)
	}
	// A wrong code.
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	r = descope(t, node, "verify", map[string]any{"loginId": u, "code": wrong})
	wantErr(r, 400, "invalid_code", "E061102", "wrongOTPCode")
	if r.Error["attempts_left"] != float64(4) {
		t.Fatalf("attempts_left: %s", r.raw)
	}
	// Another project.
	p := map[string]any{"baseUrl": base, "projectId": "P2xyz", "loginId": u, "code": code}
	wantErr(runSDK(t, node, "descope.mjs", "verify", p), 401, "unauthorized", "E011001", "badRequest")
	// The right code still works after all that.
	if r = descope(t, node, "verify", map[string]any{"loginId": u, "code": code}); !r.OK {
		t.Fatalf("verify: %s", r.raw)
	}
}

// max_attempts wrong codes through the SDK lock the challenge: the right
// code then answers DescopeErrors.tooManyOTPAttempts.
func TestSDKDescopeTooManyAttempts(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeSite("otp {\n max_attempts 2\n}"))
	errs := descopeErrors(t, node)
	u, number := uniqueUser(t, "u"), sdkNumber()
	if r := descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": token(t, u)}); !r.OK {
		t.Fatalf("update: %s", r.raw)
	}
	code := e.sink.last(u).Code
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	for i := 0; i < 2; i++ {
		r := descope(t, node, "verify", map[string]any{"loginId": u, "code": wrong})
		wantDescopeSDKError(t, errs, r, 400, "invalid_code", "E061102", "wrongOTPCode")
	}
	r := descope(t, node, "verify", map[string]any{"loginId": u, "code": code})
	wantDescopeSDKError(t, errs, r, 429, "too_many_attempts", "E061103", "tooManyOTPAttempts")
}

// With `compat descope { login_id_claim email }`, the SDK's loginId is the
// user's e-mail, as in Descope, while the token's subject is another ID:
// update with the e-mail and the token, verify with the e-mail and the
// project alone; the subject as loginId is refused (forbidden, then
// userNotFound), as is an e-mail no update named.
func TestSDKDescopeLoginIDClaim(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeLoginSite(""))
	errs := descopeErrors(t, node)
	u, number := uniqueUser(t, "u"), sdkNumber()
	email := "ann." + fmt.Sprint(time.Now().UnixNano()) + "@example.com"
	tok := token(t, u, "email", email)

	wantDescopeSDKError(t, errs, descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok}),
		403, "forbidden", "E011001", "badRequest")
	r := descope(t, node, "update", map[string]any{"loginId": email, "phone": number, "token": tok})
	if !r.OK || r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("update: %s", r.raw)
	}
	code := e.sink.last(u).Code
	wantDescopeSDKError(t, errs, descope(t, node, "verify", map[string]any{"loginId": u, "code": code}),
		409, "no_pending_verification", "E062108", "userNotFound")
	wantDescopeSDKError(t, errs, descope(t, node, "verify", map[string]any{"loginId": "other." + email, "code": code}),
		409, "no_pending_verification", "E062108", "userNotFound")

	r = descope(t, node, "verify", map[string]any{"loginId": email, "code": code})
	user, _ := r.Data["user"].(map[string]any)
	if !r.OK || user["userId"] != u || user["phone"] != number || user["verifiedPhone"] != true {
		t.Fatalf("verify: %s", r.raw)
	}
	if ids, _ := user["loginIds"].([]any); len(ids) != 1 || ids[0] != email {
		t.Fatalf("loginIds: %s", r.raw)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != number || st.body["verified"] != true {
		t.Fatalf("status after the SDK's verify: %s", st.raw)
	}
}
