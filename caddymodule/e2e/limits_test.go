package e2e

import (
	"strconv"
	"testing"
)

// wantRetry checks a 429 rate_limited answer: Retry-After header and
// retry_after field agree and lie within [min, max] seconds.
func wantRetry(t *testing.T, r response, min, max int) {
	t.Helper()
	r.want(t, 429, "rate_limited")
	h, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q: %v", r.header.Get("Retry-After"), err)
	}
	b, ok := r.body["retry_after"].(float64)
	if !ok || int(b) != h || float64(h) != b {
		t.Fatalf("retry_after %v, Retry-After %d: want the same whole number", r.body["retry_after"], h)
	}
	if h < min || h > max {
		t.Fatalf("Retry-After %d, want %d..%d", h, min, max)
	}
}

// per_number counts sends to one number, whoever asks.
func TestLimitPerNumber(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n per_number 2 1h\n}"})
	number := map[string]any{"phone_number": "+14155552671"}
	for i := range 2 {
		e.do("POST", "/phone/update", token(t, uniqueUser(t, "u"+strconv.Itoa(i))), number).want(t, 200, "")
	}
	u := uniqueUser(t, "third")
	wantRetry(t, e.do("POST", "/phone/update", token(t, u), number), 3590, 3600)
	if e.sink.count(u) != 0 {
		t.Fatal("a refused update sent an SMS")
	}
	// Another number is not limited.
	e.do("POST", "/phone/update", token(t, u), map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
}

// per_user counts a user's sends, updates and resends alike.
func TestLimitPerUser(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n per_user 2 1h\n}\notp {\n resend_after 0s\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.do("POST", "/phone/resend", tok, nil).want(t, 200, "")
	wantRetry(t, e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678"}), 3590, 3600)
	wantRetry(t, e.do("POST", "/phone/resend", tok, nil), 3590, 3600)
	if e.sink.count(u) != 2 {
		t.Fatalf("%d SMS sent, want 2", e.sink.count(u))
	}
	// Another user is not limited.
	e.do("POST", "/phone/update", token(t, uniqueUser(t, "v")), map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
}

// global is the budget of the whole deployment.
func TestLimitGlobal(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n global 2 1m\n}"})
	numbers := []string{"+14155552671", "+33612345678", "+447911123456"}
	for i, n := range numbers[:2] {
		e.do("POST", "/phone/update", token(t, uniqueUser(t, "u"+strconv.Itoa(i))), map[string]any{"phone_number": n}).want(t, 200, "")
	}
	wantRetry(t, e.do("POST", "/phone/update", token(t, uniqueUser(t, "last")), map[string]any{"phone_number": numbers[2]}), 50, 60)
}

// per_ip counts the sends asked from one client address.
func TestLimitPerIP(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n per_ip 2 1h\n}"})
	numbers := []string{"+14155552671", "+33612345678", "+447911123456"}
	for i, n := range numbers[:2] {
		e.do("POST", "/phone/update", token(t, uniqueUser(t, "u"+strconv.Itoa(i))), map[string]any{"phone_number": n}).want(t, 200, "")
	}
	wantRetry(t, e.do("POST", "/phone/update", token(t, uniqueUser(t, "last")), map[string]any{"phone_number": numbers[2]}), 3590, 3600)
}

// verify_per_user spans challenges: cycling update → wrong code cannot buy
// more than 3 wrong guesses an hour; after them even the right code is
// refused.
func TestLimitVerifyPerUser(t *testing.T) {
	e := newEnv(t, site{phone: "limits {\n verify_per_user 3 1h\n}\notp {\n resend_after 0s\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	update := func() string {
		e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
		return e.sink.last(u).Code
	}
	for range 3 {
		code := update()
		r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
		if r.body["attempts_left"] != float64(4) {
			t.Fatalf("a new challenge starts with max_attempts: %s", r.raw)
		}
	}
	code := update()
	wantRetry(t, e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)}), 3590, 3600)
	wantRetry(t, e.do("POST", "/phone/verify", tok, map[string]any{"code": code}), 3590, 3600)
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["verified"] != false {
		t.Fatalf("verified after the budget was spent: %s", st.raw)
	}
	// Another user keeps a full budget.
	v := uniqueUser(t, "v")
	tv := token(t, v)
	e.do("POST", "/phone/update", tv, map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
	e.do("POST", "/phone/verify", tv, map[string]any{"code": e.sink.last(v).Code}).want(t, 200, "")
}
