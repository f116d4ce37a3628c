package e2e

import (
	"net/http"
	"testing"
)

const echoPhone = `respond "user={http.request.header.X-Phone-User} number={http.request.header.X-Phone-Number} verified={http.request.header.X-Phone-Verified} var={vars.phone_number} auth={http.auth.user.id}"`

// inject_headers tells the app who is calling and with which number; a
// client cannot forge the headers, and nothing is set without a valid token.
func TestInjectHeaders(t *testing.T) {
	e := newEnv(t, site{phone: "inject_headers", upstream: echoPhone})
	u := uniqueUser(t, "ann")
	tok := token(t, u)

	r := e.get("/app", tok, http.Header{"X-Phone-Number": {"+19999999999"}})
	if r.raw != "user="+u+" number= verified=false var= auth="+u {
		t.Fatalf("no number yet: %q", r.raw)
	}
	verifyNumber(t, e, u, tok, "+33612345678")
	r = e.get("/app", tok, nil)
	if r.raw != "user="+u+" number=+33612345678 verified=true var=+33612345678 auth="+u {
		t.Fatalf("verified: %q", r.raw)
	}
	for _, bad := range []string{"", "not-a-token"} {
		r = e.get("/app", bad, http.Header{"X-Phone-Number": {"+19999999999"}, "X-Phone-Verified": {"true"}, "X-Phone-User": {"mallory"}})
		if r.status != 200 || r.raw != "user= number= verified= var= auth=" {
			t.Fatalf("token %q: %d %q", bad, r.status, r.raw)
		}
	}
}

// require_verified: 401 without a valid token, 403 phone_not_verified
// without a verified number, the app otherwise; other paths are not gated.
func TestRequireVerified(t *testing.T) {
	e := newEnv(t, site{phone: "require_verified /checkout*", upstream: `respond "app"`})
	u := uniqueUser(t, "ben")
	tok := token(t, u)

	r := e.get("/checkout/cart", "", nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="phone"` {
		t.Fatalf("no token: %d %v %s", r.status, r.header, r.raw)
	}
	if r = e.get("/checkout", "garbage", nil); r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	r = e.get("/checkout", tok, nil)
	if r.status != 403 || r.body["error"] != "phone_not_verified" {
		t.Fatalf("no number: %d %s", r.status, r.raw)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	if r = e.get("/CHECKOUT", tok, nil); r.status != 403 {
		t.Fatalf("unverified number (path case changed): %d %s", r.status, r.raw)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")
	if r = e.get("/checkout", tok, nil); r.status != 200 || r.raw != "app" {
		t.Fatalf("verified: %d %s", r.status, r.raw)
	}
	if r = e.get("/elsewhere", "", nil); r.status != 200 {
		t.Fatalf("ungated path: %d", r.status)
	}
}

// get is a GET with optional bearer token and extra headers.
func (e *env) get(path, tok string, h http.Header) response {
	e.t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return e.send(req)
}
