package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const kiiApp = "kiiapp1"

// kiiConfig serves `compat kii { app_id kiiapp1 }`; extra is spliced into
// the JSON.
func kiiConfig(extra string) string {
	return `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},"sms":[{"provider":"log"}],
	"compat":["kii"],"compat_options":{"kii":{"app_id":"` + kiiApp + `"}}` + extra + `}`
}

// kiiHeaders are what kii-cloud-sdk sends with every call (x-kii-appid,
// x-kii-appkey, x-kii-sdk) and the content type of a phone change.
func kiiHeaders(contentType string) []string {
	return []string{"X-Kii-Appid", kiiApp, "X-Kii-Appkey", "key1", "X-Kii-Sdk", "sn=js;sv=2.4.19",
		"Content-Type", contentType}
}

// kiiURL is the SDK's URL for a tail after /api/apps/kiiapp1/users/, with
// its disable_cache query.
func kiiURL(tail string) string {
	return "/api/apps/" + kiiApp + "/users/" + tail + "?disable_cache=1765000000000"
}

// kiiCall sends a call as the SDK does: its headers, Bearer token.
func (h *compatHandler) kiiCall(method, tail, tok, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	ct := "application/json"
	switch {
	case strings.HasSuffix(tail, "/verify"):
		ct = "application/vnd.kii.AddressVerificationRequest+json"
	case strings.HasSuffix(tail, "/phone-number"):
		ct = "application/vnd.kii.PhoneNumberModificationRequest+json"
	}
	auth := ""
	if tok != "" {
		auth = "Bearer " + tok
	}
	return h.call(method, kiiURL(tail), auth, body, kiiHeaders(ct)...)
}

// wantKiiError checks a Kii error answer: the status, errorCode and a
// message, and nothing of ours beside the fields the error carries.
func wantKiiError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	body := decoded(t, rec, status)
	if msg, _ := body["message"].(string); body["errorCode"] != code || msg == "" || body["error"] != nil {
		t.Fatalf("want %d %s in Kii's shape, got %s", status, code, rec.Body)
	}
	return body
}

// wantNoContent checks a 204 with no body.
func wantNoContent(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("status %d, want 204; body %s", rec.Code, rec.Body)
	}
}

// The SDK's calls in order: authenticateWithToken (users/me), changePhone
// (PUT, 204), refresh (users/{id}), verifyPhoneNumber (users/me/…/verify);
// then a change of a verified number stays pending until verified, and
// resendPhoneNumberVerification sends a new code.
func TestKiiChangeVerifyRefresh(t *testing.T) {
	h := newCompatHandler(t, kiiConfig(`,"otp":{"resend_after":0}`))
	u, first, second := compatUser(t, "u"), compatNumber(), compatNumber()
	tok := h.tok(u)

	body := decoded(t, h.kiiCall("GET", "me", tok, ""), 200)
	if len(body) != 1 || body["userID"] != u {
		t.Fatalf("users/me without a number: %v", body)
	}
	wantNoContent(t, h.kiiCall("PUT", u+"/phone-number", tok, `{"phoneNumber":"`+first+`"}`))
	if m := h.sink.last(t, u); m.To != first || m.Purpose != "update" {
		t.Fatalf("sms %+v", m)
	}
	body = decoded(t, h.kiiCall("GET", u, tok, ""), 200)
	if body["phoneNumber"] != first || body["phoneNumberVerified"] != false || body["_phoneNumberPending"] != nil {
		t.Fatalf("refresh after the change: %v", body)
	}
	body = decoded(t, h.kiiCall("POST", "me/phone-number/verify", tok, `{"verificationCode":"`+h.sink.last(t, u).Code+`"}`), 200)
	if body["userID"] != u || body["phoneNumber"] != first || body["phoneNumberVerified"] != true {
		t.Fatalf("verify: %v", body)
	}

	// A verified number: the new one waits, the old one stays.
	wantNoContent(t, h.kiiCall("PUT", u+"/phone-number", tok, `{"phoneNumber":"`+second+`"}`))
	body = decoded(t, h.kiiCall("GET", u, tok, ""), 200)
	if body["phoneNumber"] != first || body["phoneNumberVerified"] != true || body["_phoneNumberPending"] != second {
		t.Fatalf("refresh while pending: %v", body)
	}
	old := h.sink.last(t, u).Code
	wantNoContent(t, h.kiiCall("POST", u+"/phone-number/resend-verification", tok, ""))
	resent := h.sink.last(t, u)
	if resent.Purpose != "resend" || resent.To != second {
		t.Fatalf("resend sms %+v", resent)
	}
	if resent.Code != old {
		wantKiiError(t, h.kiiCall("POST", u+"/phone-number/verify", tok, `{"verificationCode":"`+old+`"}`), 400,
			"INVALID_VERIFICATION_CODE")
	}
	decoded(t, h.kiiCall("POST", u+"/phone-number/verify", tok, `{"verificationCode":"`+resent.Code+`"}`), 200)
	body = decoded(t, h.kiiCall("GET", "me", tok, ""), 200)
	if body["phoneNumber"] != second || body["phoneNumberVerified"] != true || body["_phoneNumberPending"] != nil {
		t.Fatalf("refresh after verify: %v", body)
	}
}

// Every refusal in Kii's shape: the application (path and x-kii-appid),
// another user's ID, a bad number, nothing pending, a body too large, no
// token, a wrong method; no SMS goes out for any of them.
func TestKiiErrors(t *testing.T) {
	h := newCompatHandler(t, kiiConfig(""))
	u, other := compatUser(t, "u"), compatUser(t, "other")
	tok := h.tok(u)
	phone := func(n string) string { return `{"phoneNumber":"` + n + `"}` }
	withHeaders := func(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
		return h.call(method, path, "Bearer "+tok, body, hdr...)
	}
	hdr := kiiHeaders("application/json")
	for _, c := range []struct {
		name   string
		rec    func() *httptest.ResponseRecorder
		status int
		code   string
	}{
		{"another app in the path", func() *httptest.ResponseRecorder {
			return withHeaders("GET", "/api/apps/otherapp/users/me", "", hdr...)
		}, 404, "APP_NOT_FOUND"},
		{"another app in x-kii-appid", func() *httptest.ResponseRecorder {
			return withHeaders("GET", kiiURL("me"), "", "X-Kii-Appid", "otherapp")
		}, 404, "APP_NOT_FOUND"},
		{"no x-kii-appid", func() *httptest.ResponseRecorder { return withHeaders("GET", kiiURL("me"), "") }, 404, "APP_NOT_FOUND"},
		{"no token", func() *httptest.ResponseRecorder { return h.kiiCall("GET", "me", "", "") }, 401, "UNAUTHORIZED"},
		{"a bad token", func() *httptest.ResponseRecorder { return h.kiiCall("GET", "me", "a.b.c", "") }, 401, "UNAUTHORIZED"},
		{"another user's profile", func() *httptest.ResponseRecorder { return h.kiiCall("GET", other, tok, "") }, 404, "USER_NOT_FOUND"},
		{"another user's number", func() *httptest.ResponseRecorder {
			return h.kiiCall("PUT", other+"/phone-number", tok, phone(compatNumber()))
		}, 404, "USER_NOT_FOUND"},
		{"another user's resend", func() *httptest.ResponseRecorder {
			return h.kiiCall("POST", other+"/phone-number/resend-verification", tok, "")
		}, 404, "USER_NOT_FOUND"},
		{"another user's verify", func() *httptest.ResponseRecorder {
			return h.kiiCall("POST", other+"/phone-number/verify", tok, `{"verificationCode":"123456"}`)
		}, 404, "USER_NOT_FOUND"},
		{"a bad number", func() *httptest.ResponseRecorder { return h.kiiCall("PUT", u+"/phone-number", tok, phone("+1")) }, 400, "INVALID_INPUT_DATA"},
		{"no number", func() *httptest.ResponseRecorder { return h.kiiCall("PUT", u+"/phone-number", tok, `{}`) }, 400, "INVALID_INPUT_DATA"},
		{"an unknown field", func() *httptest.ResponseRecorder {
			return h.kiiCall("PUT", u+"/phone-number", tok, `{"phoneNumber":"+33612345678","x":1}`)
		}, 400, "INVALID_INPUT_DATA"},
		{"a body too large", func() *httptest.ResponseRecorder {
			return h.kiiCall("PUT", u+"/phone-number", tok, phone(strings.Repeat("1", 17<<10)))
		}, 413, "PAYLOAD_TOO_LARGE"},
		{"no code", func() *httptest.ResponseRecorder { return h.kiiCall("POST", "me/phone-number/verify", tok, `{}`) }, 400, "INVALID_INPUT_DATA"},
		{"verify with nothing pending", func() *httptest.ResponseRecorder {
			return h.kiiCall("POST", "me/phone-number/verify", tok, `{"verificationCode":"123456"}`)
		}, 409, "INVALID_ACCOUNT_STATUS"},
		{"resend with nothing pending", func() *httptest.ResponseRecorder {
			return h.kiiCall("POST", u+"/phone-number/resend-verification", tok, "")
		}, 409, "INVALID_ACCOUNT_STATUS"},
		{"a wrong method", func() *httptest.ResponseRecorder {
			return h.kiiCall("POST", u+"/phone-number", tok, phone("+33612345678"))
		}, 405, "METHOD_NOT_ALLOWED"},
	} {
		t.Run(c.name, func(t *testing.T) { wantKiiError(t, c.rec(), c.status, c.code) })
	}
	if h.sink.count() != 0 {
		t.Fatal("an SMS went out")
	}
	rec := h.kiiCall("DELETE", "me", tok, "")
	wantKiiError(t, rec, 405, "METHOD_NOT_ALLOWED")
	if rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("Allow %q", rec.Header().Get("Allow"))
	}
	rec = h.kiiCall("GET", "me", "", "")
	if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="phone"`) {
		t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
	}
	// Other paths under /api/apps/ are the legacy app's.
	for _, path := range []string{"/api/apps/" + kiiApp + "/users/me/phone-number/other", "/api/apps/" + kiiApp + "/buckets/b",
		"/api/apps/" + kiiApp + "/users/", "/api/apps//users/me", "/api/apps/" + kiiApp + "/users//phone-number"} {
		before := h.nexted
		if rec := h.call("GET", path, "", "", hdr...); rec.Code != 299 || h.nexted != before+1 {
			t.Fatalf("%s: %d %s, want it passed through", path, rec.Code, rec.Body)
		}
	}
}

// A wrong code carries attempts_left; the cooldown keeps 429 and
// Retry-After; a verified number held by another user is Kii's
// PHONE_NUMBER_ALREADY_EXISTS; a percent sign in a message survives the
// SDK's URI-decoding of error bodies.
func TestKiiCodeAndLimitErrors(t *testing.T) {
	h := newCompatHandler(t, kiiConfig(`,"otp":{"max_attempts":2}`))
	u, owner, number := compatUser(t, "u"), compatUser(t, "owner"), compatNumber()
	tok, ownerTok := h.tok(u), h.tok(owner)

	wantNoContent(t, h.kiiCall("PUT", owner+"/phone-number", ownerTok, `{"phoneNumber":"`+number+`"}`))
	decoded(t, h.kiiCall("POST", "me/phone-number/verify", ownerTok, `{"verificationCode":"`+h.sink.last(t, owner).Code+`"}`), 200)

	wantNoContent(t, h.kiiCall("PUT", u+"/phone-number", tok, `{"phoneNumber":"`+number+`"}`))
	code := h.sink.last(t, u).Code
	rec := h.kiiCall("POST", u+"/phone-number/resend-verification", tok, "")
	body := wantKiiError(t, rec, 429, "RATE_LIMITED")
	if rec.Header().Get("Retry-After") == "" || body["retry_after"] == nil {
		t.Fatalf("429 without Retry-After: %q %s", rec.Header().Get("Retry-After"), rec.Body)
	}
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	body = wantKiiError(t, h.kiiCall("POST", "me/phone-number/verify", tok, `{"verificationCode":"`+wrong+`"}`), 400,
		"INVALID_VERIFICATION_CODE")
	if body["attempts_left"] != float64(1) {
		t.Fatalf("attempts_left: %v", body)
	}
	wantKiiError(t, h.kiiCall("POST", "me/phone-number/verify", tok, `{"verificationCode":"`+code+`"}`), 409,
		"PHONE_NUMBER_ALREADY_EXISTS")

	_, raw := kii{}.errorBody(errInvalid("Field 100% wrong.", ""))
	b, err := json.Marshal(raw)
	if err != nil || strings.Contains(string(b), "%") {
		t.Fatalf("error body %s (%v) holds a raw %%", b, err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["message"] != "Field 100% wrong." || back["errorCode"] != "INVALID_INPUT_DATA" {
		t.Fatalf("error body %s: %v", b, err)
	}
}

// `compat kii { app_id … }` in the Caddyfile and in JSON; without an
// app_id, or with one that is not a path segment, Provision refuses.
func TestKiiOptions(t *testing.T) {
	p, err := parsePhone(t, "phone {\n compat kii {\n  app_id my-app\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.CompatOptions["kii"]); got != `{"app_id":"my-app"}` {
		t.Fatalf("compat_options = %s", got)
	}
	if _, err := parsePhone(t, "phone {\n compat kii {\n  app_key x\n }\n}"); err == nil ||
		!strings.Contains(err.Error(), `unknown subdirective "app_key"`) {
		t.Fatalf("app_key: %v", err)
	}
	base := `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},"sms":[{"provider":"log"}],"compat":["kii"]`
	for _, c := range []struct{ json, want string }{
		{``, "compat kii: needs app_id"},
		{`,"compat_options":{"kii":{"app_id":""}}`, "compat kii: needs app_id"},
		{`,"compat_options":{"kii":{"app_id":"a/b"}}`, "compat kii: app_id must be one path segment"},
		{`,"compat_options":{"kii":{"app_id":" a"}}`, "compat kii: app_id must be one path segment"},
	} {
		err := provisionError(t, base+c.json+"}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.json, err, c.want)
		}
	}
}

// kiiPath finds the route by the path's tail; a user ID with a / has none.
func TestKiiPath(t *testing.T) {
	for _, c := range []struct {
		path, app, user, key string
		ok                   bool
	}{
		{"/api/apps/a/users/me", "a", "me", kiiUserRoute, true},
		{"/api/apps/a/users/u1", "a", "u1", kiiUserRoute, true},
		{"/api/apps/a/users/u1/phone-number", "a", "u1", kiiPhoneRoute, true},
		{"/api/apps/a/users/u1/phone-number/resend-verification", "a", "u1", kiiResendRoute, true},
		{"/api/apps/a/users/me/phone-number/verify", "a", "me", kiiVerifyRoute, true},
		{"/api/apps/a/users/org/u1/phone-number", "", "", "", false},
		{"/api/apps/a/users/me/phone-number/other", "", "", "", false},
		{"/api/apps/a/users/", "", "", "", false},
		{"/api/apps/a/users//phone-number", "", "", "", false},
		{"/api/apps/a/users/u1/", "", "", "", false},
		{"/api/apps//users/me", "", "", "", false},
		{"/api/apps/a/things/me", "", "", "", false},
		{"/api/apps/a", "", "", "", false},
		{"/api/other", "", "", "", false},
	} {
		app, user, key, ok := kiiPath(c.path)
		if app != c.app || user != c.user || key != c.key || ok != c.ok {
			t.Errorf("%s: %q %q %q %v", c.path, app, user, key, ok)
		}
	}
}

// A browser on a listed origin may call the Kii routes: the preflight of
// changePhone's PUT with the x-kii-* headers answers 204, and an error
// answer carries the CORS headers too.
func TestKiiCORS(t *testing.T) {
	h := newCompatHandler(t, kiiConfig(`,"cors":["https://app.example.com"]`))
	const headers = "authorization,content-type,x-kii-appid,x-kii-appkey,x-kii-sdk"
	rec := h.preflight(kiiURL("u1/phone-number"), "https://app.example.com", "PUT", headers)
	if rec.Code != 204 || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "PUT") ||
		rec.Header().Get("Access-Control-Allow-Headers") != headers {
		t.Fatalf("preflight %d %v", rec.Code, rec.Header())
	}
	wantCORS(t, rec, "https://app.example.com")
	rec = h.call("GET", kiiURL("me"), "", "", append(kiiHeaders("application/json"), "Origin", "https://app.example.com")...)
	wantKiiError(t, rec, 401, "UNAUTHORIZED")
	wantCORS(t, rec, "https://app.example.com")
}

// changePhone is an update: it needs a sign-in younger than max_auth_age
// (UNAUTHORIZED, as Kii asks the app to sign in again); reading the user
// does not.
func TestKiiMaxAuthAge(t *testing.T) {
	h := newCompatHandler(t, kiiConfig(`,"jwt":{"secret":"`+benchSecret+`","max_auth_age":60000000000}`))
	u := compatUser(t, "u")
	old, err := mintToken(benchSecret, u, "HS256", "", "", time.Hour, time.Now().Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rec := h.kiiCall("PUT", u+"/phone-number", old, `{"phoneNumber":"`+compatNumber()+`"}`)
	wantKiiError(t, rec, 401, "UNAUTHORIZED")
	if rec.Header().Get("WWW-Authenticate") != `Bearer realm="phone", error="invalid_token"` {
		t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
	}
	decoded(t, h.kiiCall("GET", "me", old, ""), 200)
	wantNoContent(t, h.kiiCall("PUT", u+"/phone-number", h.tok(u), `{"phoneNumber":"`+compatNumber()+`"}`))
}
