package e2e

import (
	"strings"
	"testing"
)

// Kii Cloud's own SDK (kii-cloud-sdk 2.4.19, its Node build), unmodified,
// initialised with Kii.initializeWithSite(appID, appKey, "<this
// Caddy>/api") (SPEC §6).

const kiiAppID = "kiie2eapp"

// kiiSite serves `compat kii { app_id … }`; extra goes inside phone { }.
func kiiSite(extra string) site {
	return site{phone: "compat kii {\n\t\t\tapp_id " + kiiAppID + "\n\t\t}\n" + extra}
}

// kii runs kii.mjs <action> against the site, as the app kiiAppID.
func kii(t *testing.T, node, action string, params map[string]any) sdkResult {
	t.Helper()
	p := map[string]any{"baseUrl": base, "appId": kiiAppID, "appKey": "e2e-app-key"}
	for k, v := range params {
		p[k] = v
	}
	return runSDK(t, node, "kii.mjs", action, p)
}

// wantKiiUser checks the KiiUser the SDK holds after a successful call.
func wantKiiUser(t *testing.T, r sdkResult, id string, number any, verified any, pending any) {
	t.Helper()
	if !r.OK || r.Data["id"] != id || r.Data["phoneNumber"] != number || r.Data["phoneVerified"] != verified ||
		r.Data["pendingPhoneNumber"] != pending {
		t.Fatalf("want user %s, number %v, verified %v, pending %v: %s", id, number, verified, pending, r.raw)
	}
}

// wantKiiSDKError checks the Error the SDK rejects with: Kii's errorCode,
// a message, and the step that failed.
func wantKiiSDKError(t *testing.T, r sdkResult, step, code string) {
	t.Helper()
	if msg, _ := r.Error["message"].(string); r.OK || r.Error["errorCode"] != code || r.Error["step"] != step || msg == "" {
		t.Fatalf("want %s from %s: %s", code, step, r.raw)
	}
}

// authenticateWithToken → changePhone → verifyPhoneNumber with the SMS's
// code → refresh shows it verified; then a change of the verified number
// is pending (getPendingPhoneNumber) until verified, a wrong code is
// INVALID_VERIFICATION_CODE, and resendPhoneNumberVerification sends a new
// code that verifies.
func TestSDKKiiChangeVerify(t *testing.T) {
	node := needSDK(t, "kii-cloud-sdk")
	e := newEnv(t, kiiSite("otp {\n\t\t\tresend_after 0\n\t\t}"))
	u, first, second := uniqueUser(t, "u"), sdkNumber(), sdkNumber()
	for second == first {
		second = sdkNumber()
	}
	tok := token(t, u)

	wantKiiUser(t, kii(t, node, "authenticate", map[string]any{"token": tok}), u, nil, nil, nil)

	// A first number: stored at once, unverified, and a code goes to it.
	wantKiiUser(t, kii(t, node, "change", map[string]any{"token": tok, "phone": first}), u, first, false, nil)
	m := e.sink.last(u)
	if m.To != first || m.Purpose != "update" {
		t.Fatalf("sms: %+v", m)
	}
	wantKiiUser(t, kii(t, node, "verify", map[string]any{"token": tok, "code": m.Code}), u, first, true, nil)
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != first || st.body["verified"] != true {
		t.Fatalf("status after the SDK's verify: %s", st.raw)
	}

	// A change of the verified number waits for its code.
	wantKiiUser(t, kii(t, node, "change", map[string]any{"token": tok, "phone": second}), u, first, true, second)
	sent := e.sink.last(u)
	if sent.To != second {
		t.Fatalf("sms: %+v", sent)
	}
	n := e.sink.count(u)
	if r := kii(t, node, "resend", map[string]any{"token": tok}); !r.OK || r.Data["id"] != u {
		t.Fatalf("resendPhoneNumberVerification: %s", r.raw)
	}
	resent := e.sink.last(u)
	if e.sink.count(u) != n+1 || resent.Purpose != "resend" || resent.To != second {
		t.Fatalf("resent sms: %+v (%d sent)", resent, e.sink.count(u)-n)
	}
	wrong := resent.Code[:len(resent.Code)-1] + string('0'+(resent.Code[len(resent.Code)-1]-'0'+1)%10)
	wantKiiSDKError(t, kii(t, node, "verify", map[string]any{"token": tok, "code": wrong}), "verifyPhoneNumber",
		"INVALID_VERIFICATION_CODE")
	wantKiiUser(t, kii(t, node, "refresh", map[string]any{"token": tok}), u, first, true, second)
	wantKiiUser(t, kii(t, node, "verify", map[string]any{"token": tok, "code": resent.Code}), u, second, true, nil)
	wantKiiUser(t, kii(t, node, "refresh", map[string]any{"token": tok}), u, second, true, nil)
}

// The refusals as app code sees them through the SDK: Kii's errorCode in
// the rejected Error's message.
func TestSDKKiiErrors(t *testing.T) {
	node := needSDK(t, "kii-cloud-sdk")
	e := newEnv(t, kiiSite(""))
	u, owner, number := uniqueUser(t, "u"), uniqueUser(t, "owner"), sdkNumber()
	tok, ownerTok := token(t, u), token(t, owner)

	// Another application, a token the site does not trust.
	r := runSDK(t, node, "kii.mjs", "authenticate", map[string]any{"baseUrl": base, "appId": "otherapp", "token": tok})
	wantKiiSDKError(t, r, "authenticateWithToken", "APP_NOT_FOUND")
	wantKiiSDKError(t, kii(t, node, "authenticate", map[string]any{"token": "a.b.c"}), "authenticateWithToken", "UNAUTHORIZED")
	// Nothing to verify or resend yet; a number that is not one.
	wantKiiSDKError(t, kii(t, node, "verify", map[string]any{"token": tok, "code": "123456"}), "verifyPhoneNumber",
		"INVALID_ACCOUNT_STATUS")
	wantKiiSDKError(t, kii(t, node, "resend", map[string]any{"token": tok}), "resendPhoneNumberVerification",
		"INVALID_ACCOUNT_STATUS")
	wantKiiSDKError(t, kii(t, node, "change", map[string]any{"token": tok, "phone": "+1000000000"}), "changePhone",
		"INVALID_INPUT_DATA")

	// The owner verifies the number; the other user's change to it sends
	// a code (possession is proved first) and its verify is refused.
	kii(t, node, "change", map[string]any{"token": ownerTok, "phone": number})
	wantKiiUser(t, kii(t, node, "verify", map[string]any{"token": ownerTok, "code": e.sink.last(owner).Code}), owner, number, true, nil)
	wantKiiUser(t, kii(t, node, "change", map[string]any{"token": tok, "phone": number}), u, number, false, nil)
	// Within resend_after, a resend is refused.
	wantKiiSDKError(t, kii(t, node, "resend", map[string]any{"token": tok}), "resendPhoneNumberVerification", "RATE_LIMITED")
	r = kii(t, node, "verify", map[string]any{"token": tok, "code": e.sink.last(u).Code})
	wantKiiSDKError(t, r, "verifyPhoneNumber", "PHONE_NUMBER_ALREADY_EXISTS")
	if msg := r.Error["message"].(string); !strings.Contains(msg, "already in use") {
		t.Fatalf("message %q", msg)
	}
}
