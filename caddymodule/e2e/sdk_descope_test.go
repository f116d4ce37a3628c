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

// The SDK hands our errors back as its SdkResponse.error, with our code in
// errorCode and, for a 429, Retry-After read into retryAfter.
func TestSDKDescopeErrors(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeSite(""))
	u, other, number := uniqueUser(t, "u"), uniqueUser(t, "other"), sdkNumber()
	tok := token(t, u)

	wantErr := func(r sdkResult, status int, code string) {
		t.Helper()
		desc, _ := r.Error["errorDescription"].(string)
		if r.OK || r.Code != status || r.Error["errorCode"] != code || desc == "" || r.Error["errorMessage"] != desc {
			t.Fatalf("want %d %s: %s", status, code, r.raw)
		}
	}

	// loginId of another user.
	wantErr(descope(t, node, "update", map[string]any{"loginId": other, "phone": number, "token": tok}), 403, "forbidden")
	// A token the site does not trust.
	wantErr(descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": "a.b.c"}), 401, "unauthorized")

	r := descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok})
	if !r.OK {
		t.Fatalf("update: %s", r.raw)
	}
	code := e.sink.last(u).Code
	// The same number again within resend_after.
	r = descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok})
	wantErr(r, 429, "rate_limited")
	if ra, _ := r.Error["retryAfter"].(float64); ra < 1 {
		t.Fatalf("retryAfter: %s", r.raw)
	}
	// A wrong code.
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	r = descope(t, node, "verify", map[string]any{"loginId": u, "code": wrong})
	wantErr(r, 400, "invalid_code")
	if r.Error["attempts_left"] != float64(4) {
		t.Fatalf("attempts_left: %s", r.raw)
	}
	// Another project.
	p := map[string]any{"baseUrl": base, "projectId": "P2xyz", "loginId": u, "code": code}
	wantErr(runSDK(t, node, "descope.mjs", "verify", p), 401, "unauthorized")
	// The right code still works after all that.
	if r = descope(t, node, "verify", map[string]any{"loginId": u, "code": code}); !r.OK {
		t.Fatalf("verify: %s", r.raw)
	}
}
