package caddymodule

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
)

// userObjectKeys are the keys of Clerk's user object (UserJSON in
// @clerk/backend 3.25): every one present, null or empty when this store
// has no data for it (SPEC §7).
var userObjectKeys = []string{"backup_code_enabled", "banned", "create_organization_enabled", "create_organizations_limit",
	"created_at", "delete_self_enabled", "deprovisioned", "email_addresses", "enterprise_accounts", "external_accounts",
	"external_id", "first_name", "has_image", "id", "image_url", "last_active_at", "last_name", "last_sign_in_at",
	"legal_accepted_at", "locale", "locked", "lockout_expires_in_seconds", "object", "organization_memberships",
	"password_enabled", "password_last_updated_at", "phone_numbers", "primary_email_address_id", "primary_phone_number_id",
	"primary_web3_wallet_id", "private_metadata", "public_metadata", "timezone", "totp_enabled", "two_factor_enabled",
	"unsafe_metadata", "updated_at", "username", "verification_attempts_remaining", "web3_wallets"}

// checkUserObject checks a user object's shape and returns its numbers'
// IDs, oldest first.
func checkUserObject(t *testing.T, obj map[string]any, user, primary string) []string {
	t.Helper()
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, userObjectKeys) {
		t.Fatalf("user keys %q, want %q", keys, userObjectKeys)
	}
	if obj["object"] != "user" || obj["id"] != user || obj["primary_phone_number_id"] != primary ||
		obj["first_name"] != nil || obj["banned"] != false {
		t.Fatalf("user %v, want %s with primary %s", obj, user, primary)
	}
	for _, k := range []string{"email_addresses", "web3_wallets", "external_accounts"} {
		if l, ok := obj[k].([]any); !ok || len(l) != 0 {
			t.Fatalf("%s = %#v, want []", k, obj[k])
		}
	}
	if m, ok := obj["public_metadata"].(map[string]any); !ok || len(m) != 0 {
		t.Fatalf("public_metadata = %#v, want {}", obj["public_metadata"])
	}
	var ids []string
	var oldest float64
	for i, n := range obj["phone_numbers"].([]any) {
		n := n.(map[string]any)
		checkPhoneObject(t, n)
		if n["user_id"] != user || (n["primary"] == true) != (n["id"] == primary) {
			t.Fatalf("number %v of user %s (primary %s)", n, user, primary)
		}
		if c := n["created_at"].(float64); i == 0 || c < oldest {
			oldest = c
		}
		ids = append(ids, n["id"].(string))
	}
	if obj["created_at"] != oldest {
		t.Fatalf("created_at %v, want the oldest number's %v", obj["created_at"], oldest)
	}
	return ids
}

// ids is the user IDs of a list answer (a bare array).
func userIDs(t *testing.T, a adminAnswer) []string {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(a.raw), &list); err != nil {
		t.Fatalf("want a bare array: %s", a.raw)
	}
	out := []string{}
	for _, u := range list {
		primary, _ := u["primary_phone_number_id"].(string)
		checkUserObject(t, u, u["id"].(string), primary)
		out = append(out, u["id"].(string))
	}
	return out
}

// users.getUser, users.updateUser({primaryPhoneNumberID}),
// users.getUserList({phoneNumber}) and users.getCount as @clerk/backend
// sends them.
func TestAdminUsers(t *testing.T) {
	p := sqliteAdmin(t, "")
	const create = "/phone/v1/phone_numbers"
	user, esc := "user/with slash", "user%2Fwith%20slash"
	tok := "Bearer " + userToken(t, user)
	first := admin(t, p, "POST", create, `{"user_id":"user/with slash","phone_number":"+33612345678"}`).want(t, 200, "").body["id"].(string)
	time.Sleep(3 * time.Millisecond)
	second := admin(t, p, "POST", create, `{"user_id":"user/with slash","phone_number":"+33612345679","verified":true,
		"reserved_for_second_factor":true}`).want(t, 200, "").body["id"].(string)

	a := admin(t, p, "GET", "/phone/v1/users/"+esc, "").want(t, 200, "")
	if ids := checkUserObject(t, a.body, user, first); !slices.Equal(ids, []string{first, second}) {
		t.Fatalf("phone_numbers %q, want %q", ids, []string{first, second})
	}
	if a.body["two_factor_enabled"] != true {
		t.Fatalf("a reserved number is a second factor: %s", a.raw)
	}
	if h := admin(t, p, "HEAD", "/phone/v1/users/"+esc, ""); h.status != 200 {
		t.Fatalf("HEAD: %d", h.status)
	}

	// updateUser: the verified second number becomes primary, and the
	// user API shows it at once.
	a = admin(t, p, "PATCH", "/phone/v1/users/"+esc, `{"primary_phone_number_id":"`+second+`"}`).want(t, 200, "")
	checkUserObject(t, a.body, user, second)
	st := call(t, p, "GET", "/phone", tok, "").want(t, 200, "")
	if st.body["phone_number"] != "+33612345679" || st.body["verified"] != true {
		t.Fatalf("GET /phone after updateUser: %s", st.raw)
	}
	// Nothing to change (the SDK then sends no body), or the primary
	// again: the user as it is.
	checkUserObject(t, admin(t, p, "PATCH", "/phone/v1/users/"+esc, "").want(t, 200, "").body, user, second)
	checkUserObject(t, admin(t, p, "PATCH", "/phone/v1/users/"+esc, `{"primary_phone_number_id":"`+second+`"}`).
		want(t, 200, "").body, user, second)

	// Two more users: one holding the first number unverified too, one
	// through the user API (update, then verify with the code).
	time.Sleep(3 * time.Millisecond)
	admin(t, p, "POST", create, `{"user_id":"other","phone_number":"+33612345678"}`).want(t, 200, "")
	time.Sleep(3 * time.Millisecond)
	sink := withInstantSMS(t, p)
	third := "Bearer " + userToken(t, "third")
	call(t, p, "POST", "/phone/update", third, `{"phone_number":"+33612345670"}`).want(t, 200, "")
	call(t, p, "POST", "/phone/verify", third, `{"code":"`+sink.codes["+33612345670"]+`"}`).want(t, 200, "")

	for _, c := range []struct {
		query string
		want  []string
		count int
	}{
		{"phone_number=%2B33612345678", []string{"other", user}, 2}, // newest first, as Clerk
		{"phone_number=%2B33%206%2012%2034%2056%2078", []string{"other", user}, 2},
		{"phone_number=%2B33612345679", []string{user}, 1}, // its secondary number now
		{"phone_number=%2B33612345670", []string{"third"}, 1},
		{"phone_number=%2B33612345678&phone_number=%2B33612345670&order_by=created_at", []string{user, "other", "third"}, 3},
		{"phone_number=%2B33612345678&phone_number=%2B33612345670&order_by=-created_at&limit=1&offset=1", []string{"other"}, 3},
		{"phone_number=%2B33612345678&phone_number=%2B33612345670&offset=3", []string{}, 3},
		{"phone_number=%2B33600000000", []string{}, 0},
	} {
		t.Run(c.query, func(t *testing.T) {
			if got := userIDs(t, admin(t, p, "GET", "/phone/v1/users?"+c.query, "").want(t, 200, "")); !slices.Equal(got, c.want) {
				t.Fatalf("list %q, want %q", got, c.want)
			}
			a := admin(t, p, "GET", "/phone/v1/users/count?"+countQuery(t, c.query), "").want(t, 200, "")
			if a.raw != `{"object":"total_count","total_count":`+itoa(c.count)+`}` {
				t.Fatalf("count: %s, want %d", a.raw, c.count)
			}
		})
	}
}

// countQuery keeps the phone numbers of a list query, as the SDK's
// getUserList sends them to getCount.
func countQuery(t *testing.T, query string) string {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"phone_number": v["phone_number"]}.Encode()
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestAdminUsersErrors(t *testing.T) {
	p := sqliteAdmin(t, `,"numbers":{"allow_countries":["FR"]}`)
	const create = "/phone/v1/phone_numbers"
	admin(t, p, "POST", create, `{"user_id":"u1","phone_number":"+33612345678"}`).want(t, 200, "")
	theirs := admin(t, p, "POST", create, `{"user_id":"u2","phone_number":"+33612345679"}`).want(t, 200, "").body["id"].(string)
	var many strings.Builder
	for i := range 101 {
		many.WriteString("&phone_number=%2B336123456" + itoa(10+i%90))
	}
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code, clerk, param       string // our code, Clerk's in errors[0]
	}{
		{"unknown user", "GET", "/phone/v1/users/nobody", "", 404, "not_found", "resource_not_found", ""},
		{"unknown user update", "PATCH", "/phone/v1/users/nobody", `{"primary_phone_number_id":"` + theirs + `"}`, 404, "not_found", "resource_not_found", ""},
		{"long user", "GET", "/phone/v1/users/" + strings.Repeat("u", 300), "", 422, "invalid_request", "form_param_format_invalid", "user_id"},
		{"another user's number", "PATCH", "/phone/v1/users/u1", `{"primary_phone_number_id":"` + theirs + `"}`,
			422, "invalid_request", "form_param_format_invalid", "primary_phone_number_id"},
		{"no such number", "PATCH", "/phone/v1/users/u1", `{"primary_phone_number_id":"idn_x"}`,
			422, "invalid_request", "form_param_format_invalid", "primary_phone_number_id"},
		{"wrong type", "PATCH", "/phone/v1/users/u1", `{"primary_phone_number_id":7}`,
			422, "invalid_request", "form_param_format_invalid", "primary_phone_number_id"},
		{"a field we cannot keep", "PATCH", "/phone/v1/users/u1", `{"first_name":"Ann"}`, 400, "invalid_request", "invalid_request", ""},
		{"not JSON", "PATCH", "/phone/v1/users/u1", `{`, 400, "invalid_request", "invalid_request", ""},
		{"list without a number", "GET", "/phone/v1/users", "", 422, "invalid_request", "form_param_missing", "phone_number"},
		{"list with a limit only", "GET", "/phone/v1/users?limit=5", "", 422, "invalid_request", "form_param_missing", "phone_number"},
		{"count without a number", "GET", "/phone/v1/users/count", "", 422, "invalid_request", "form_param_missing", "phone_number"},
		{"not a number", "GET", "/phone/v1/users?phone_number=hello", "", 422, "invalid_phone_number", "form_param_format_invalid", "phone_number"},
		{"empty number", "GET", "/phone/v1/users/count?phone_number=", "", 422, "invalid_phone_number", "form_param_format_invalid", "phone_number"},
		{"country refused", "GET", "/phone/v1/users?phone_number=%2B14155552671", "", 422, "phone_number_not_allowed", "phone_number_not_allowed", "phone_number"},
		{"too many numbers", "GET", "/phone/v1/users?" + many.String()[1:], "", 422, "invalid_request", "form_param_format_invalid", "phone_number"},
		{"limit 0", "GET", "/phone/v1/users?phone_number=%2B33612345678&limit=0", "", 422, "invalid_request", "form_param_format_invalid", "limit"},
		{"limit 501", "GET", "/phone/v1/users?phone_number=%2B33612345678&limit=501", "", 422, "invalid_request", "form_param_format_invalid", "limit"},
		{"limit not a number", "GET", "/phone/v1/users?phone_number=%2B33612345678&limit=ten", "", 422, "invalid_request", "form_param_format_invalid", "limit"},
		{"limit twice", "GET", "/phone/v1/users?phone_number=%2B33612345678&limit=1&limit=2", "", 422, "invalid_request", "form_param_format_invalid", "limit"},
		{"negative offset", "GET", "/phone/v1/users?phone_number=%2B33612345678&offset=-1", "", 422, "invalid_request", "form_param_format_invalid", "offset"},
		{"huge offset", "GET", "/phone/v1/users?phone_number=%2B33612345678&offset=99999999999999999999", "", 422, "invalid_request", "form_param_format_invalid", "offset"},
		{"other order", "GET", "/phone/v1/users?phone_number=%2B33612345678&order_by=-last_sign_in_at", "", 422, "invalid_request", "form_param_format_invalid", "order_by"},
		{"a filter we cannot apply", "GET", "/phone/v1/users?phone_number=%2B33612345678&email_address=a%40b.c", "", 422, "invalid_request", "form_param_format_invalid", "email_address"},
		{"a page on the count", "GET", "/phone/v1/users/count?phone_number=%2B33612345678&limit=5", "", 422, "invalid_request", "form_param_format_invalid", "limit"},
		{"bad escape", "GET", "/phone/v1/users?phone_number=%zz", "", 400, "invalid_request", "invalid_request", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := admin(t, p, c.method, c.path, c.body).wantClerk(t, c.status, c.code, c.clerk)
			if got := a.param(); got != c.param {
				t.Fatalf("param_name %q, want %q: %s", got, c.param, a.raw)
			}
		})
	}
	// Nothing changed.
	a := admin(t, p, "GET", "/phone/v1/users/u1", "").want(t, 200, "")
	if nums := a.body["phone_numbers"].([]any); len(nums) != 1 || a.body["primary_phone_number_id"] != nums[0].(map[string]any)["id"] {
		t.Fatalf("u1 after the refusals: %s", a.raw)
	}
}

// The users routes: routing first (404, 405), then the key (401), then
// the store (501 on the http store).
func TestAdminUsersAuthAndRouting(t *testing.T) {
	p := sqliteAdmin(t, "")
	userAuth := "Bearer " + userToken(t, "someone")
	routes := []struct{ method, path string }{
		{"GET", "/phone/v1/users/someone"}, {"PATCH", "/phone/v1/users/someone"},
		{"GET", "/phone/v1/users?phone_number=%2B33612345678"}, {"GET", "/phone/v1/users/count?phone_number=%2B33612345678"},
	}
	for _, r := range routes {
		for _, auth := range []string{"", "Bearer sk_test_wrong", userAuth} {
			call(t, p, r.method, r.path, auth, "").wantClerk(t, 401, "unauthorized", "authentication_invalid")
		}
	}
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/phone/v1/users/someone", "GET, HEAD, PATCH"},
		{"POST", "/phone/v1/users", "GET, HEAD"},
		{"PATCH", "/phone/v1/users/count", "GET, HEAD"},
	} {
		a := admin(t, p, c.method, c.path, "").want(t, 405, "method_not_allowed")
		if a.header.Get("Allow") != c.allow {
			t.Fatalf("%s %s: Allow %q, want %q", c.method, c.path, a.header.Get("Allow"), c.allow)
		}
	}
	admin(t, p, "GET", "/phone/v1/users/", "").wantClerk(t, 404, "not_found", "resource_not_found")

	h := provisionPhone(t, adminConfig(`{"backend":"http","url":"http://127.0.0.1:9"}`, ""))
	t.Cleanup(func() { h.Cleanup() })
	for _, r := range routes {
		admin(t, h, r.method, r.path, "").want(t, 501, "not_supported")
	}
}

// The memory store answers the users routes too.
func TestAdminUsersMemoryStore(t *testing.T) {
	p := provisionPhone(t, adminConfig(`{"backend":"memory"}`, ""))
	user := "mem-users-" + itoa(int(time.Now().UnixNano()%1e9))
	admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"+33612345678"}`).want(t, 200, "")
	if got := userIDs(t, admin(t, p, "GET", "/phone/v1/users?phone_number=%2B33612345678", "").want(t, 200, "")); !slices.Contains(got, user) {
		t.Fatalf("list %q, want %s in it", got, user)
	}
	admin(t, p, "GET", "/phone/v1/users/"+user, "").want(t, 200, "")
}

// updateUser changes the number GET /phone shows: the user's open
// challenge goes, and the app hears of it.
func TestAdminUpdateUserIsTold(t *testing.T) {
	recv := newGlueReceiver(t)
	p := sqliteAdmin(t, `,"events":{"url":"`+recv.srv.URL+`","secret":"`+glueEventsSecret+`"}`)
	sink := withInstantSMS(t, p)
	user := "update-user-events"
	tok := "Bearer " + userToken(t, user)
	call(t, p, "POST", "/phone/update", tok, `{"phone_number":"+33612345678"}`).want(t, 200, "")
	second := admin(t, p, "POST", "/phone/v1/phone_numbers", `{"user_id":"`+user+`","phone_number":"+33612345679","verified":true}`).
		want(t, 200, "").body["id"].(string)
	admin(t, p, "PATCH", "/phone/v1/users/"+user, `{"primary_phone_number_id":"`+second+`"}`).want(t, 200, "")
	if v := call(t, p, "POST", "/phone/verify", tok, `{"code":"`+sink.codes["+33612345678"]+`"}`); v.status != 409 || v.body["error"] != "no_pending_verification" {
		t.Fatalf("verify after updateUser: %d %s", v.status, v.raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(recv.events()) < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := recv.events()
	if len(got) != 1 || got[0].Type != events.TypeVerified || got[0].PhoneNumber != "+33612345679" ||
		got[0].PreviousPhoneNumber != "+33612345678" || got[0].UserID != user {
		t.Fatalf("events: %+v", got)
	}
}
