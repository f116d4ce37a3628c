package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Supabase's own SDK (@supabase/supabase-js 2.119, auth-js inside),
// unmodified, with createClient(<this Caddy>, anonKey) (SPEC §6).

const supabaseAnonKey = "sb-anon-e2e-0123456789"

// supabaseSite serves `compat supabase` with the anon key, on s's store
// and cache.
func supabaseSite(s site) site {
	s.phone = "compat supabase {\n\t\t\tanon_key " + supabaseAnonKey + "\n\t\t}\n" + s.phone
	return s
}

// supabaseJS runs supabase.mjs <action> against the site with its anon key.
func supabaseJS(t *testing.T, node, action string, params map[string]any) sdkResult {
	t.Helper()
	p := map[string]any{"url": base, "anonKey": supabaseAnonKey}
	for k, v := range params {
		p[k] = v
	}
	return runSDK(t, node, "supabase.mjs", action, p)
}

// sbUserOf is the user of a result's data.
func sbUserOf(t *testing.T, r sdkResult) map[string]any {
	t.Helper()
	u, _ := r.Data["user"].(map[string]any)
	if !r.OK || u == nil {
		t.Fatalf("no user: %s", r.raw)
	}
	return u
}

// wantAuthAPIError checks the SDK's error: an AuthApiError with GoTrue's
// status and code, as app code reads them.
func wantAuthAPIError(t *testing.T, r sdkResult, status int, code string) {
	t.Helper()
	if r.OK || r.Error["name"] != "AuthApiError" || r.Error["status"] != float64(status) || r.Error["code"] != code ||
		r.Error["message"] == "" {
		t.Fatalf("want AuthApiError %d %s: %s", status, code, r.raw)
	}
}

// sbNumbers are two French mobiles no other test of this run verifies.
func sbNumbers() (string, string) {
	n := sdkNumber()
	second := n[:len(n)-1] + string('0'+(n[len(n)-1]-'0'+5)%10)
	return n, second
}

// runSupabaseSDK drives every supabase-js call the README lists through
// the site: setSession with the legacy JWT, getUser, updateUser({phone})
// (a first number, then a pending change), verifyOtp and resend by
// number, a wrong code and a rate limit.
func runSupabaseSDK(t *testing.T, s site) {
	node := needSDK(t, "@supabase/supabase-js", "@supabase/auth-js", "ws")
	// No cooldown, so the resend goes at once; two codes per number.
	s.phone = "otp {\n\t\t\tresend_after 0\n\t\t}\n\t\tlimits {\n\t\t\tper_number 2 1h\n\t\t}\n" + s.phone
	e := newEnv(t, supabaseSite(s))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	first, second := sbNumbers()

	r := supabaseJS(t, node, "session", map[string]any{"token": tok})
	if user := sbUserOf(t, r); user["id"] != u || user["aud"] != "authenticated" || user["phone"] != "" {
		t.Fatalf("setSession: %s", r.raw)
	}
	if session, _ := r.Data["session"].(map[string]any); session == nil || session["expires_at"] == nil {
		t.Fatalf("setSession kept no session: %s", r.raw)
	}
	if user := sbUserOf(t, supabaseJS(t, node, "user", map[string]any{"token": tok})); user["id"] != u {
		t.Fatalf("getUser: %v", user)
	}

	// A first number: stored at once, unverified, and a code goes to it.
	r = supabaseJS(t, node, "update", map[string]any{"token": tok, "phone": first})
	if user := sbUserOf(t, r); user["phone"] != first[1:] || user["phone_confirmed_at"] != nil {
		t.Fatalf("updateUser: %s", r.raw)
	}
	msg := e.sink.last(u)
	if msg.To != first || msg.Purpose != "update" {
		t.Fatalf("sms: %+v", msg)
	}
	r = supabaseJS(t, node, "verify", map[string]any{"phone": first[1:], "code": msg.Code})
	if user := sbUserOf(t, r); user["id"] != u || user["phone"] != first[1:] || user["phone_confirmed_at"] == nil ||
		r.Data["session"] != nil {
		t.Fatalf("verifyOtp: %s", r.raw)
	}

	// A change of the verified number: pending until its code is typed.
	r = supabaseJS(t, node, "update", map[string]any{"token": tok, "phone": second})
	if user := sbUserOf(t, r); user["phone"] != first[1:] || user["new_phone"] != second[1:] || user["phone_change_sent_at"] == nil {
		t.Fatalf("updateUser (pending): %s", r.raw)
	}
	sent := e.sink.last(u)
	r = supabaseJS(t, node, "resend", map[string]any{"phone": second})
	if id, _ := r.Data["messageId"].(string); !r.OK || len(id) != 32 {
		t.Fatalf("resend: %s", r.raw)
	}
	resent := e.sink.last(u)
	if resent.Purpose != "resend" || resent.To != second || resent.ID == sent.ID {
		t.Fatalf("resent sms: %+v", resent)
	}
	wrong := resent.Code[:len(resent.Code)-1] + string('0'+(resent.Code[len(resent.Code)-1]-'0'+1)%10)
	wantAuthAPIError(t, supabaseJS(t, node, "verify", map[string]any{"phone": second, "code": wrong}), 403, "otp_expired")
	r = supabaseJS(t, node, "verify", map[string]any{"phone": second, "code": resent.Code})
	if user := sbUserOf(t, r); user["phone"] != second[1:] || user["new_phone"] != nil {
		t.Fatalf("verifyOtp (change): %s", r.raw)
	}
	user := sbUserOf(t, supabaseJS(t, node, "user", map[string]any{"token": tok}))
	if user["phone"] != second[1:] || user["phone_confirmed_at"] == nil || user["new_phone"] != nil {
		t.Fatalf("getUser after the change: %v", user)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != second || st.body["verified"] != true {
		t.Fatalf("GET /phone after the SDK's verify: %s", st.raw)
	}

	// A third code for one number: GoTrue's SMS rate limit, on the
	// update as on the resend.
	if r = supabaseJS(t, node, "update", map[string]any{"token": tok, "phone": first}); !r.OK {
		t.Fatalf("updateUser back: %s", r.raw)
	}
	wantAuthAPIError(t, supabaseJS(t, node, "update", map[string]any{"token": tok, "phone": first}), 429, "over_sms_send_rate_limit")
	wantAuthAPIError(t, supabaseJS(t, node, "resend", map[string]any{"phone": first}), 429, "over_sms_send_rate_limit")
}

func TestSDKSupabaseOnSQLite(t *testing.T) {
	runSupabaseSDK(t, site{})
}

func TestSDKSupabaseOnPostgresRedis(t *testing.T) {
	dsn, url := postgresDSN(t), redisURL(t)
	runSupabaseSDK(t, site{
		store: fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t}", dsn, newSchema(t, dsn)),
		cache: fmt.Sprintf("cache redis %s {\n\t\t\tkey_prefix %s\n\t\t}", url, newRedisPrefix(t, url)),
	})
}

// The SDK's errors: a token the site does not trust (setSession fails with
// bad_jwt), a wrong anon key, and a number no one waits on (verifyOtp's
// otp_expired, resend's empty success, as GoTrue answers).
func TestSDKSupabaseErrors(t *testing.T) {
	node := needSDK(t, "@supabase/supabase-js", "@supabase/auth-js", "ws")
	newEnv(t, supabaseSite(site{}))
	u := uniqueUser(t, "u")
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": u, "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("not-the-site-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	wantAuthAPIError(t, supabaseJS(t, node, "session", map[string]any{"token": forged}), 401, "bad_jwt")
	r := runSDK(t, node, "supabase.mjs", "user", map[string]any{"url": base, "anonKey": "wrong", "token": token(t, u)})
	wantAuthAPIError(t, r, 401, "no_authorization")
	nobody, _ := sbNumbers()
	wantAuthAPIError(t, supabaseJS(t, node, "verify", map[string]any{"phone": nobody, "code": "123456"}), 403, "otp_expired")
	if r := supabaseJS(t, node, "resend", map[string]any{"phone": nobody}); !r.OK || r.Data["messageId"] != nil {
		t.Fatalf("resend for nobody: %s", r.raw)
	}
	wantAuthAPIError(t, supabaseJS(t, node, "update", map[string]any{"token": token(t, u), "phone": "12"}), 400, "validation_failed")
}
