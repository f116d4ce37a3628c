package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Clerk's own backend SDK (@clerk/backend 3.25), unmodified, with
// createClerkClient({secretKey: <admin api_key>, apiUrl: <site>/phone})
// driving the admin endpoints (SPEC §7).

const clerkKey = "sk_test_e2e0123456789abcdefghij"

// clerkSite enables the admin endpoints on the test's store.
func clerkSite(store string) site {
	return site{phone: "admin {\n\t\t\tapi_key " + clerkKey + "\n\t\t}", store: store}
}

// clerkAPIURL is the SDK's apiUrl: the site and the prefix, on 127.0.0.1.
func clerkAPIURL() string { return fmt.Sprintf("http://127.0.0.1:%d/phone", httpPort) }

// clerkNumbers are n French mobile numbers no other test of this run uses.
func clerkNumbers(n int) []string {
	base := time.Now().UnixNano() / 1000 % 1_000_000
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+3361%07d", (base*10+int64(i))%10_000_000)
	}
	return out
}

// clerkResult is one answer of clerk.mjs.
type clerkResult struct {
	sdkResult
	Class string `json:"class"`
}

// clerk runs clerk.mjs <action> against this site with the admin key (or
// key, when given).
func clerk(t *testing.T, node, action string, params map[string]any) clerkResult {
	t.Helper()
	p := map[string]any{"apiUrl": clerkAPIURL(), "secretKey": clerkKey}
	for k, v := range params {
		p[k] = v
	}
	r := clerkResult{sdkResult: runSDK(t, node, "clerk.mjs", action, p)}
	if err := json.Unmarshal([]byte(r.raw), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// ok checks a success: the SDK's own PhoneNumber object, with the fields
// it reads.
func (r clerkResult) number(t *testing.T) map[string]any {
	t.Helper()
	if !r.OK || !strings.Contains(r.Class, "PhoneNumber") {
		t.Fatalf("want the SDK's PhoneNumber: %s", r.raw)
	}
	if id, _ := r.Data["id"].(string); !strings.HasPrefix(id, "idn_") {
		t.Fatalf("id: %s", r.raw)
	}
	if l, ok := r.Data["linkedTo"].([]any); !ok || len(l) != 0 {
		t.Fatalf("linkedTo: %s", r.raw)
	}
	return r.Data
}

// apiError checks that the SDK threw a ClerkAPIResponseError with
// Clerk's status and code in errors[0] (SPEC §7): what app code compares
// as err.status and err.errors[0].code.
func (r clerkResult) apiError(t *testing.T, status int, code, param string) {
	t.Helper()
	errs, _ := r.Error["errors"].([]any)
	if r.OK || r.Code != status || r.Error["isClerkAPIResponseError"] != true || len(errs) != 1 {
		t.Fatalf("want ClerkAPIResponseError %d %s: %s", status, code, r.raw)
	}
	e := errs[0].(map[string]any)
	meta, _ := e["meta"].(map[string]any)
	if e["code"] != code || e["message"] == "" || e["longMessage"] == "" || (param != "" && meta["paramName"] != param) {
		t.Fatalf("errors[0] = %v, want code %q param %q", e, code, param)
	}
}

// create → get → update (primary, reserved) → list → delete, and one
// refusal, through the unmodified SDK; the primary number is the one the
// user API shows throughout.
func TestSDKClerkPhoneNumbers(t *testing.T) {
	node := needSDK(t, "@clerk/backend", "@clerk/shared")
	e := newEnv(t, clerkSite(""))
	u, n := uniqueUser(t, "u"), clerkNumbers(2)
	tok := token(t, u)
	status := func(number any, verified bool) {
		t.Helper()
		st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
		if st.body["phone_number"] != number || st.body["verified"] != verified {
			t.Fatalf("GET /phone = %s, want %v verified=%v", st.raw, number, verified)
		}
	}

	// The first number, typed with spaces: normalised, primary, unverified.
	spaced := n[0][:3] + " " + n[0][3:4] + " " + n[0][4:]
	first := clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": spaced}}).number(t)
	if first["phoneNumber"] != n[0] || first["verification"] != nil || first["reservedForSecondFactor"] != false {
		t.Fatalf("first: %v", first)
	}
	status(n[0], false)

	// A second one, verified by the admin: not primary.
	second := clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": n[1], "verified": true}}).number(t)
	v, _ := second["verification"].(map[string]any)
	if v["status"] != "verified" || v["strategy"] != "admin" {
		t.Fatalf("second: %v", second)
	}
	status(n[0], false)

	got := clerk(t, node, "get", map[string]any{"id": second["id"]}).number(t)
	if got["id"] != second["id"] || got["phoneNumber"] != n[1] {
		t.Fatalf("get: %v", got)
	}

	// Primary and reserved: the user API now shows it; it is the default
	// second factor, being the first reserved.
	up := clerk(t, node, "update", map[string]any{"id": second["id"],
		"args": map[string]any{"primary": true, "reservedForSecondFactor": true}}).number(t)
	if up["reservedForSecondFactor"] != true || up["defaultSecondFactor"] != true {
		t.Fatalf("update: %v", up)
	}
	status(n[1], true)

	// Reserving the unverified number: the SDK throws our error.
	clerk(t, node, "update", map[string]any{"id": first["id"], "args": map[string]any{"reservedForSecondFactor": true}}).
		apiError(t, 422, "phone_number_not_verified", "reserved_for_second_factor")
	// Verifying, for another user, a number this one holds verified.
	clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": uniqueUser(t, "v"), "phoneNumber": n[1], "verified": true}}).
		apiError(t, 422, "form_identifier_exists", "phone_number")
	// The same number twice for this user.
	clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": n[0]}}).
		apiError(t, 422, "form_identifier_exists", "phone_number")
	// A bad number, and no number at all.
	clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": "hello"}}).
		apiError(t, 422, "form_param_format_invalid", "phone_number")
	clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u}}).
		apiError(t, 422, "form_param_missing", "phone_number")
	// An ID no number has.
	clerk(t, node, "update", map[string]any{"id": "idn_00000000000000000000000000000000", "args": map[string]any{"primary": true}}).
		apiError(t, 404, "resource_not_found", "")

	// Our list endpoint (the SDK has no method for it).
	l := e.doAdmin("GET", "/phone/v1/users/"+url.PathEscape(u)+"/phone_numbers", nil).want(t, 200, "")
	data, _ := l.body["data"].([]any)
	if l.body["total_count"] != float64(2) || len(data) != 2 ||
		data[0].(map[string]any)["primary"] != false || data[1].(map[string]any)["primary"] != true {
		t.Fatalf("list: %s", l.raw)
	}

	// Deleting the primary removes the user's number.
	del := clerk(t, node, "delete", map[string]any{"id": second["id"]})
	if !del.OK || del.Data["object"] != "phone_number" || del.Data["id"] != second["id"] || del.Data["deleted"] != true {
		t.Fatalf("delete: %s", del.raw)
	}
	status(nil, false)
	clerk(t, node, "get", map[string]any{"id": second["id"]}).apiError(t, 404, "resource_not_found", "")
	l = e.doAdmin("GET", "/phone/v1/users/"+url.PathEscape(u)+"/phone_numbers", nil).want(t, 200, "")
	if l.body["total_count"] != float64(1) {
		t.Fatalf("list after delete: %s", l.raw)
	}
}

// sdkUser checks a User the SDK built (clerk.mjs prints its fields and
// its primaryPhoneNumber getter) and returns it.
func sdkUser(t *testing.T, v any, id, primary string) map[string]any {
	t.Helper()
	u, _ := v.(map[string]any)
	classes, _ := u["phoneNumberClasses"].([]any)
	cls, _ := u["userClass"].(string)
	if strings.TrimLeft(cls, "_") != "User" || u["id"] != id || u["primaryPhoneNumber"] != primary || len(classes) == 0 {
		t.Fatalf("want the SDK's User %s with primary %s: %v", id, primary, u)
	}
	for _, c := range classes {
		if c, _ := c.(string); strings.TrimLeft(c, "_") != "PhoneNumber" {
			t.Fatalf("phoneNumbers hold %v, want PhoneNumber", classes)
		}
	}
	return u
}

// userList checks getUserList's {data, totalCount} and returns the IDs.
func (r clerkResult) userList(t *testing.T, total int) []string {
	t.Helper()
	list, _ := r.Data["data"].([]any)
	if !r.OK || list == nil || r.Data["totalCount"] != float64(total) {
		t.Fatalf("want %d users in all: %s", total, r.raw)
	}
	ids := []string{}
	for _, u := range list {
		ids = append(ids, u.(map[string]any)["id"].(string))
	}
	return ids
}

// users.getUser, users.updateUser({primaryPhoneNumberID}),
// users.getUserList({phoneNumber}) (which calls getCount too) and
// users.getCount through the unmodified SDK, with a user the admin API
// made and one who verified a number through the user API.
func TestSDKClerkUsers(t *testing.T) {
	node := needSDK(t, "@clerk/backend", "@clerk/shared")
	e := newEnv(t, clerkSite(""))
	u, v, w, n := uniqueUser(t, "u"), uniqueUser(t, "v"), uniqueUser(t, "w"), clerkNumbers(3)
	mk := func(user, number string, verified bool) string {
		t.Helper()
		r := clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": user, "phoneNumber": number, "verified": verified}})
		time.Sleep(3 * time.Millisecond) // users' ages differ
		return r.number(t)["id"].(string)
	}
	first, second := mk(u, n[0], false), mk(u, n[1], true)
	theirs := mk(v, n[0], false) // unverified: two users may hold it
	// w verifies n[2] through the user API, with the code the SMS carried.
	wt := token(t, w)
	e.do("POST", "/phone/update", wt, map[string]any{"phone_number": n[2]}).want(t, 200, "")
	e.do("POST", "/phone/verify", wt, map[string]any{"code": e.sink.last(w).Code}).want(t, 200, "")

	got := sdkUser(t, clerk(t, node, "getUser", map[string]any{"id": u}).Data, u, n[0])
	if got["primaryPhoneNumberId"] != first || len(got["phoneNumbers"].([]any)) != 2 || got["firstName"] != nil {
		t.Fatalf("getUser: %v", got)
	}
	sdkUser(t, clerk(t, node, "getUser", map[string]any{"id": w}).Data, w, n[2])

	// updateUser: the verified number becomes the one GET /phone shows.
	up := sdkUser(t, clerk(t, node, "updateUser", map[string]any{"id": u, "args": map[string]any{"primaryPhoneNumberID": second}}).Data, u, n[1])
	if up["primaryPhoneNumberId"] != second {
		t.Fatalf("updateUser: %v", up)
	}
	if st := e.do("GET", "/phone", token(t, u), nil).want(t, 200, ""); st.body["phone_number"] != n[1] || st.body["verified"] != true {
		t.Fatalf("GET /phone after updateUser: %s", st.raw)
	}

	// getUserList: newest first, with its count; a page; one number as a
	// plain string, written with spaces.
	if ids := clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": []string{n[0]}}}).userList(t, 2); !slices.Equal(ids, []string{v, u}) {
		t.Fatalf("getUserList(n0) = %q, want %q", ids, []string{v, u})
	}
	all := map[string]any{"phoneNumber": n, "orderBy": "created_at", "limit": 2, "offset": 1}
	if ids := clerk(t, node, "getUserList", map[string]any{"args": all}).userList(t, 3); !slices.Equal(ids, []string{v, w}) {
		t.Fatalf("getUserList(all, page 2) = %q, want %q", ids, []string{v, w})
	}
	spaced := n[2][:3] + " " + n[2][3:4] + " " + n[2][4:]
	if ids := clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": spaced}}).userList(t, 1); !slices.Equal(ids, []string{w}) {
		t.Fatalf("getUserList(spaced n2) = %q", ids)
	}
	if c := clerk(t, node, "getCount", map[string]any{"args": map[string]any{"phoneNumber": []string{n[1]}}}); !c.OK || c.Data["count"] != float64(1) {
		t.Fatalf("getCount(n1): %s", c.raw)
	}
	if ids := clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": []string{"+33699999999"}}}).userList(t, 0); len(ids) != 0 {
		t.Fatalf("getUserList(nobody's) = %q", ids)
	}

	// Refusals, as ClerkAPIResponseErrors with Clerk's codes.
	clerk(t, node, "getUser", map[string]any{"id": uniqueUser(t, "nobody")}).apiError(t, 404, "resource_not_found", "")
	clerk(t, node, "updateUser", map[string]any{"id": uniqueUser(t, "nobody"), "args": map[string]any{"primaryPhoneNumberID": first}}).
		apiError(t, 404, "resource_not_found", "")
	clerk(t, node, "updateUser", map[string]any{"id": u, "args": map[string]any{"primaryPhoneNumberID": theirs}}).
		apiError(t, 422, "form_param_format_invalid", "primary_phone_number_id")
	clerk(t, node, "updateUser", map[string]any{"id": u, "args": map[string]any{"firstName": "Ann"}}).
		apiError(t, 400, "invalid_request", "")
	clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": []string{"hello"}}}).
		apiError(t, 422, "form_param_format_invalid", "phone_number")
	clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"limit": 5}}).
		apiError(t, 422, "form_param_missing", "phone_number")
	clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": []string{n[0]}, "emailAddress": []string{"a@example.com"}}}).
		apiError(t, 422, "form_param_format_invalid", "email_address")
	clerk(t, node, "getCount", map[string]any{"secretKey": "sk_test_wrong_key_000000000", "args": map[string]any{"phoneNumber": []string{n[0]}}}).
		apiError(t, 401, "authentication_invalid", "")
	clerk(t, node, "getUser", map[string]any{"secretKey": token(t, u), "id": u}).apiError(t, 401, "authentication_invalid", "")
}

// The SDK with a wrong secret key, or a user's token as its key, gets
// Clerk's 401 authentication_invalid as a ClerkAPIResponseError.
func TestSDKClerkUnauthorized(t *testing.T) {
	node := needSDK(t, "@clerk/backend", "@clerk/shared")
	newEnv(t, clerkSite(""))
	u := uniqueUser(t, "u")
	for _, key := range []string{"sk_test_wrong_key_000000000", token(t, u)} {
		clerk(t, node, "create", map[string]any{"secretKey": key, "args": map[string]any{"userId": u, "phoneNumber": clerkNumbers(1)[0]}}).
			apiError(t, 401, "authentication_invalid", "")
	}
}

// Over HTTP: a user token never reaches the admin routes and the key never
// works on the user routes; answers are application/json exactly.
func TestAdminKeyAndTokensKeptApart(t *testing.T) {
	e := newEnv(t, clerkSite(""))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	r := e.do("GET", "/phone/v1/users/"+url.PathEscape(u)+"/phone_numbers", tok, nil).want(t, 401, "unauthorized")
	if r.header.Get("WWW-Authenticate") != `Bearer realm="phone", error="invalid_token"` || r.body["errors"] == nil {
		t.Fatalf("user token on an admin route: %v %s", r.header, r.raw)
	}
	// Our code at the top, Clerk's in its list.
	if errs, _ := r.body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["code"] != "authentication_invalid" {
		t.Fatalf("Clerk's code on an admin route: %s", r.raw)
	}
	e.do("GET", "/phone", clerkKey, nil).want(t, 401, "unauthorized")
	e.do("POST", "/phone/update", clerkKey, map[string]any{"phone_number": clerkNumbers(1)[0]}).want(t, 401, "unauthorized")
	ok := e.doAdmin("GET", "/phone/v1/users/"+url.PathEscape(u)+"/phone_numbers", nil).want(t, 200, "")
	for _, res := range []response{r, ok} {
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q, want exactly application/json", ct)
		}
	}
}

// Several numbers per user on PostgreSQL too, when the test server is set.
func TestSDKClerkPostgres(t *testing.T) {
	node := needSDK(t, "@clerk/backend", "@clerk/shared")
	dsn := postgresDSN(t)
	e := newEnv(t, clerkSite(fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t}", dsn, newSchema(t, dsn))))
	u, n := uniqueUser(t, "u"), clerkNumbers(2)
	a := clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": n[0], "verified": true}}).number(t)
	b := clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": u, "phoneNumber": n[1], "verified": true,
		"primary": true, "reservedForSecondFactor": true}}).number(t)
	if b["defaultSecondFactor"] != true {
		t.Fatalf("b: %v", b)
	}
	st := e.do("GET", "/phone", token(t, u), nil).want(t, 200, "")
	if st.body["phone_number"] != n[1] {
		t.Fatalf("GET /phone: %s", st.raw)
	}
	clerk(t, node, "delete", map[string]any{"id": a["id"]})
	clerk(t, node, "get", map[string]any{"id": a["id"]}).apiError(t, 404, "resource_not_found", "")
	// The users methods on PostgreSQL.
	sdkUser(t, clerk(t, node, "getUser", map[string]any{"id": u}).Data, u, n[1])
	if ids := clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": n}}).userList(t, 1); !slices.Equal(ids, []string{u}) {
		t.Fatalf("getUserList on postgres = %q", ids)
	}
	clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": []string{n[0]}}}).userList(t, 0)
}

// The http store keeps one number per user: 501 not_supported.
func TestSDKClerkNotSupported(t *testing.T) {
	node := needSDK(t, "@clerk/backend", "@clerk/shared")
	newEnv(t, clerkSite("store http http://127.0.0.1:9"))
	clerk(t, node, "create", map[string]any{"args": map[string]any{"userId": "u", "phoneNumber": clerkNumbers(1)[0]}}).
		apiError(t, 501, "not_supported", "")
	clerk(t, node, "getUser", map[string]any{"id": "u"}).apiError(t, 501, "not_supported", "")
	clerk(t, node, "getUserList", map[string]any{"args": map[string]any{"phoneNumber": clerkNumbers(1)}}).apiError(t, 501, "not_supported", "")
}

// doAdmin is do with the admin key.
func (e *env) doAdmin(method, path string, body any) response {
	e.t.Helper()
	return e.do(method, path, clerkKey, body)
}
