package e2e

import (
	"testing"
)

// The two token-less verifies, Descope's by loginId and Supabase's by
// number, share one budget per challenge (SPEC §6): a stranger who
// alternates between them gets max_attempts judged guesses in all, then
// 429 even for the right code; the owner's verify with a token keeps its
// own max_attempts. A challenge takes at most 2 × max_attempts guesses.
func TestTokenlessVerifiesShareOneBudget(t *testing.T) {
	e := newEnv(t, descopeSite("\t\tcompat supabase\n\t\tlimits {\n\t\t\tverify_per_ip 100 1h\n\t\t}\n"))
	u, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": number}).want(t, 200, "")
	code := e.sink.last(u).Code
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	project := map[string]string{"Authorization": "Bearer " + descopeProject}
	byLogin := func(c string) response {
		return e.doRaw("POST", "/v1/auth/otp/verify/sms", project, []byte(`{"loginId":"`+u+`","code":"`+c+`"}`))
	}
	byNumber := func(c string) response {
		return e.do("POST", "/auth/v1/verify", "", map[string]any{"type": "phone_change", "phone": number, "token": c})
	}
	for i := range 5 { // max_attempts 5, alternating routes
		if i%2 == 0 {
			byLogin(wrong).want(t, 400, "invalid_code")
		} else if r := byNumber(wrong); r.status != 403 || r.body["error_code"] != "otp_expired" {
			t.Fatalf("guess %d by number: %d %s", i+1, r.status, r.raw)
		}
	}
	byLogin(code).want(t, 429, "too_many_attempts")
	if r := byNumber(code); r.status != 429 || r.body["error_code"] != "over_request_rate_limit" {
		t.Fatalf("the right code by number once the budget is spent: %d %s", r.status, r.raw)
	}
	// The owner, with a token: all their attempts are left.
	for left := 4; left >= 1; left-- {
		if r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrong}).want(t, 400, "invalid_code"); r.body["attempts_left"] != float64(left) {
			t.Fatalf("owner's attempts_left: %s", r.raw)
		}
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	if st := e.do("GET", "/phone", tok, nil).want(t, 200, ""); st.body["phone_number"] != number || st.body["verified"] != true {
		t.Fatalf("after the owner's verify: %s", st.raw)
	}
}
