package e2e

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// ReachFive's own SDK (@reachfive/identity-core 1.41), unmodified: it
// always calls https://<domain>, so the site is `tls internal` on
// httpsPort and Node trusts Caddy's local root (SPEC §6).

// newTLSEnv is newEnv for a loadTLS site.
func newTLSEnv(t *testing.T, s site) *env {
	t.Helper()
	e := &env{t: t, sink: newSMSSink(t), client: &http.Client{Timeout: 15 * time.Second}, cacheSecret: newCacheSecret()}
	e.tester = newTester(t)
	e.loadTLS(s)
	return e
}

// reachfive runs reachfive.mjs <action> against the TLS site.
func reachfive(t *testing.T, node, action string, params map[string]any) sdkResult {
	t.Helper()
	p := map[string]any{"domain": tlsBase()[len("https://"):], "clientId": "caddy-phone-e2e"}
	for k, v := range params {
		p[k] = v
	}
	return runSDK(t, node, "reachfive.mjs", action, p, "NODE_EXTRA_CA_CERTS="+caddyRootCert())
}

// createClient({domain, clientId}) fetches the remote settings; then
// updatePhoneNumber, sendPhoneNumberVerification (a first send for an
// unverified number, then a resend) and verifyPhoneNumber with our JWT as
// the access token: the number ends verified.
func TestSDKReachFiveUpdateVerify(t *testing.T) {
	node := needSDK(t, "@reachfive/identity-core")
	e := newTLSEnv(t, site{phone: "compat reachfive\notp {\n\tresend_after 0\n}"})
	u, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, u)

	r := reachfive(t, node, "config", map[string]any{"language": "fr"})
	if !r.OK || r.Data["isPublic"] != true || r.Data["sso"] != false || r.Data["language"] != "fr" {
		t.Fatalf("remoteSettings: %s", r.raw)
	}

	r = reachfive(t, node, "update", map[string]any{"token": tok, "phone": number})
	if !r.OK || r.Data["status"] != "updated" || r.Data["phoneNumber"] != number || r.Data["phoneNumberVerified"] != false ||
		r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("updatePhoneNumber: %s", r.raw)
	}
	if m := e.sink.last(u); m.To != number || m.Purpose != "update" {
		t.Fatalf("sms: %+v", m)
	}
	// Cancel the challenge: the number stays stored, unverified, and
	// sendPhoneNumberVerification opens a new one for it.
	e.doAt(tlsBase(), "DELETE", "/phone/pending", tok, nil).want(t, 200, "")
	n := e.sink.count(u)
	if r = reachfive(t, node, "send", map[string]any{"token": tok}); !r.OK || r.Data["status"] != "sent" {
		t.Fatalf("sendPhoneNumberVerification (first): %s", r.raw)
	}
	if r = reachfive(t, node, "send", map[string]any{"token": tok}); !r.OK || r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("sendPhoneNumberVerification (resend): %s", r.raw)
	}
	if e.sink.count(u) != n+2 {
		t.Fatalf("%d SMS, want 2 more", e.sink.count(u)-n)
	}
	m := e.sink.last(u)
	if m.Purpose != "resend" || m.To != number {
		t.Fatalf("sms: %+v", m)
	}

	// verifyPhoneNumber resolves to nothing (the SDK then fires its
	// profile_updated event).
	if r = reachfive(t, node, "verify", map[string]any{"token": tok, "phone": number, "code": m.Code}); !r.OK || r.Data != nil {
		t.Fatalf("verifyPhoneNumber: %s", r.raw)
	}
	st := e.doAt(tlsBase(), "GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != number || st.body["verified"] != true {
		t.Fatalf("status after the SDK's verify: %s", st.raw)
	}

	// getUser({fields}) reads the number back (GET /identity/v1/userinfo).
	r = reachfive(t, node, "user", map[string]any{"token": tok, "fields": "phone_number,phone_number_verified"})
	if !r.OK || r.Data["sub"] != u || r.Data["phoneNumber"] != number || r.Data["phoneNumberVerified"] != true {
		t.Fatalf("getUser: %s", r.raw)
	}
}

// ReachFive's error_id, and the error_message_key of each code met below.
var (
	errorID     = regexp.MustCompile(`^[0-9A-Za-z]{10}$`)
	messageKeys = map[string]string{"unauthorized": "error.unauthorized", "no_pending_verification": "error.noPendingVerification",
		"invalid_phone_number": "error.invalidPhoneNumber", "invalid_code": "error.invalidCode", "rate_limited": "error.rateLimited"}
)

// The SDK rejects with our error body, camelCased: error, errorId,
// errorDescription, errorMessageKey, errorUserMsg and the fields of SPEC §5.
func TestSDKReachFiveErrors(t *testing.T) {
	node := needSDK(t, "@reachfive/identity-core")
	e := newTLSEnv(t, site{phone: "compat reachfive"})
	u, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, u)

	wantErr := func(r sdkResult, code string) {
		t.Helper()
		desc, _ := r.Error["errorDescription"].(string)
		id, _ := r.Error["errorId"].(string)
		if r.OK || r.Error["error"] != code || desc == "" || r.Error["errorUserMsg"] != desc ||
			!errorID.MatchString(id) || r.Error["errorMessageKey"] != messageKeys[code] {
			t.Fatalf("want %s: %s", code, r.raw)
		}
	}
	wantErr(reachfive(t, node, "update", map[string]any{"token": "not-a-jwt", "phone": number}), "unauthorized")
	wantErr(reachfive(t, node, "user", map[string]any{"token": "not-a-jwt", "fields": "phone_number"}), "unauthorized")
	wantErr(reachfive(t, node, "send", map[string]any{"token": tok}), "no_pending_verification")
	wantErr(reachfive(t, node, "update", map[string]any{"token": tok, "phone": "12"}), "invalid_phone_number")

	if r := reachfive(t, node, "update", map[string]any{"token": tok, "phone": number}); !r.OK {
		t.Fatalf("updatePhoneNumber: %s", r.raw)
	}
	code := e.sink.last(u).Code
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	r := reachfive(t, node, "verify", map[string]any{"token": tok, "phone": number, "code": wrong})
	wantErr(r, "invalid_code")
	if r.Error["attemptsLeft"] != float64(4) {
		t.Fatalf("attemptsLeft: %s", r.raw)
	}
	wantErr(reachfive(t, node, "send", map[string]any{"token": tok}), "rate_limited") // resend_after 60s
	if r = reachfive(t, node, "verify", map[string]any{"token": tok, "phone": number, "code": code}); !r.OK {
		t.Fatalf("verifyPhoneNumber: %s", r.raw)
	}
}
