package e2e

import (
	"strings"
	"testing"
)

// Bodies over 16 KiB are 413; malformed ones 400 invalid_request; and
// Caddy keeps serving after each.
func TestBodyErrors(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	big := `{"phone_number":"+14155552671","locale":"` + strings.Repeat("a", 17<<10) + `"}`
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"over 16 KiB", big, 413, "payload_too_large"},
		{"bad JSON", `{"phone_number":`, 400, "invalid_request"},
		{"not JSON", `phone_number=+14155552671`, 400, "invalid_request"},
		{"JSON array", `["+14155552671"]`, 400, "invalid_request"},
		{"JSON string", `"+14155552671"`, 400, "invalid_request"},
		{"number instead of string", `{"phone_number":14155552671}`, 400, "invalid_request"},
		{"unknown field", `{"phone_number":"+14155552671","admin":true}`, 400, "invalid_request"},
		{"missing phone_number", `{"locale":"fr"}`, 400, "invalid_request"},
		{"null phone_number", `{"phone_number":null}`, 400, "invalid_request"},
		{"null body", `null`, 400, "invalid_request"},
		{"empty object", `{}`, 400, "invalid_request"},
		{"empty body", ``, 400, "invalid_request"},
		{"blank body", " \n\t ", 400, "invalid_request"},
		{"two objects", `{"phone_number":"+14155552671"}{"phone_number":"+14155552671"}`, 400, "invalid_request"},
		{"object then garbage", `{"phone_number":"+14155552671"} x`, 400, "invalid_request"},
		{"deeply nested", strings.Repeat("[", 10000), 400, "invalid_request"},
		{"deeply nested object", `{"phone_number":"+14155552671","template_options":` + strings.Repeat(`{"a":`, 3000) + `}`, 400, "invalid_request"},
		{"non-UTF-8", "{\"phone_number\":\"+1415\xff\xfe2671\"}", 400, "invalid_request"},
		{"template_options not strings", `{"phone_number":"+14155552671","template_options":{"a":1}}`, 400, "invalid_request"},
	}
	for _, c := range cases {
		r := e.doRaw("POST", "/phone/update", auth, []byte(c.body))
		if r.status != c.status || r.body["error"] != c.code {
			t.Errorf("%s: %d %.200s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
			continue
		}
		if m, _ := r.body["message"].(string); m == "" || strings.Contains(m, "+1415") {
			t.Errorf("%s: message %q: want a sentence that does not echo the input", c.name, m)
		}
		e.do("GET", "/phone", tok, nil).want(t, 200, "")
	}
	if e.sink.count(u) != 0 {
		t.Fatal("a refused body sent an SMS")
	}
	// verify and resend read bodies the same way.
	e.doRaw("POST", "/phone/verify", auth, []byte(big)).want(t, 413, "payload_too_large")
	e.doRaw("POST", "/phone/verify", auth, []byte(`{"code":123456}`)).want(t, 400, "invalid_request")
	e.doRaw("POST", "/phone/verify", auth, []byte(`{"code":"123456","x":1}`)).want(t, 400, "invalid_request")
	e.doRaw("POST", "/phone/verify", auth, []byte(`{}`)).want(t, 400, "invalid_request")
	e.doRaw("POST", "/phone/resend", auth, []byte(big)).want(t, 413, "payload_too_large")
	e.doRaw("POST", "/phone/resend", auth, []byte(`[1]`)).want(t, 400, "invalid_request")
	// And the right body still works.
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
}

func TestInvalidPhoneNumbers(t *testing.T) {
	e := newEnv(t, site{})
	tok := token(t, uniqueUser(t, "u"))
	for _, n := range []string{"12", "+1 555", "hello", "", "+", "+1415555267100000", "4155552671", "(415) 555-2671",
		"+1 415 555 2671 ext. 12", "+1415\u202e5552671", strings.Repeat("1", 100)} {
		r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": n})
		if r.status != 400 || r.body["error"] != "invalid_phone_number" {
			t.Errorf("%q: %d %s, want 400 invalid_phone_number", n, r.status, r.raw)
		}
	}
}

func TestNumberPolicy(t *testing.T) {
	cases := []struct {
		name, phone, number string
		status              int
		code, why           string
	}{
		{"denied country", "numbers {\n deny_countries FR\n}", "+33612345678", 422, "phone_number_not_allowed", "FR"},
		{"deny leaves others", "numbers {\n deny_countries FR\n}", "+14155552671", 200, "", ""},
		{"outside allow list", "numbers {\n allow_countries US\n}", "+447400123456", 422, "phone_number_not_allowed", "GB"},
		{"inside allow list", "numbers {\n allow_countries US\n}", "+14155552671", 200, "", ""},
		{"premium rate by default", "", "+19002345678", 422, "phone_number_not_allowed", "premium"},
		{"premium rate when allowed", "numbers {\n types premium_rate\n}", "+19002345678", 200, "", ""},
		{"mobile refused by types", "numbers {\n types fixed_line\n}", "+447911123456", 422, "phone_number_not_allowed", "mobile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, site{phone: c.phone})
			tok := token(t, uniqueUser(t, "u"))
			r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": c.number}).want(t, c.status, c.code)
			if c.why != "" && !strings.Contains(r.body["message"].(string), c.why) {
				t.Fatalf("message %q does not say why (%s)", r.body["message"], c.why)
			}
		})
	}
}

func TestDefaultRegion(t *testing.T) {
	e := newEnv(t, site{phone: "numbers {\n default_region US\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "(415) 555-2671"}).want(t, 200, "")
	if r.body["phone_number"] != "+14155552671" || e.sink.last(u).To != "+14155552671" {
		t.Fatalf("not normalised: %s", r.raw)
	}
	// E.164 input still works, and other countries need their +.
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code, "phone_number": "415-555-2671"}).want(t, 200, "")
	tok2 := token(t, uniqueUser(t, "v"))
	r = e.do("POST", "/phone/update", tok2, map[string]any{"phone_number": "+33 6 12 34 56 78"}).want(t, 200, "")
	if r.body["phone_number"] != "+33612345678" {
		t.Fatal(r.raw)
	}
	e.do("POST", "/phone/update", tok2, map[string]any{"phone_number": "06 12 34 56 78"}).want(t, 400, "invalid_phone_number")
}
