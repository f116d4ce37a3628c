package e2e

import (
	"strings"
	"testing"
)

// Issue 9, items 8–10: the resend cooldown by user and number, the guard
// of Descope's token-less verify, and bounded template options.

// template_options reach the SMS: over 8 keys, or a value over 64
// characters, is 400 invalid_request naming the field and the key, on our
// route and on Descope's templateOptions; nothing is sent. At the bounds
// the options reach the SMS.
func TestFlowTemplateOptionsBounded(t *testing.T) {
	e := newEnv(t, descopeSite(""))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	long := strings.Repeat("x", 7000)

	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671",
		"template_options": map[string]string{"name": long}}).want(t, 400, "invalid_request")
	if m, _ := r.body["message"].(string); !strings.Contains(m, "template_options.name") {
		t.Fatalf("message does not name the field and key: %s", r.raw)
	}
	nine := map[string]string{}
	for _, k := range strings.Split("abcdefghi", "") {
		nine[k] = "v"
	}
	r = e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671",
		"template_options": nine}).want(t, 400, "invalid_request")
	if m, _ := r.body["message"].(string); !strings.Contains(m, "template_options") {
		t.Fatalf("message does not name the field: %s", r.raw)
	}

	hdr := map[string]string{"Authorization": "Bearer " + descopeProject + ":" + tok}
	r = e.doRaw("POST", "/v1/auth/otp/update/phone/sms", hdr,
		[]byte(`{"loginId":"`+u+`","phone":"+14155552671","templateOptions":{"name":"`+long+`"}}`)).want(t, 400, "invalid_request")
	if m, _ := r.body["errorMessage"].(string); !strings.Contains(m, "templateOptions.name") {
		t.Fatalf("Descope message does not name the field and key: %s", r.raw)
	}
	// A number is stringified, then bounded like a string.
	r = e.doRaw("POST", "/v1/auth/otp/update/phone/sms", hdr,
		[]byte(`{"loginId":"`+u+`","phone":"+14155552671","templateOptions":{"n":1`+strings.Repeat("0", 70)+`}}`)).want(t, 400, "invalid_request")
	if m, _ := r.body["errorMessage"].(string); !strings.Contains(m, "templateOptions.n") {
		t.Fatalf("Descope message does not name the field and key: %s", r.raw)
	}
	if n := e.sink.count(u); n != 0 {
		t.Fatalf("%d SMS sent for refused options", n)
	}

	at := map[string]string{}
	for _, k := range strings.Split("abcdefgh", "") {
		at[strings.Repeat(k, 32)] = strings.Repeat("é", 64)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671",
		"template_options": at}).want(t, 200, "")
	if got := e.sink.last(u).TemplateOptions; len(got) != 8 || got[strings.Repeat("a", 32)] != strings.Repeat("é", 64) {
		t.Fatalf("options at the bounds: %v", got)
	}
}

// The resend cooldown binds the user and the number (SPEC §4): DELETE
// /phone/pending, or an update to another number, then the same update
// again within resend_after is 429 rate_limited with Retry-After, and no
// SMS goes out. Before, the cancel reset it.
func TestResendCooldownSurvivesCancel(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.do("DELETE", "/phone/pending", tok, nil).want(t, 200, "")
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || r.body["retry_after"] == nil {
		t.Fatalf("429 without its wait: %v %s", r.header, r.raw)
	}
	// Another number is not held; coming back to the first one is.
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
	e.do("DELETE", "/phone/pending", tok, nil).want(t, 200, "")
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 429, "rate_limited")
	if n := e.sink.count(u); n != 2 {
		t.Fatalf("%d SMS, want 2", n)
	}
	// Another user asking for that number is not held by u's cooldown.
	v := uniqueUser(t, "v")
	e.do("POST", "/phone/update", token(t, v), map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
}
