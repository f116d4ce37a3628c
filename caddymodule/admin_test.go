package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
)

const adminKey = "sk_test_0123456789abcdefABCDEF"

// adminConfig is a handler config with `admin` on the store given as JSON.
func adminConfig(storeJSON, extra string) string {
	return `{"jwt":{"secret":"` + benchSecret + `"},"store":` + storeJSON + `,
		"cache":{"max_size":67108864},"sms":[{"provider":"log"}],
		"admin":{"api_key":"` + adminKey + `"}` + extra + `}`
}

func sqliteAdmin(t *testing.T, extra string) *Phone {
	t.Helper()
	path, _ := json.Marshal(filepath.Join(t.TempDir(), "phone.db"))
	p := provisionPhone(t, adminConfig(`{"backend":"sqlite","path":`+string(path)+`}`, extra))
	t.Cleanup(func() { p.Cleanup() })
	return p
}

// adminAnswer is a decoded response.
type adminAnswer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// call sends one request through ServeHTTP; auth is the whole
// Authorization header ("" for none).
func call(t *testing.T, p *Phone, method, target, auth, body string) adminAnswer {
	t.Helper()
	r := caddyRequest(method, target, body)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.Header.Set("Content-Type", "application/json") // as @clerk/backend sends it, even on GET
	rec := httptest.NewRecorder()
	if err := p.ServeHTTP(rec, r, noopNext); err != nil {
		t.Fatal(err)
	}
	a := adminAnswer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &a.body)
	return a
}

func admin(t *testing.T, p *Phone, method, target, body string) adminAnswer {
	t.Helper()
	return call(t, p, method, target, "Bearer "+adminKey, body)
}

// want checks the status, the exact Content-Type and, for errors, our
// code both at the top and in Clerk's errors list: for the errors Clerk
// has no code of its own for (SPEC §7).
func (a adminAnswer) want(t *testing.T, status int, code string) adminAnswer {
	t.Helper()
	return a.wantClerk(t, status, code, code)
}

// wantClerk is want with our code at the top and Clerk's, clerkCode, in
// its errors list.
func (a adminAnswer) wantClerk(t *testing.T, status int, code, clerkCode string) adminAnswer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want exactly application/json", ct)
	}
	if code == "" {
		return a
	}
	errs, _ := a.body["errors"].([]any)
	if a.body["error"] != code || len(errs) != 1 {
		t.Fatalf("error %v, want %q with one Clerk error: %s", a.body["error"], code, a.raw)
	}
	e := errs[0].(map[string]any)
	if e["code"] != clerkCode || e["message"] != a.body["message"] || e["long_message"] == "" || e["meta"] == nil {
		t.Fatalf("Clerk error entry %v does not match %s", e, a.raw)
	}
	return a
}

func (a adminAnswer) param() string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	meta, _ := errs[0].(map[string]any)["meta"].(map[string]any)
	s, _ := meta["param_name"].(string)
	return s
}

func userToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := mintToken(benchSecret, user, "HS256", "", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// phoneObjectKeys are the keys of Clerk's phone_number object (SPEC §7).
var phoneObjectKeys = []string{"created_at", "default_second_factor", "id", "linked_to", "object", "phone_number",
	"primary", "reserved_for_second_factor", "updated_at", "user_id", "verification", "verified"}

func checkPhoneObject(t *testing.T, obj map[string]any) {
	t.Helper()
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, phoneObjectKeys) {
		t.Fatalf("object keys %q, want %q", keys, phoneObjectKeys)
	}
	id, _ := obj["id"].(string)
	if obj["object"] != "phone_number" || !strings.HasPrefix(id, "idn_") {
		t.Fatalf("object %v", obj)
	}
	if l, ok := obj["linked_to"].([]any); !ok || len(l) != 0 {
		t.Fatalf("linked_to = %#v, want []", obj["linked_to"])
	}
	now := float64(time.Now().UnixMilli())
	for _, k := range []string{"created_at", "updated_at"} {
		if ms, _ := obj[k].(float64); ms < now-60_000 || ms > now+1000 {
			t.Fatalf("%s = %v, want Unix milliseconds near %v", k, obj[k], now)
		}
	}
}

// The round trip of SPEC §7, and the primary number is the user API's.
func TestAdminPhoneNumbers(t *testing.T) {
	p := sqliteAdmin(t, "")
	user := "user/with slash"
	esc := "user%2Fwith%20slash"
	tok := userToken(t, user)

	a := admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"user/with slash","phone_number":"+33 6 12 34 56 78"}`).want(t, 200, "")
	checkPhoneObject(t, a.body)
	if a.body["phone_number"] != "+33612345678" || a.body["primary"] != true || a.body["verified"] != false ||
		a.body["verification"] != nil || a.body["user_id"] != user {
		t.Fatalf("first number: %s", a.raw)
	}
	first := a.body["id"].(string)
	st := call(t, p, "GET", "/phone", "Bearer "+tok, "")
	if st.status != 200 || st.body["phone_number"] != "+33612345678" || st.body["verified"] != false {
		t.Fatalf("GET /phone after the first number: %s", st.raw)
	}

	a = admin(t, p, "POST", "/phone/v1/phone_numbers",
		`{"user_id":"user/with slash","phone_number":"+33612345679","verified":true}`).want(t, 200, "")
	second := a.body["id"].(string)
	v, _ := a.body["verification"].(map[string]any)
	if a.body["primary"] != false || v["status"] != "verified" || v["strategy"] != "admin" ||
		v["attempts"] != nil || v["expire_at"] != nil {
		t.Fatalf("second number: %s", a.raw)
	}

	a = admin(t, p, "GET", "/phone/v1/phone_numbers/"+second, "").want(t, 200, "")
	checkPhoneObject(t, a.body)
	if a.body["id"] != second || a.body["phone_number"] != "+33612345679" {
		t.Fatalf("get: %s", a.raw)
	}
	if h := admin(t, p, "HEAD", "/phone/v1/phone_numbers/"+second, ""); h.status != 200 {
		t.Fatalf("HEAD: %d", h.status)
	}

	a = admin(t, p, "PATCH", "/phone/v1/phone_numbers/"+second, `{"primary":true,"reserved_for_second_factor":true}`).want(t, 200, "")
	if a.body["primary"] != true || a.body["reserved_for_second_factor"] != true || a.body["default_second_factor"] != true {
		t.Fatalf("patch: %s", a.raw)
	}
	st = call(t, p, "GET", "/phone", "Bearer "+tok, "")
	if st.body["phone_number"] != "+33612345679" || st.body["verified"] != true {
		t.Fatalf("GET /phone after making the second primary: %s", st.raw)
	}
	// No body: nothing changes (the SDK sends none for an empty update).
	admin(t, p, "PATCH", "/phone/v1/phone_numbers/"+second, "").want(t, 200, "")

	a = admin(t, p, "GET", "/phone/v1/users/"+esc+"/phone_numbers", "").want(t, 200, "")
	data, _ := a.body["data"].([]any)
	if a.body["total_count"] != float64(2) || len(data) != 2 {
		t.Fatalf("list: %s", a.raw)
	}
	for i, want := range []struct {
		id      string
		primary bool
	}{{first, false}, {second, true}} {
		obj := data[i].(map[string]any)
		checkPhoneObject(t, obj)
		if obj["id"] != want.id || obj["primary"] != want.primary {
			t.Fatalf("list[%d] = %v, want %s primary=%v", i, obj, want.id, want.primary)
		}
	}
	if a := admin(t, p, "GET", "/phone/v1/users/nobody/phone_numbers", "").want(t, 200, ""); a.raw != `{"data":[],"total_count":0}` {
		t.Fatalf("list of an unknown user: %s", a.raw)
	}

	a = admin(t, p, "DELETE", "/phone/v1/phone_numbers/"+second, "").want(t, 200, "")
	if a.raw != `{"object":"phone_number","id":"`+second+`","deleted":true}` {
		t.Fatalf("delete: %s", a.raw)
	}
	st = call(t, p, "GET", "/phone", "Bearer "+tok, "")
	if st.body["phone_number"] != nil || st.body["verified"] != false {
		t.Fatalf("GET /phone after deleting the primary: %s", st.raw)
	}
	admin(t, p, "GET", "/phone/v1/phone_numbers/"+second, "").wantClerk(t, 404, "not_found", "resource_not_found")
	admin(t, p, "DELETE", "/phone/v1/phone_numbers/"+second, "").wantClerk(t, 404, "not_found", "resource_not_found")
	a = admin(t, p, "GET", "/phone/v1/users/"+esc+"/phone_numbers", "").want(t, 200, "")
	if a.body["total_count"] != float64(1) {
		t.Fatalf("list after delete: %s", a.raw)
	}
}

// The user API's changes show in the admin API: the verified number
// replaces the primary one.
func TestAdminFollowsUserAPI(t *testing.T) {
	p := sqliteAdmin(t, "")
	sink := withInstantSMS(t, p)
	user := "follower"
	auth := "Bearer " + userToken(t, user)
	a := admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"follower","phone_number":"+33612345678","verified":true}`).want(t, 200, "")
	old := a.body["id"].(string)
	if r := call(t, p, "POST", "/phone/update", auth, `{"phone_number":"+33612345670"}`); r.status != 202 {
		t.Fatalf("update: %d %s", r.status, r.raw)
	}
	if r := call(t, p, "POST", "/phone/verify", auth, `{"code":"`+sink.codes["+33612345670"]+`"}`); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	a = admin(t, p, "GET", "/phone/v1/users/follower/phone_numbers", "").want(t, 200, "")
	data := a.body["data"].([]any)
	obj := data[0].(map[string]any)
	v, _ := obj["verification"].(map[string]any)
	if len(data) != 1 || obj["phone_number"] != "+33612345670" || obj["primary"] != true || v["strategy"] != "phone_code" {
		t.Fatalf("after the user verified a new number: %s", a.raw)
	}
	admin(t, p, "GET", "/phone/v1/phone_numbers/"+old, "").wantClerk(t, 404, "not_found", "resource_not_found")
}

func TestAdminErrors(t *testing.T) {
	p := sqliteAdmin(t, `,"numbers":{"allow_countries":["FR"]}`)
	const create = "/phone/v1/phone_numbers"
	admin(t, p, "POST", create, `{"user_id":"u1","phone_number":"+33612345678","verified":true}`).want(t, 200, "")
	unverified := admin(t, p, "POST", create, `{"user_id":"u1","phone_number":"+33612345670"}`).want(t, 200, "").body["id"].(string)
	primary := admin(t, p, "GET", "/phone/v1/users/u1/phone_numbers", "").want(t, 200, "").body["data"].([]any)[0].(map[string]any)["id"].(string)
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code, clerk, param       string // our code, Clerk's in errors[0]
	}{
		{"not a number", "POST", create, `{"user_id":"u2","phone_number":"hello"}`, 422, "invalid_phone_number", "form_param_format_invalid", "phone_number"},
		{"country refused", "POST", create, `{"user_id":"u2","phone_number":"+14155552671"}`, 422, "phone_number_not_allowed", "phone_number_not_allowed", "phone_number"},
		{"reserved unverified", "POST", create, `{"user_id":"u2","phone_number":"+33612345671","reserved_for_second_factor":true}`,
			422, "phone_number_not_verified", "phone_number_not_verified", "reserved_for_second_factor"},
		{"reserve unverified", "PATCH", create + "/" + unverified, `{"reserved_for_second_factor":true}`,
			422, "phone_number_not_verified", "phone_number_not_verified", "reserved_for_second_factor"},
		{"verified elsewhere", "POST", create, `{"user_id":"u2","phone_number":"+33612345678","verified":true}`,
			422, "phone_number_in_use", "form_identifier_exists", "phone_number"},
		{"same user twice", "POST", create, `{"user_id":"u1","phone_number":"+33 6 12 34 56 70"}`, 422, "phone_number_in_use", "form_identifier_exists", "phone_number"},
		{"unprimary", "PATCH", create + "/" + primary, `{"primary":false}`, 422, "invalid_request", "form_param_format_invalid", "primary"},
		{"no user", "POST", create, `{"phone_number":"+33612345671"}`, 422, "invalid_request", "form_param_missing", "user_id"},
		{"no number", "POST", create, `{"user_id":"u2"}`, 422, "invalid_request", "form_param_missing", "phone_number"},
		{"no body", "POST", create, ``, 400, "invalid_request", "invalid_request", ""},
		{"unknown field", "POST", create, `{"user_id":"u2","phone_number":"+33612345671","nickname":"x"}`, 400, "invalid_request", "invalid_request", ""},
		{"wrong type", "PATCH", create + "/" + unverified, `{"verified":"yes"}`, 422, "invalid_request", "form_param_format_invalid", "verified"},
		{"not JSON", "PATCH", create + "/" + unverified, `{`, 400, "invalid_request", "invalid_request", ""},
		{"two objects", "PATCH", create + "/" + unverified, `{}{}`, 400, "invalid_request", "invalid_request", ""},
		{"too large", "POST", create, `{"user_id":"` + strings.Repeat("x", maxBody) + `"}`, 413, "payload_too_large", "payload_too_large", ""},
		{"unknown id", "GET", create + "/idn_00000000000000000000000000000000", "", 404, "not_found", "resource_not_found", ""},
		{"malformed id", "PATCH", create + "/usr_1", `{}`, 404, "not_found", "resource_not_found", ""},
		{"long user", "GET", "/phone/v1/users/" + strings.Repeat("u", 300) + "/phone_numbers", "", 422, "invalid_request", "form_param_format_invalid", "user_id"},
		{"NUL in a user's list", "GET", "/phone/v1/users/u1%00/phone_numbers", "", 422, "invalid_request", "form_param_format_invalid", "user_id"},
		{"NUL in a new number's user", "POST", create, `{"user_id":"u2\u0000","phone_number":"+33612345671"}`, 422, "invalid_request", "form_param_format_invalid", "user_id"},
		{"control character in a new number's user", "POST", create, `{"user_id":"u2\u001b","phone_number":"+33612345671"}`, 422, "invalid_request", "form_param_format_invalid", "user_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := admin(t, p, c.method, c.path, c.body).wantClerk(t, c.status, c.code, c.clerk)
			if got := a.param(); got != c.param {
				t.Fatalf("param_name %q, want %q: %s", got, c.param, a.raw)
			}
		})
	}
}

// Routing first (404, 405 whatever the credentials), then the key: a user
// token never reaches the admin routes, and the key never works on the
// user routes.
func TestAdminAuth(t *testing.T) {
	p := sqliteAdmin(t, "")
	userAuth := "Bearer " + userToken(t, "someone")
	for _, c := range []struct {
		name, method, path, auth string
		status                   int
		code, clerk, allow       string // our code, Clerk's in errors[0]
	}{
		{"unknown path", "GET", "/phone/v1/nothing", "", 404, "not_found", "resource_not_found", ""},
		{"trailing slash", "GET", "/phone/v1/phone_numbers/", "Bearer " + adminKey, 404, "not_found", "resource_not_found", ""},
		{"too deep", "GET", "/phone/v1/phone_numbers/a/b", "Bearer " + adminKey, 404, "not_found", "resource_not_found", ""},
		{"wrong method", "GET", "/phone/v1/phone_numbers", "", 405, "method_not_allowed", "method_not_allowed", "POST"},
		{"wrong method on an id", "POST", "/phone/v1/phone_numbers/idn_x", userAuth, 405, "method_not_allowed", "method_not_allowed", "GET, HEAD, PATCH, DELETE"},
		{"wrong method on a list", "DELETE", "/phone/v1/users/u/phone_numbers", "", 405, "method_not_allowed", "method_not_allowed", "GET, HEAD"},
		{"no key", "GET", "/phone/v1/users/u/phone_numbers", "", 401, "unauthorized", "authentication_invalid", ""},
		{"wrong key", "GET", "/phone/v1/users/u/phone_numbers", "Bearer sk_test_wrong", 401, "unauthorized", "authentication_invalid", ""},
		{"key prefix", "GET", "/phone/v1/users/u/phone_numbers", "Bearer " + adminKey[:len(adminKey)-1], 401, "unauthorized", "authentication_invalid", ""},
		{"key with a tail", "GET", "/phone/v1/users/u/phone_numbers", "Bearer " + adminKey + " ", 401, "unauthorized", "authentication_invalid", ""},
		{"basic scheme", "GET", "/phone/v1/users/u/phone_numbers", "Basic " + adminKey, 401, "unauthorized", "authentication_invalid", ""},
		{"user token", "GET", "/phone/v1/users/someone/phone_numbers", userAuth, 401, "unauthorized", "authentication_invalid", ""},
		{"scheme in lower case", "GET", "/phone/v1/users/u/phone_numbers", "bearer " + adminKey, 200, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, p, c.method, c.path, c.auth, "").wantClerk(t, c.status, c.code, c.clerk)
			if got := a.header.Get("Allow"); got != c.allow {
				t.Fatalf("Allow %q, want %q", got, c.allow)
			}
			if c.status == 401 {
				want := `Bearer realm="phone"`
				if c.auth != "" {
					want += `, error="invalid_token"`
				}
				if got := a.header.Get("WWW-Authenticate"); got != want {
					t.Fatalf("WWW-Authenticate %q, want %q", got, want)
				}
			}
		})
	}
	// The key on the user routes: not a JWT, so 401 like any bad token.
	for _, path := range []string{"/phone", "/phone/update", "/phone/verify", "/phone/resend", "/phone/pending"} {
		method := map[string]string{"/phone": "GET", "/phone/pending": "DELETE"}[path]
		if method == "" {
			method = "POST"
		}
		a := call(t, p, method, path, "Bearer "+adminKey, `{"phone_number":"+33612345678","code":"123456"}`)
		if a.status != 401 || a.body["error"] != "unauthorized" {
			t.Fatalf("%s %s with the admin key: %d %s", method, path, a.status, a.raw)
		}
	}
	// And a request under the prefix's v1 without `admin` is the user API's 404.
	plain := provisionPhone(t, benchConfig)
	if a := call(t, plain, "GET", "/phone/v1/phone_numbers/idn_x", "Bearer "+adminKey, ""); a.status != 404 {
		t.Fatalf("without admin: %d %s", a.status, a.raw)
	}
}

// The http store holds one number per user: 501 once the key is right.
func TestAdminNotSupported(t *testing.T) {
	p := provisionPhone(t, adminConfig(`{"backend":"http","url":"http://127.0.0.1:9"}`, ""))
	t.Cleanup(func() { p.Cleanup() })
	call(t, p, "GET", "/phone/v1/phone_numbers/idn_x", "", "").wantClerk(t, 401, "unauthorized", "authentication_invalid")
	call(t, p, "PUT", "/phone/v1/phone_numbers", "", "").want(t, 405, "method_not_allowed")
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/phone/v1/phone_numbers", `{"user_id":"u","phone_number":"+33612345678"}`},
		{"GET", "/phone/v1/phone_numbers/idn_00000000000000000000000000000000", ""},
		{"PATCH", "/phone/v1/phone_numbers/idn_00000000000000000000000000000000", `{"primary":true}`},
		{"DELETE", "/phone/v1/phone_numbers/idn_00000000000000000000000000000000", ""},
		{"GET", "/phone/v1/users/u/phone_numbers", ""},
	} {
		admin(t, p, c.method, c.path, c.body).want(t, 501, "not_supported")
	}
}

// The memory store serves the endpoints too, and its numbers survive a
// new config (the store is one per process).
func TestAdminMemoryStore(t *testing.T) {
	cfg := adminConfig(`{"backend":"memory"}`, "")
	p := provisionPhone(t, cfg)
	user := fmt.Sprintf("mem-%d", time.Now().UnixNano())
	a := admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"+33612345678"}`).want(t, 200, "")
	id := a.body["id"].(string)
	p2 := provisionPhone(t, cfg)
	admin(t, p2, "GET", "/phone/v1/phone_numbers/"+id, "").want(t, 200, "")
	admin(t, p2, "DELETE", "/phone/v1/phone_numbers/"+id, "").want(t, 200, "")
}

func TestAdminProvisionErrors(t *testing.T) {
	for _, c := range []struct{ name, admin, want string }{
		{"no key", `{}`, "api_key is required"},
		{"short key", `{"api_key":"sk_short"}`, "at least 16"},
		{"dotted key", `{"api_key":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}`, "must not contain dots"},
		{"project id", `{"api_key":"P2abcdefghijklmnopq"}`, "differ from jwt.project_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := `{"jwt":{"secret":"` + benchSecret + `","project_id":"P2abcdefghijklmnopq"},"store":{"backend":"memory"},
				"cache":{"max_size":67108864},"sms":[{"provider":"log"}],"admin":` + c.admin + `}`
			err := provisionError(t, cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "admin: ") {
				t.Fatalf("Provision: %v, want an admin error with %q", err, c.want)
			}
		})
	}
}

// An admin change to the number GET /phone shows is seen there at once
// (no read-cache delay) and told to the app as a phone event.
func TestAdminChangesAreSeenAndTold(t *testing.T) {
	recv := newGlueReceiver(t)
	p := sqliteAdmin(t, `,"events":{"url":"`+recv.srv.URL+`","secret":"`+glueEventsSecret+`"}`)
	user := "admin-events-user"
	tok := "Bearer " + userToken(t, user)
	call(t, p, "GET", "/phone", tok, "").want(t, 200, "") // warms the read cache

	created := admin(t, p, "POST", "/phone/v1/phone_numbers",
		`{"user_id":"`+user+`","phone_number":"+33612345678","verified":true}`).want(t, 200, "")
	st := call(t, p, "GET", "/phone", tok, "").want(t, 200, "")
	if st.body["phone_number"] != "+33612345678" || st.body["verified"] != true {
		t.Fatalf("GET /phone after the admin create: %s", st.raw)
	}
	admin(t, p, "DELETE", "/phone/v1/phone_numbers/"+created.body["id"].(string), "").want(t, 200, "")
	if st = call(t, p, "GET", "/phone", tok, "").want(t, 200, ""); st.body["phone_number"] != nil {
		t.Fatalf("GET /phone after the admin delete: %s", st.raw)
	}

	deadline := time.Now().Add(10 * time.Second)
	for len(recv.events()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := recv.events()
	if len(got) != 2 || got[0].Type != events.TypeVerified || got[0].PhoneNumber != "+33612345678" ||
		got[1].Type != events.TypeRemoved || got[1].PreviousPhoneNumber != "+33612345678" || got[1].UserID != user {
		t.Fatalf("events: %+v", got)
	}
}

// `admin { claim … }` lets a valid JWT carrying the claim open the admin
// routes; a user token without it never does.
func TestAdminClaim(t *testing.T) {
	sign := func(claims jwt.MapClaims) string {
		claims["sub"], claims["exp"] = "ops", time.Now().Add(time.Hour).Unix()
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(benchSecret))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	for _, c := range []struct {
		name, admin string
		claims      jwt.MapClaims
		want        int
	}{
		{"true", `{"claim":"phone_admin"}`, jwt.MapClaims{"phone_admin": true}, 200},
		{"false", `{"claim":"phone_admin"}`, jwt.MapClaims{"phone_admin": false}, 401},
		{"string true is not true", `{"claim":"phone_admin"}`, jwt.MapClaims{"phone_admin": "true"}, 401},
		{"absent", `{"claim":"phone_admin"}`, jwt.MapClaims{}, 401},
		{"value", `{"claim":"role","claim_value":"admin"}`, jwt.MapClaims{"role": "admin"}, 200},
		{"in array", `{"claim":"roles","claim_value":"admin"}`, jwt.MapClaims{"roles": []any{"user", "admin"}}, 200},
		{"other value", `{"claim":"role","claim_value":"admin"}`, jwt.MapClaims{"role": "user"}, 401},
		{"key and claim, token", `{"api_key":"` + adminKey + `","claim":"phone_admin"}`, jwt.MapClaims{"phone_admin": true}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},
				"cache":{"max_size":67108864},"sms":[{"provider":"log"}],"admin":` + c.admin + `}`
			p := provisionPhone(t, cfg)
			got := call(t, p, "GET", "/phone/v1/users/someone/phone_numbers", sign(c.claims), "")
			if got.status != c.want {
				t.Fatalf("status %d, want %d: %s", got.status, c.want, got.raw)
			}
		})
	}
}

// An admin change to the user's number cancels the user's open challenge:
// its code must not bring back the number the admin removed.
func TestAdminChangeCancelsOpenChallenge(t *testing.T) {
	p := sqliteAdmin(t, "")
	sink := withInstantSMS(t, p)
	user := "admin-cancel-user"
	tok := "Bearer " + userToken(t, user)
	call(t, p, "POST", "/phone/update", tok, `{"phone_number":"+33612345678"}`).want(t, 200, "")
	list := admin(t, p, "GET", "/phone/v1/users/"+user+"/phone_numbers", "").want(t, 200, "")
	id := list.body["data"].([]any)[0].(map[string]any)["id"].(string)
	admin(t, p, "DELETE", "/phone/v1/phone_numbers/"+id, "").want(t, 200, "")
	if v := call(t, p, "POST", "/phone/verify", tok, `{"code":"`+sink.codes["+33612345678"]+`"}`); v.status != 409 || v.body["error"] != "no_pending_verification" {
		t.Fatalf("verify after the admin delete: %d %s", v.status, v.raw)
	}
	if st := call(t, p, "GET", "/phone", tok, ""); st.body["phone_number"] != nil {
		t.Fatalf("the deleted number is back: %s", st.raw)
	}
}

// A number an admin verified for the user, kept among their numbers, is
// theirs already: an update to it makes it the number, verified, at once
// and sends no code — whether the user's number was verified (rule 3
// would open a challenge) or not (rule 2 would store it unverified, which
// the store raises) — and the answer says what the store then holds.
func TestUpdateToANumberHeldVerified(t *testing.T) {
	for _, storeJSON := range []string{`{"backend":"memory"}`, ""} {
		var p *Phone
		if storeJSON == "" {
			p = sqliteAdmin(t, "")
		} else {
			p = provisionPhone(t, adminConfig(storeJSON, ""))
		}
		sink := withInstantSMS(t, p)
		user := "held-verified"
		tok := "Bearer " + userToken(t, user)
		const held, other, third = "+33612345671", "+33612345672", "+33612345673"
		admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"`+held+`","verified":true,"primary":true}`).want(t, 200, "")
		admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"`+other+`","verified":true,"primary":true}`).want(t, 200, "")

		// The user's number is verified: no pending challenge, no code.
		u := call(t, p, "POST", "/phone/update", tok, `{"phone_number":"`+held+`"}`).want(t, 200, "")
		if u.body["status"] != "updated" || u.body["phone_number"] != held || u.body["verified"] != true {
			t.Fatalf("%s: update to a held verified number: %s", storeJSON, u.raw)
		}
		if c := call(t, p, "POST", "/phone/verify", tok, `{"code":"000000"}`); c.status != 409 {
			t.Fatalf("%s: a challenge was left open: %d %s", storeJSON, c.status, c.raw)
		}

		// The user's number is not verified: stored verified, no code.
		const held2 = "+33612345674"
		user = "held-verified-2"
		tok = "Bearer " + userToken(t, user)
		admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"`+held2+`","verified":true,"primary":true}`).want(t, 200, "")
		admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"`+third+`","verified":false,"primary":true}`).want(t, 200, "")
		if g := call(t, p, "GET", "/phone", tok, ""); g.body["phone_number"] != third || g.body["verified"] == true {
			t.Fatalf("%s: set-up: %s", storeJSON, g.raw)
		}
		u = call(t, p, "POST", "/phone/update", tok, `{"phone_number":"`+held2+`"}`).want(t, 200, "")
		if u.body["status"] != "updated" || u.body["phone_number"] != held2 || u.body["verified"] != true {
			t.Fatalf("%s: update from an unverified number to a held verified one: %s", storeJSON, u.raw)
		}
		if g := call(t, p, "GET", "/phone", tok, ""); g.body["phone_number"] != held2 || g.body["verified"] != true {
			t.Fatalf("%s: GET after: %s", storeJSON, g.raw)
		}
		if _, sent := sink.codes[held2]; sent || sink.codes[held] != "" {
			t.Fatalf("%s: a code was sent to a number the user holds verified", storeJSON)
		}
	}
}
