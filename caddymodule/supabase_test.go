package caddymodule

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

const supabaseAnon = "anon-key-123"

// supabaseConfig serves compat supabase with anon_key, and extra.
func supabaseConfig(extra string) string {
	return `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},"sms":[{"provider":"log"}],
	"compat":["supabase"],"compat_options":{"supabase":{"anon_key":"` + supabaseAnon + `"}}` + extra + `}`
}

// supabase-js's headers: the anon key, and its Authorization on the
// token-less calls.
var (
	sbKey  = []string{"apikey", supabaseAnon, "Content-Type", "application/json;charset=UTF-8", "X-Supabase-Api-Version", "2024-01-01"}
	sbAnon = "Bearer " + supabaseAnon
)

// wantGoTrueError checks an error in GoTrue's shape and returns its body.
func wantGoTrueError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	body := decoded(t, rec, status)
	if body["code"] != float64(status) || body["error_code"] != code || body["msg"] == "" || body["msg"] == nil {
		t.Fatalf("want %d %s in GoTrue's shape, got %s", status, code, rec.Body)
	}
	if _, ok := body["attempts_left"]; ok {
		t.Fatalf("attempts_left tells a wrong code from nothing to verify: %s", rec.Body)
	}
	return body
}

func sbUser(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	for _, k := range []string{"id", "aud", "role", "phone", "phone_confirmed_at", "new_phone", "phone_change_sent_at",
		"app_metadata", "user_metadata", "identities"} {
		if _, ok := body[k]; !ok {
			t.Fatalf("user without %q: %v", k, body)
		}
	}
	return body
}

// The whole phone change as auth-js sends it: getUser, updateUser({phone})
// (a first number, then a pending change), resend and verifyOtp by number
// with the anon key as bearer, and the extra fields auth-js adds.
func TestSupabaseUpdateVerifyResend(t *testing.T) {
	h := newCompatHandler(t, supabaseConfig(`,"otp":{"resend_after":0}`))
	u, first, second := compatUser(t, "u"), compatNumber(), compatNumber()
	auth := "Bearer " + h.tok(u)
	body := sbUser(t, decoded(t, h.call("GET", supabaseUser, auth, "", sbKey...), 200))
	if body["id"] != u || body["aud"] != "authenticated" || body["role"] != "authenticated" || body["phone"] != "" ||
		body["phone_confirmed_at"] != nil || body["new_phone"] != nil {
		t.Fatalf("getUser %v", body)
	}

	// A first number, given without its + as GoTrue stores it.
	body = sbUser(t, decoded(t, h.call("PUT", supabaseUser, auth,
		`{"phone":"`+first[1:]+`","code_challenge":null,"code_challenge_method":null}`, sbKey...), 200))
	if body["phone"] != first[1:] || body["phone_confirmed_at"] != nil {
		t.Fatalf("updateUser %v", body)
	}
	msg := h.sink.last(t, u)
	body = decoded(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+first+`","token":"`+msg.Code+
		`","gotrue_meta_security":{"captcha_token":null},"options":{}}`, sbKey...), 200)
	if user, _ := body["user"].(map[string]any); user["id"] != u || user["phone"] != first[1:] ||
		user["phone_confirmed_at"] != supabaseConfirmedAt || body["access_token"] != nil {
		t.Fatalf("verifyOtp %v", body)
	}

	// A change of a verified number is pending until verified.
	body = sbUser(t, decoded(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+second+`"}`, sbKey...), 200))
	if body["phone"] != first[1:] || body["new_phone"] != second[1:] || body["phone_change_sent_at"] == nil ||
		body["phone_confirmed_at"] != supabaseConfirmedAt {
		t.Fatalf("updateUser (pending) %v", body)
	}
	body = sbUser(t, decoded(t, h.call("GET", supabaseUser, auth, "", sbKey...), 200))
	if body["new_phone"] != second[1:] || body["phone_change_sent_at"] == nil {
		t.Fatalf("getUser (pending) %v", body)
	}
	old := h.sink.last(t, u)
	body = decoded(t, h.call("POST", supabaseResend, sbAnon, `{"type":"phone_change","phone":"`+second[1:]+
		`","gotrue_meta_security":{}}`, sbKey...), 200)
	if id, _ := body["message_id"].(string); len(id) != 32 {
		t.Fatalf("resend %v", body)
	}
	msg = h.sink.last(t, u)
	if msg.Purpose != "resend" || msg.To != second || msg.Code == old.Code && msg.ID == old.ID {
		t.Fatalf("resend sms %+v", msg)
	}
	if old.Code != msg.Code {
		wantGoTrueError(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+second+`","token":"`+old.Code+`"}`, sbKey...), 403, "otp_expired")
	}
	decoded(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+second+`","token":"`+msg.Code+`"}`, sbKey...), 200)
	body = sbUser(t, decoded(t, h.call("GET", supabaseUser, auth, "", sbKey...), 200))
	if body["phone"] != second[1:] || body["new_phone"] != nil || body["phone_confirmed_at"] != supabaseConfirmedAt {
		t.Fatalf("getUser after the change %v", body)
	}
	// updateUser without a phone changes nothing.
	body = sbUser(t, decoded(t, h.call("PUT", supabaseUser, auth, `{"code_challenge":null}`, sbKey...), 200))
	if body["phone"] != second[1:] {
		t.Fatalf("updateUser({}) %v", body)
	}
}

// GoTrue's errors, with its codes and statuses (SPEC §6).
func TestSupabaseErrors(t *testing.T) {
	h := newCompatHandler(t, supabaseConfig(`,"limits":{"verify_per_ip":{"count":50,"window":3600000000000}}`))
	u, other, fr := compatUser(t, "u"), compatUser(t, "other"), compatNumber()
	auth := "Bearer " + h.tok(u)
	verify := func(phone, token string) *httptest.ResponseRecorder {
		return h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+phone+`","token":"`+token+`"}`, sbKey...)
	}

	wantGoTrueError(t, h.call("GET", supabaseUser, "", "", sbKey...), 401, "no_authorization")
	rec := h.call("GET", supabaseUser, "Bearer a.b.c", "", sbKey...)
	wantGoTrueError(t, rec, 401, "bad_jwt")
	if !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
	}
	rec = h.call("DELETE", supabaseUser, auth, "", sbKey...)
	wantGoTrueError(t, rec, 405, "method_not_allowed")
	if rec.Header().Get("Allow") != "GET, HEAD, PUT" {
		t.Fatalf("Allow %q", rec.Header().Get("Allow"))
	}
	wantGoTrueError(t, h.call("GET", supabaseVerify, "", "", sbKey...), 405, "method_not_allowed")
	// Other GoTrue paths are the app's.
	if rec := h.call("POST", "/auth/v1/token?grant_type=refresh_token", "", "{}", sbKey...); rec.Code != 299 {
		t.Fatalf("/auth/v1/token: %d", rec.Code)
	}

	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"phone":"12"}`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"phone":5}`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"email":"a@b.c"}`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+fr+`","channel":"whatsapp"}`, sbKey...), 422, "validation_failed")
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `[1]`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+strings.Repeat("1", 17<<10)+`"}`, sbKey...), 413, "validation_failed")
	wantGoTrueError(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"sms","phone":"`+fr+`","token":"123456"}`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+fr+`"}`, sbKey...), 400, "validation_failed")
	wantGoTrueError(t, h.call("POST", supabaseResend, sbAnon, `{"type":"phone_change","email":"a@b.c"}`, sbKey...), 400, "validation_failed")

	// Nothing to verify and a wrong code read alike.
	nothing := wantGoTrueError(t, verify(fr, "123456"), 403, "otp_expired")
	decoded(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+fr+`"}`, sbKey...), 200)
	code := h.sink.last(t, u).Code
	wrong := wantGoTrueError(t, verify(fr, wrongCode(code)), 403, "otp_expired")
	if nothing["msg"] != wrong["msg"] {
		t.Fatalf("a wrong code (%v) and nothing to verify (%v) read differently", wrong, nothing)
	}
	// The same number again within resend_after.
	rec = h.call("PUT", supabaseUser, auth, `{"phone":"`+fr+`"}`, sbKey...)
	body := wantGoTrueError(t, rec, 429, "over_sms_send_rate_limit")
	if rec.Header().Get("Retry-After") == "" || body["retry_after"] == nil {
		t.Fatalf("no Retry-After: %v %s", rec.Header(), rec.Body)
	}
	// Resend within resend_after, by number.
	wantGoTrueError(t, h.call("POST", supabaseResend, sbAnon, `{"type":"phone_change","phone":"`+fr+`"}`, sbKey...), 429, "over_sms_send_rate_limit")
	// A number nobody waits on: {} as GoTrue answers an unknown one, no SMS.
	sent := h.sink.count()
	if body := decoded(t, h.call("POST", supabaseResend, sbAnon, `{"type":"phone_change","phone":"`+compatNumber()+`"}`, sbKey...), 200); len(body) != 0 {
		t.Fatalf("resend for nobody: %v", body)
	}
	if h.sink.count() != sent {
		t.Fatal("an SMS went out for nobody")
	}
	decoded(t, verify(fr, code), 200)
	// The number is taken now: another user proves possession, 422.
	otherAuth := "Bearer " + h.tok(other)
	decoded(t, h.call("PUT", supabaseUser, otherAuth, `{"phone":"`+fr+`"}`, sbKey...), 200)
	wantGoTrueError(t, verify(fr, h.sink.last(t, other).Code), 422, "phone_exists")
}

// Token-less wrong codes lock only the token-less budget (429
// over_request_rate_limit once spent); the owner's verify with a token
// still works. verify_per_ip stops a guesser with over_request_rate_limit.
func TestSupabaseVerifyGuards(t *testing.T) {
	h := newCompatHandler(t, supabaseConfig(`,"otp":{"max_attempts":2},"limits":{"verify_per_ip":{"count":4,"window":3600000000000}}`))
	u, fr := compatUser(t, "u"), compatNumber()
	auth := "Bearer " + h.tok(u)
	decoded(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+fr+`"}`, sbKey...), 200)
	code := h.sink.last(t, u).Code
	verify := func(token string) *httptest.ResponseRecorder {
		return h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+fr+`","token":"`+token+`"}`, sbKey...)
	}
	wantGoTrueError(t, verify(wrongCode(code)), 403, "otp_expired")
	wantGoTrueError(t, verify(wrongCode(code)), 403, "otp_expired")
	wantGoTrueError(t, verify(code), 429, "over_request_rate_limit") // the token-less budget is spent
	// The owner, with a token, on our own route.
	if rec := h.call("POST", "/phone/verify", auth, `{"code":"`+code+`"}`); rec.Code != 200 {
		t.Fatalf("owner's verify: %d %s", rec.Code, rec.Body)
	}
	// A miss still costs the caller: the 4th failure from this address,
	// after which verify_per_ip refuses it.
	wantGoTrueError(t, verify(code), 403, "otp_expired")
	rec := verify(code)
	wantGoTrueError(t, rec, 429, "over_request_rate_limit")
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("verify_per_ip without Retry-After")
	}
}

// anon_key, when set, must be the apikey of every call; the Bearer of
// the token-less calls is not looked at.
func TestSupabaseAnonKey(t *testing.T) {
	h := newCompatHandler(t, supabaseConfig(""))
	u := compatUser(t, "u")
	for _, hdr := range [][]string{nil, {"apikey", "other"}, {"apikey", supabaseAnon + "x"}} {
		rec := h.call("GET", supabaseUser, "Bearer "+h.tok(u), "", hdr...)
		if body := wantGoTrueError(t, rec, 401, "no_authorization"); body["msg"] != "Invalid API key." {
			t.Fatalf("apikey %v: %v", hdr, body)
		}
		wantGoTrueError(t, h.call("POST", supabaseResend, "", `{"type":"phone_change","phone":"+33612345678"}`, hdr...), 401, "no_authorization")
	}
	decoded(t, h.call("GET", supabaseUser, "Bearer "+h.tok(u), "", sbKey...), 200)
	decoded(t, h.call("POST", supabaseResend, "Bearer whatever", `{"type":"phone_change","phone":"+33612345678"}`, sbKey...), 200)

	// Without anon_key any apikey goes.
	h = newCompatHandler(t, strings.Replace(supabaseConfig(""), `"compat_options":{"supabase":{"anon_key":"`+supabaseAnon+`"}}`, `"compat_options":{}`, 1))
	decoded(t, h.call("GET", supabaseUser, "Bearer "+h.tok(u), ""), 200)
}

// anon_key from the Caddyfile, with a placeholder; one that expands to
// nothing is refused at Provision.
func TestSupabaseOptions(t *testing.T) {
	p, err := parsePhone(t, "phone {\n compat supabase {\n  anon_key {env.SB_TEST_ANON}\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.CompatOptions["supabase"]); got != `{"anon_key":"{env.SB_TEST_ANON}"}` {
		t.Fatalf("compat_options %s", got)
	}
	t.Setenv("SB_TEST_ANON", "from-env")
	h := provisionPhone(t, strings.Replace(supabaseConfig(""), supabaseAnon, "{env.SB_TEST_ANON}", 1))
	if d := h.vendors[0].dialect.(supabase); string(d.anonKey) != "from-env" || !h.indexNumbers {
		t.Fatalf("dialect %+v", d)
	}
	t.Setenv("SB_TEST_ANON", "")
	var q Phone
	if err := json.Unmarshal([]byte(strings.Replace(supabaseConfig(""), supabaseAnon, "{env.SB_TEST_ANON}", 1)), &q); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := q.Provision(ctx); err == nil || !strings.Contains(err.Error(), "anon_key is empty") {
		t.Fatalf("Provision: %v", err)
	}
}

// A browser's updateUser is a PUT: the preflight allows it.
func TestSupabaseCORSPreflight(t *testing.T) {
	h := newCompatHandler(t, strings.TrimSuffix(supabaseConfig(""), "}")+`,"cors":["https://app.example.com"]}`)
	for _, path := range []string{supabaseUser, supabaseVerify, supabaseResend} {
		rec := h.preflight(path, "https://app.example.com", "PUT", "apikey,authorization,content-type,x-client-info,x-supabase-api-version")
		if rec.Code != 204 || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "PUT") {
			t.Fatalf("%s: preflight %d %v", path, rec.Code, rec.Header())
		}
	}
}

// wrongCode is code with its last digit changed.
func wrongCode(code string) string {
	return code[:len(code)-1] + string('0'+(code[len(code)-1]-'0'+1)%10)
}

// updateUser({phone, channel: "whatsapp"}) sends the code by WhatsApp
// where `channels` enables it, and verifyOtp takes it as any other.
func TestSupabaseChannel(t *testing.T) {
	h := newCompatHandler(t, supabaseConfig(`,"channels":["sms","whatsapp"]`))
	u, number := compatUser(t, "wa"), compatNumber()
	auth := "Bearer " + h.tok(u)
	decoded(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+number+`","channel":"whatsapp"}`, sbKey...), 200)
	msg := h.sink.last(t, u)
	if msg.Channel != "whatsapp" {
		t.Fatalf("the code went by %q, want whatsapp", msg.Channel)
	}
	decoded(t, h.call("POST", supabaseVerify, sbAnon, `{"type":"phone_change","phone":"`+number+`","token":"`+msg.Code+`"}`, sbKey...), 200)
	wantGoTrueError(t, h.call("PUT", supabaseUser, auth, `{"phone":"`+compatNumber()+`","channel":"voice"}`, sbKey...), 422, "validation_failed")
}
