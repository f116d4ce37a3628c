package caddymodule

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

const (
	r5Config = "/identity/v1/config"
	r5Update = "/identity/v1/update-phone-number"
	r5Send   = "/identity/v1/send-phone-number-verification"
	r5Verify = "/identity/v1/verify-phone-number"
	r5User   = "/identity/v1/userinfo"
)

// r5ErrorID is the shape of ReachFive's error_id.
var r5ErrorID = regexp.MustCompile(`^[0-9A-Za-z]{10}$`)

// identity-core's headers on a call with a body.
var r5JSON = []string{"Content-Type", "application/json;charset=UTF-8"}

// wantReachFiveError checks an error answer in ReachFive's shape.
func wantReachFiveError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	body := decoded(t, rec, status)
	msg, _ := body["message"].(string)
	id, _ := body["error_id"].(string)
	if body["error"] != code || msg == "" || body["error_description"] != msg || body["error_user_msg"] != msg ||
		!r5ErrorID.MatchString(id) || body["error_message_key"] != reachfiveMessageKey(code) {
		t.Fatalf("want %s in ReachFive's shape, got %s", code, rec.Body)
	}
	return body
}

// The remote settings: no auth, JSON, the language asked for.
func TestReachFiveConfig(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	body := decoded(t, h.call("GET", r5Config+"?client_id=abc", "", ""), 200)
	if body["sso"] != false || body["is_public"] != true || body["language"] != nil {
		t.Fatalf("config %v", body)
	}
	body = decoded(t, h.call("GET", r5Config+"?client_id=abc&lang=fr", "", ""), 200)
	if body["language"] != "fr" {
		t.Fatalf("config with lang: %v", body)
	}
	if body = decoded(t, h.call("GET", r5Config+"?client_id=abc&lang=%3Cx%3E", "", ""), 200); body["language"] != nil {
		t.Fatalf("config reflects a bad lang: %v", body)
	}
	decoded(t, h.call("HEAD", r5Config+"?client_id=abc", "", ""), 200)
	rec := h.call("POST", r5Config, "", "{}")
	wantReachFiveError(t, rec, 405, "method_not_allowed")
	if rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("Allow %q", rec.Header().Get("Allow"))
	}
}

// update-phone-number, send-phone-number-verification and
// verify-phone-number as identity-core sends them.
func TestReachFiveUpdateSendVerify(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"otp":{"resend_after":0}`))
	u, fr := compatUser(t, "u"), compatNumber()
	auth := "Bearer " + h.tok(u)
	body := decoded(t, h.call("POST", r5Update, auth, `{"phone_number":"`+fr+`"}`, r5JSON...), 200)
	if body["status"] != "updated" || body["phone_number"] != fr || body["phone_number_verified"] != false ||
		body["masked_phone"] != numbers.Mask(fr) {
		t.Fatalf("update %v", body)
	}
	first := h.sink.last(t, u)
	body = decoded(t, h.call("POST", r5Send, auth, ""), 200)
	if body["status"] != "sent" || body["masked_phone"] != numbers.Mask(fr) {
		t.Fatalf("send %v", body)
	}
	second := h.sink.last(t, u)
	if second.Purpose != "resend" || second.To != fr {
		t.Fatalf("resend sms %+v", second)
	}
	if first.Code != second.Code {
		wantReachFiveError(t, h.call("POST", r5Verify, auth, `{"phone_number":"`+fr+`","verification_code":"`+first.Code+`"}`, r5JSON...), 400, "invalid_code")
	}
	body = decoded(t, h.call("POST", r5Verify, auth, `{"phone_number":"`+fr[:3]+" "+fr[3:]+`","verification_code":"`+second.Code+`"}`, r5JSON...), 200)
	if body["status"] != "verified" || body["phone_number"] != fr || body["phone_number_verified"] != true {
		t.Fatalf("verify %v", body)
	}
	// A verified number changed: held pending, 202.
	body = decoded(t, h.call("POST", r5Update, auth, `{"phone_number":"+14155552671"}`, r5JSON...), 202)
	if body["status"] != "pending" || body["phone_number"] != fr || body["pending_phone_number"] != "+14155552671" ||
		body["phone_number_verified"] != true {
		t.Fatalf("pending update %v", body)
	}
}

// send-phone-number-verification with nothing open sends a first code to
// an unverified current number, and refuses without one.
func TestReachFiveFirstSend(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u, none, fr := compatUser(t, "u"), compatUser(t, "none"), compatNumber()
	if err := h.p.users.Set(context.Background(), store.User{ID: u, PhoneNumber: fr}); err != nil {
		t.Fatal(err)
	}
	decoded(t, h.call("POST", r5Send, "Bearer "+h.tok(u), "{}", r5JSON...), 200)
	msg := h.sink.last(t, u)
	if msg.To != fr {
		t.Fatalf("sms %+v", msg)
	}
	decoded(t, h.call("POST", r5Verify, "Bearer "+h.tok(u), `{"verification_code":"`+msg.Code+`"}`, r5JSON...), 200)
	wantReachFiveError(t, h.call("POST", r5Send, "Bearer "+h.tok(u), ""), 409, "no_pending_verification") // verified now
	wantReachFiveError(t, h.call("POST", r5Send, "Bearer "+h.tok(none), ""), 409, "no_pending_verification")
}

// The SMS template follows Custom-Locale, else Accept-Language.
func TestReachFiveLocale(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"otp":{"resend_after":0}`))
	u := compatUser(t, "u")
	auth := "Bearer " + h.tok(u)
	decoded(t, h.call("POST", r5Update, auth, `{"phone_number":"+33612345678"}`, "Accept-Language", "fr-FR,fr;q=0.9"), 200)
	if m := h.sink.last(t, u); m.Locale != "fr" {
		t.Fatalf("Accept-Language: %+v", m)
	}
	decoded(t, h.call("POST", r5Send, auth, "", "Accept-Language", "fr", "Custom-Locale", "en-GB"), 200)
	if m := h.sink.last(t, u); m.Locale != "en" {
		t.Fatalf("Custom-Locale: %+v", m)
	}
}

func TestReachFiveErrors(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u := compatUser(t, "u")
	auth := "Bearer " + h.tok(u)
	for _, c := range []struct {
		name, method, path, auth, body string
		status                         int
		code                           string
	}{
		{"update without token", "POST", r5Update, "", `{"phone_number":"+33612345678"}`, 401, "unauthorized"},
		{"update with a bad token", "POST", r5Update, "Bearer x.y.z", `{"phone_number":"+33612345678"}`, 401, "unauthorized"},
		{"send without token", "POST", r5Send, "", "", 401, "unauthorized"},
		{"verify without token", "POST", r5Verify, "", `{"verification_code":"123456"}`, 401, "unauthorized"},
		{"update without phone", "POST", r5Update, auth, `{}`, 400, "invalid_request"},
		{"update in camelCase", "POST", r5Update, auth, `{"phoneNumber":"+33612345678"}`, 400, "invalid_request"},
		{"update with a bad number", "POST", r5Update, auth, `{"phone_number":"12"}`, 400, "invalid_phone_number"},
		{"update with GET", "GET", r5Update, auth, "", 405, "method_not_allowed"},
		{"send with an unknown field", "POST", r5Send, auth, `{"x":1}`, 400, "invalid_request"},
		{"send with nothing open", "POST", r5Send, auth, "", 409, "no_pending_verification"},
		{"verify without code", "POST", r5Verify, auth, `{"phone_number":"+33612345678"}`, 400, "invalid_request"},
		{"verify with nothing open", "POST", r5Verify, auth, `{"phone_number":"+33612345678","verification_code":"123456"}`, 409, "no_pending_verification"},
		{"userinfo without token", "GET", r5User + "?fields=phone_number", "", "", 401, "unauthorized"},
		{"userinfo with a bad token", "GET", r5User, "Bearer x.y.z", "", 401, "unauthorized"},
		{"userinfo with POST", "POST", r5User, auth, "{}", 405, "method_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := h.call(c.method, c.path, c.auth, c.body)
			wantReachFiveError(t, rec, c.status, c.code)
			if c.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="phone"`) {
				t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}

	// A wrong code, a code for another number, the cooldown.
	fr := compatNumber()
	decoded(t, h.call("POST", r5Update, auth, `{"phone_number":"`+fr+`"}`), 200)
	code := h.sink.last(t, u).Code
	wrong := code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
	body := wantReachFiveError(t, h.call("POST", r5Verify, auth, `{"phone_number":"`+fr+`","verification_code":"`+wrong+`"}`), 400, "invalid_code")
	if body["attempts_left"] != float64(4) {
		t.Fatalf("attempts_left %v", body)
	}
	wantReachFiveError(t, h.call("POST", r5Verify, auth, `{"phone_number":"+14155552671","verification_code":"`+code+`"}`), 409, "no_pending_verification")
	rec := h.call("POST", r5Send, auth, "")
	wantReachFiveError(t, rec, 429, "rate_limited")
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	decoded(t, h.call("POST", r5Verify, auth, `{"phone_number":"`+fr+`","verification_code":"`+code+`"}`), 200)
}

// Other /identity/v1/ paths, and these paths without `compat reachfive`,
// go to the next handler untouched.
func TestReachFivePassThrough(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	if rec := h.call("POST", "/identity/v1/update-profile", "Bearer "+h.tok("x"), "{}"); rec.Code != 299 {
		t.Fatalf("update-profile: %d %s", rec.Code, rec.Body)
	}
	plain := newCompatHandler(t, compatConfig(`,"compat":["descope"]`))
	if rec := plain.call("GET", r5Config+"?client_id=abc", "", ""); rec.Code != 299 || plain.nexted != 1 {
		t.Fatalf("without compat: %d %s", rec.Code, rec.Body)
	}
}

// The message key is our code in ReachFive's "error.lowerCamel" form; the
// error ID is fresh on every answer.
func TestReachFiveErrorFields(t *testing.T) {
	for code, want := range map[string]string{"invalid_code": "error.invalidCode", "rate_limited": "error.rateLimited",
		"unauthorized": "error.unauthorized", "phone_number_in_use": "error.phoneNumberInUse"} {
		if got := reachfiveMessageKey(code); got != want {
			t.Errorf("%s: %q, want %q", code, got, want)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		_, body := reachfive{}.errorBody(errNotFound())
		id := body.(map[string]any)["error_id"].(string)
		if !r5ErrorID.MatchString(id) || seen[id] {
			t.Fatalf("error_id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// userinfo (getUser) reads the user afresh: sub always, the phone fields
// that fields names (all without fields), none without a number.
func TestReachFiveUserinfo(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u, fr := compatUser(t, "u"), compatNumber()
	auth := "Bearer " + h.tok(u)
	if body := decoded(t, h.call("GET", r5User+"?fields=phone_number,phone_number_verified", auth, ""), 200); len(body) != 1 || body["sub"] != u {
		t.Fatalf("userinfo without a number: %v", body)
	}
	decoded(t, h.call("POST", r5Update, auth, `{"phone_number":"`+fr+`"}`, r5JSON...), 200)
	body := decoded(t, h.call("GET", r5User+"?fields=phone_number,phone_number_verified", auth, ""), 200)
	if len(body) != 3 || body["sub"] != u || body["phone_number"] != fr || body["phone_number_verified"] != false {
		t.Fatalf("userinfo before verify: %v", body)
	}
	code := h.sink.last(t, u).Code
	decoded(t, h.call("POST", r5Verify, auth, `{"verification_code":"`+code+`"}`, r5JSON...), 200)
	for _, c := range []struct {
		query string
		want  map[string]any
	}{
		{"?fields=phone_number,phone_number_verified", map[string]any{"sub": u, "phone_number": fr, "phone_number_verified": true}},
		{"", map[string]any{"sub": u, "phone_number": fr, "phone_number_verified": true}},
		{"?fields=phone_number_verified", map[string]any{"sub": u, "phone_number_verified": true}},
		{"?fields=phoneNumber,%20email", map[string]any{"sub": u, "phone_number": fr}},
		{"?fields=email", map[string]any{"sub": u}},
	} {
		body := decoded(t, h.call("GET", r5User+c.query, auth, ""), 200)
		if fmt.Sprint(body) != fmt.Sprint(c.want) {
			t.Errorf("userinfo%s: %v, want %v", c.query, body, c.want)
		}
	}
	// Fresh: a change through the store shows at once.
	if err := h.p.users.Set(context.Background(), store.User{ID: u, PhoneNumber: "+14155552671"}); err != nil {
		t.Fatal(err)
	}
	body = decoded(t, h.call("GET", r5User+"?fields=phone_number,phone_number_verified", auth, ""), 200)
	if body["phone_number"] != "+14155552671" || body["phone_number_verified"] != false {
		t.Fatalf("userinfo after a store change: %v", body)
	}
	decoded(t, h.call("HEAD", r5User, auth, ""), 200)
}
