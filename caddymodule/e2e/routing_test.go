package e2e

import (
	"strings"
	"testing"
)

// Routing comes first: an unknown path under the prefix is 404 and a wrong
// method 405 with Allow, whatever the token.
func TestRoutingBeforeAuth(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "u")
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/phone/nope", 404, "not_found", ""},
		{"POST", "/phone/update/x", 404, "not_found", ""},
		{"GET", "/phone/", 404, "not_found", ""},
		{"GET", "/phone/update", 405, "method_not_allowed", "POST"},
		{"POST", "/phone", 405, "method_not_allowed", "GET"},
		{"PUT", "/phone/pending", 405, "method_not_allowed", "DELETE"},
		{"DELETE", "/phone/verify", 405, "method_not_allowed", "POST"},
		{"GET", "/phone/resend", 405, "method_not_allowed", "POST"},
	}
	for _, tok := range []string{"", "garbage", token(t, u)} {
		for _, c := range cases {
			r := e.do(c.method, c.path, tok, nil)
			if r.status != c.status || r.body["error"] != c.code {
				t.Errorf("%s %s (token %.8q): %d %s, want %d %s", c.method, c.path, tok, r.status, r.raw, c.status, c.code)
				continue
			}
			if m, _ := r.body["message"].(string); m == "" {
				t.Errorf("%s %s: no message: %s", c.method, c.path, r.raw)
			}
			allow := r.header.Get("Allow")
			if c.allow != "" && !allowHas(allow, c.allow) {
				t.Errorf("%s %s: Allow %q, want it to hold %s", c.method, c.path, allow, c.allow)
			}
			if c.allow != "" && allowHas(allow, c.method) {
				t.Errorf("%s %s: Allow %q holds the refused method", c.method, c.path, allow)
			}
			if h := r.header.Get("WWW-Authenticate"); h != "" {
				t.Errorf("%s %s: routing error carries WWW-Authenticate %q", c.method, c.path, h)
			}
		}
	}
}

func allowHas(allow, method string) bool {
	for _, m := range strings.Split(allow, ",") {
		if strings.TrimSpace(m) == method {
			return true
		}
	}
	return false
}

// Only the prefix itself and paths below it are ours: /phonebook belongs
// to the app.
func TestNeighbourPathsPassThrough(t *testing.T) {
	e := newEnv(t, site{})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	for _, p := range []string{"/phonebook", "/phones/1", "/phone.json", "/", "/x/phone"} {
		r := e.do("GET", p, tok, nil)
		if r.status != 200 || r.raw != "user="+u {
			t.Errorf("GET %s: %d %q, want the upstream's answer", p, r.status, r.raw)
		}
		r = e.do("POST", p, "", nil)
		if r.status != 200 || r.raw != "user=" {
			t.Errorf("POST %s without a token: %d %q, want the upstream's answer", p, r.status, r.raw)
		}
	}
}

// `prefix /api/phone` moves every route; /phone is then the app's.
func TestCustomPrefix(t *testing.T) {
	e := newEnv(t, site{phone: "prefix /api/phone"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	r := e.do("GET", "/api/phone", tok, nil).want(t, 200, "")
	if r.body["user_id"] != u || r.body["phone_number"] != nil {
		t.Fatal(r.raw)
	}
	e.do("POST", "/api/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.do("POST", "/api/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")
	r = e.do("GET", "/api/phone", tok, nil).want(t, 200, "")
	if r.body["phone_number"] != "+14155552671" || r.body["verified"] != true {
		t.Fatal(r.raw)
	}
	e.do("GET", "/api/phone/nope", tok, nil).want(t, 404, "not_found")
	e.do("GET", "/api/phone/update", tok, nil).want(t, 405, "method_not_allowed")
	e.do("GET", "/api/phone", "", nil).want(t, 401, "unauthorized")
	for _, p := range []string{"/phone", "/phone/update", "/api/phonebook", "/api"} {
		if r := e.do("GET", p, tok, nil); r.status != 200 || r.raw != "user="+u {
			t.Errorf("GET %s: %d %q, want the upstream's answer", p, r.status, r.raw)
		}
	}
}
