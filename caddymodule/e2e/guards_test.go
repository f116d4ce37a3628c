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

// Descope's verify with the project ID alone (SPEC §6): a stranger who
// knows a loginId spends the challenge's token-less budget (max_attempts,
// 5) but never the owner's — the owner's POST /phone/verify still has
// all its attempts and its code works — and polls for users with no open
// challenge count against verify_per_ip like wrong codes do.
func TestDescopeTokenlessVerifyGuard(t *testing.T) {
	e := newEnv(t, descopeSite("limits {\n\t\tverify_per_ip 10 1h\n\t}"))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)

	project := map[string]string{"Authorization": "Bearer " + descopeProject}
	guess := func(login, c string) response {
		return e.doRaw("POST", "/v1/auth/otp/verify/sms", project, []byte(`{"loginId":"`+login+`","code":"`+c+`"}`))
	}
	for left := 4; left >= 0; left-- { // IP: 1..5
		r := guess(u, wrong).want(t, 400, "invalid_code")
		if r.body["attempts_left"] != float64(left) {
			t.Fatalf("attempts_left: %s", r.raw)
		}
	}
	guess(u, code).want(t, 429, "too_many_attempts") // IP: 6

	// The owner, with a token: untouched by all that.
	r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrong}).want(t, 400, "invalid_code") // IP: 7
	if r.body["attempts_left"] != float64(4) {
		t.Fatalf("owner's attempts_left after the stranger's guesses: %s", r.raw)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")

	// Polls for users with no open challenge count too.
	for i := range 3 { // IP: 8..10
		guess(uniqueUser(t, "nobody")+string(rune('a'+i)), "123456").want(t, 409, "no_pending_verification")
	}
	r = guess(uniqueUser(t, "nobody"), "123456").want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %s", r.raw)
	}
}

// An admin change drops the open challenge; the cooldown of the number
// its code went to holds all the same.
func TestResendCooldownSurvivesAdminChange(t *testing.T) {
	e := newEnv(t, clerkSite(""))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.doAdmin("POST", "/phone/v1/phone_numbers", map[string]any{"user_id": u, "phone_number": "+33612345678",
		"verified": true, "primary": true}).want(t, 200, "")
	if st := e.do("GET", "/phone", tok, nil).want(t, 200, ""); st.body["pending_phone_number"] != nil ||
		st.body["phone_number"] != "+33612345678" {
		t.Fatalf("after the admin change: %s", st.raw)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 429, "rate_limited")
	if n := e.sink.count(u); n != 1 {
		t.Fatalf("%d SMS, want 1", n)
	}
}
