package e2e

import (
	"testing"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// Descope's SDK on the WhatsApp channel: sdk.otp.update.phone.whatsapp
// then sdk.otp.verify.whatsapp, unmodified, against this Caddy; the code
// goes as a WhatsApp message. A channel not enabled (voice here) comes
// back as the SDK's error, 422 channel_not_allowed, with nothing sent.
func TestSDKDescopeWhatsApp(t *testing.T) {
	node := needSDK(t, "@descope/node-sdk", "@descope/core-js-sdk")
	e := newEnv(t, descopeSite("channels sms whatsapp"))
	u, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, u)

	r := descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok, "method": "voice"})
	if r.OK || r.Code != 422 || r.Error["error"] != "channel_not_allowed" || r.Error["errorCode"] != "E011001" {
		t.Fatalf("update by voice: %s", r.raw)
	}
	if e.sink.count(u) != 0 {
		t.Fatal("a refused channel sent a message")
	}

	r = descope(t, node, "update", map[string]any{"loginId": u, "phone": number, "token": tok, "method": "whatsapp"})
	if !r.OK || r.Code != 200 || r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("update: %s", r.raw)
	}
	msg := e.sink.last(u)
	if msg.To != number || msg.Channel != "whatsapp" || msg.Purpose != "update" {
		t.Fatalf("message: %+v", msg)
	}
	r = descope(t, node, "verify", map[string]any{"loginId": u, "code": wrong(msg.Code), "method": "whatsapp"})
	if r.OK || r.Code != 400 || r.ErrorName != "wrongOTPCode" {
		t.Fatalf("wrong code: %s", r.raw)
	}
	r = descope(t, node, "verify", map[string]any{"loginId": u, "code": msg.Code, "method": "whatsapp"})
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

// wrong is another code of the same length.
func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}
