package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A new number for a user without one: stored at once, unverified; the
// code sent to it verifies it; GET /phone shows it verified.
func TestUpdateVerifyFirstNumber(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "alice")
	tok := token(t, u)

	e.do("GET", "/phone", tok, nil).want(t, 200, "")
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33 6 12 34 56 78"}).want(t, 200, "")
	if r.body["status"] != "updated" || r.body["phone_number"] != "+33612345678" || r.body["verified"] != false {
		t.Fatalf("update body: %s", r.raw)
	}
	if r.body["masked_phone"] != "+33*****5678" || r.body["expires_in"] != float64(600) || r.body["resend_after"] != float64(60) {
		t.Fatalf("update body: %s", r.raw)
	}
	if strings.Contains(r.raw, e.sink.last(u).Code) {
		t.Fatal("the code appears in the response")
	}
	msg := e.sink.last(u)
	if msg.To != "+33612345678" || msg.Purpose != "update" || msg.Locale != "en" || !strings.Contains(msg.Body, msg.Code) {
		t.Fatalf("sms: %+v", msg)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+33612345678" || st.body["verified"] != false {
		t.Fatalf("status before verify: %s", st.raw)
	}

	v := e.do("POST", "/phone/verify", tok, map[string]any{"code": msg.Code}).want(t, 200, "")
	if v.body["status"] != "verified" || v.body["phone_number"] != "+33612345678" || v.body["verified"] != true {
		t.Fatalf("verify body: %s", v.raw)
	}
	st = e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+33612345678" || st.body["verified"] != true || st.body["pending_phone_number"] != nil {
		t.Fatalf("status after verify: %s", st.raw)
	}
	// Single use.
	e.do("POST", "/phone/verify", tok, map[string]any{"code": msg.Code}).want(t, 409, "no_pending_verification")
}

// Changing a verified number holds the new one as pending; the old one
// stays in force until the code is verified.
func TestPendingChange(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "bob")
	tok := token(t, u)
	verifyNumber(t, e, u, tok, "+447911123456")

	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 202, "")
	if r.body["status"] != "pending" || r.body["phone_number"] != "+447911123456" || r.body["verified"] != true ||
		r.body["pending_phone_number"] != "+14155552671" || r.body["masked_phone"] != "+1******2671" {
		t.Fatalf("pending body: %s", r.raw)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+447911123456" || st.body["pending_phone_number"] != "+14155552671" {
		t.Fatalf("status while pending: %s", st.raw)
	}
	exp, err := time.Parse(time.RFC3339, st.body["pending_expires_at"].(string))
	if err != nil || exp.Before(time.Now().Add(9*time.Minute)) || !strings.HasSuffix(st.body["pending_expires_at"].(string), "Z") {
		t.Fatalf("pending_expires_at: %v", st.body["pending_expires_at"])
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")
	st = e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+14155552671" || st.body["verified"] != true || st.body["pending_phone_number"] != nil || st.body["pending_expires_at"] != nil {
		t.Fatalf("status after swap: %s", st.raw)
	}
}

// Re-entering the verified number changes nothing, sends nothing, and
// cancels a pending change.
func TestUnchangedCancelsPending(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "carol")
	tok := token(t, u)
	verifyNumber(t, e, u, tok, "+33612345678")
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 202, "")
	sent := e.sink.count(u)
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
	if r.body["status"] != "unchanged" || r.body["verified"] != true || r.body["masked_phone"] != nil {
		t.Fatalf("unchanged body: %s", r.raw)
	}
	if e.sink.count(u) != sent {
		t.Fatal("rule 4 sent an SMS")
	}
	st := e.do("GET", "/phone", tok, nil)
	if st.body["pending_phone_number"] != nil {
		t.Fatalf("pending not canceled: %s", st.raw)
	}
}

// verification off: stored at once, unverified, no SMS.
func TestVerificationOff(t *testing.T) {
	e := newEnv(t, site{phone: "verification off"})
	u := uniqueUser(t, "dan")
	tok := token(t, u)
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	if r.body["status"] != "updated" || r.body["phone_number"] != "+14155552671" || r.body["verified"] != false {
		t.Fatalf("body: %s", r.raw)
	}
	if e.sink.count(u) != 0 {
		t.Fatal("an SMS was sent with verification off")
	}
}

// Resend: a new code, the old one void, the attempt count kept.
func TestResendKeepsAttempts(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n max_attempts 3\n resend_after 0s\n}"})
	u := uniqueUser(t, "erin")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	old := e.sink.last(u).Code
	r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(old)}).want(t, 400, "invalid_code")
	if r.body["attempts_left"] != float64(2) {
		t.Fatalf("attempts_left: %s", r.raw)
	}
	rs := e.do("POST", "/phone/resend", tok, nil).want(t, 200, "")
	if rs.body["status"] != "sent" || rs.body["masked_phone"] != "+1******2671" || rs.body["expires_in"] != float64(600) {
		t.Fatalf("resend body: %s", rs.raw)
	}
	msg := e.sink.last(u)
	if msg.Purpose != "resend" {
		t.Fatalf("purpose %q", msg.Purpose)
	}
	if msg.Code != old {
		// The old code no longer works (and counts as a wrong try).
		r = e.do("POST", "/phone/verify", tok, map[string]any{"code": old}).want(t, 400, "invalid_code")
		if r.body["attempts_left"] != float64(1) {
			t.Fatalf("attempts_left after resend: %s", r.raw)
		}
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": msg.Code}).want(t, 200, "")
}

// max_attempts wrong codes lock the challenge: the right code then fails too.
func TestLockoutAfterMaxAttempts(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n max_attempts 2\n}"})
	u := uniqueUser(t, "fay")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	r := e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	if r.body["attempts_left"] != float64(1) {
		t.Fatal(r.raw)
	}
	r = e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	if r.body["attempts_left"] != float64(0) {
		t.Fatal(r.raw)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 429, "too_many_attempts")
	e.do("POST", "/phone/resend", tok, nil).want(t, 429, "too_many_attempts")
}

func TestExpiredCode(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n ttl 1s\n}"})
	u := uniqueUser(t, "gil")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	time.Sleep(1100 * time.Millisecond)
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 410, "code_expired")
}

func TestResendCooldown(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n resend_after 90s\n}"})
	u := uniqueUser(t, "hal")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	r := e.do("POST", "/phone/resend", tok, nil).want(t, 429, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra != "90" || r.body["retry_after"] != float64(90) {
		t.Fatalf("Retry-After %q, body %s", ra, r.raw)
	}
	// Repeating the update to the same number is no way around it.
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 429, "rate_limited")
	if e.sink.count(u) != 1 {
		t.Fatalf("%d SMS sent, want 1", e.sink.count(u))
	}
}

func TestCancelPending(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "ivy")
	tok := token(t, u)
	e.do("DELETE", "/phone/pending", tok, nil).want(t, 409, "no_pending_verification")
	verifyNumber(t, e, u, tok, "+33612345678")
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 202, "")
	r := e.do("DELETE", "/phone/pending", tok, nil).want(t, 200, "")
	if r.body["status"] != "canceled" {
		t.Fatal(r.raw)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 409, "no_pending_verification")
	st := e.do("GET", "/phone", tok, nil)
	if st.body["phone_number"] != "+33612345678" || st.body["pending_phone_number"] != nil {
		t.Fatal(st.raw)
	}
}

// A number verified by someone else is refused only once the code proved
// possession; the loser's record stays as it was.
func TestPhoneNumberInUse(t *testing.T) {
	e := newEnv(t, site{})
	a, b := uniqueUser(t, "a"), uniqueUser(t, "b")
	ta, tb := token(t, a), token(t, b)
	verifyNumber(t, e, a, ta, "+14155552671")
	verifyNumber(t, e, b, tb, "+33612345678")
	r := e.do("POST", "/phone/update", tb, map[string]any{"phone_number": "+14155552671"}).want(t, 202, "")
	if strings.Contains(r.raw, "in_use") {
		t.Fatal("update revealed the number is taken")
	}
	code := e.sink.last(b).Code
	e.do("POST", "/phone/verify", tb, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	e.do("POST", "/phone/verify", tb, map[string]any{"code": code}).want(t, 409, "phone_number_in_use")
	e.do("POST", "/phone/verify", tb, map[string]any{"code": code}).want(t, 409, "no_pending_verification")
	st := e.do("GET", "/phone", tb, nil)
	if st.body["phone_number"] != "+33612345678" || st.body["verified"] != true {
		t.Fatalf("loser's record changed: %s", st.raw)
	}
}

// Every provider failing is a 502; under rule 2 the number stays stored
// and the user may resend at once.
func TestDeliveryFailure(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "jo")
	tok := token(t, u)
	e.sink.setFail(true)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 502, "sms_delivery_failed")
	st := e.do("GET", "/phone", tok, nil)
	if st.body["phone_number"] != "+14155552671" || st.body["verified"] != false {
		t.Fatal(st.raw)
	}
	e.sink.setFail(false)
	e.do("POST", "/phone/resend", tok, nil).want(t, 200, "")
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")
}

// Several sms lines are a failover chain, in order.
func TestFailoverChain(t *testing.T) {
	down := newSMSSink(t)
	down.setFail(true)
	e := &env{t: t, sink: newSMSSink(t), client: &http.Client{Timeout: 15 * time.Second}, cacheSecret: newCacheSecret()}
	e.tester = newTester(t)
	e.load(site{sms: webhookLine(down.srv.URL, "") + "\n" + webhookLine(e.sink.srv.URL, "backup")})
	u := uniqueUser(t, "kim")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	if e.sink.count(u) != 1 {
		t.Fatal("the second provider did not get the message")
	}
}

func TestLocaleTemplates(t *testing.T) {
	e := newEnv(t, site{phone: `app_name Acme
template "Your {app} code: {code} ({minutes} min)"
template fr "Votre code {app} : {code} ({minutes} min)"`})
	u := uniqueUser(t, "lea")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678", "locale": "fr-FR",
		"template_options": map[string]string{"k": "v"}}).want(t, 200, "")
	m := e.sink.last(u)
	if m.Body != "Votre code Acme : "+m.Code+" (10 min)" || m.Locale != "fr" || m.TemplateOptions["k"] != "v" {
		t.Fatalf("message %+v", m)
	}
}

// Exactly one of many concurrent verifies of one code succeeds.
func TestConcurrentVerifyOneWinner(t *testing.T) {
	e := newEnv(t, site{phone: "otp {\n max_attempts 100\n}\nlimits {\n verify_per_user 1000 1h\n}"})
	u := uniqueUser(t, "max")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/phone/verify", tok, map[string]any{"code": code})
			if r.status == 200 {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if r.status != 409 {
				t.Errorf("loser got %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d verifies succeeded, want exactly 1", wins)
	}
}

// verifyNumber takes user to a verified number through the API.
func verifyNumber(t *testing.T, e *env, user, tok, number string) {
	t.Helper()
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": number}).want(t, 200, "")
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(user).Code}).want(t, 200, "")
}

// wrongCode returns a code of the same length that is not code.
func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}
