package e2e

import (
	"testing"
)

// A code sent before `caddy reload` verifies after it: the challenge cache
// lives in a caddy.UsagePool, whether the config is reloaded as it is or
// changed.
func TestCodeSurvivesReload(t *testing.T) {
	s := site{store: "store sqlite " + t.TempDir() + "/phone.db"}
	e := newEnv(t, s)
	number := map[string]any{"phone_number": "+14155552671"}

	// The same config, provisioned anew.
	u := uniqueUser(t, "same")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, number).want(t, 200, "")
	e.forceReload()
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last(u).Code}).want(t, 200, "")

	// A changed config (same secret, so the same cache).
	v := uniqueUser(t, "changed")
	tv := token(t, v)
	e.do("POST", "/phone/update", tv, map[string]any{"phone_number": "+33612345678"}).want(t, 200, "")
	s.phone = "app_name Changed"
	e.load(s)
	e.do("POST", "/phone/verify", tv, map[string]any{"code": e.sink.last(v).Code}).want(t, 200, "")

	// A pending change (held only in the cache) survives too, and the
	// attempt count with it.
	e.do("POST", "/phone/update", tv, map[string]any{"phone_number": "+447911123456"}).want(t, 202, "")
	code := e.sink.last(v).Code
	e.do("POST", "/phone/verify", tv, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	s.phone = `app_name "Changed again"`
	e.load(s)
	r := e.do("GET", "/phone", tv, nil).want(t, 200, "")
	if r.body["pending_phone_number"] != "+447911123456" {
		t.Fatalf("pending change lost in the reload: %s", r.raw)
	}
	r = e.do("POST", "/phone/verify", tv, map[string]any{"code": wrongCode(code)}).want(t, 400, "invalid_code")
	if r.body["attempts_left"] != float64(3) {
		t.Fatalf("attempt count lost in the reload: %s", r.raw)
	}
	e.do("POST", "/phone/verify", tv, map[string]any{"code": code}).want(t, 200, "")
	r = e.do("GET", "/phone", tv, nil).want(t, 200, "")
	if r.body["phone_number"] != "+447911123456" || r.body["verified"] != true {
		t.Fatal(r.raw)
	}
}

// Rate-limit counters live in the same pooled cache: a reload is no way
// to reset them.
func TestLimitsSurviveReload(t *testing.T) {
	s := site{phone: "limits {\n per_user 1 1h\n}"}
	e := newEnv(t, s)
	tok := token(t, uniqueUser(t, "u"))
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.forceReload()
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678"}).want(t, 429, "rate_limited")
}

// The sqlite store is the lasting truth: a verified number is still there
// after Caddy has run with another database and come back to this one.
func TestSQLiteSurvivesReload(t *testing.T) {
	dir := t.TempDir()
	first := site{store: "store sqlite " + dir + "/first.db"}
	e := newEnv(t, first)
	u := uniqueUser(t, "u")
	tok := token(t, u)
	verifyNumber(t, e, u, tok, "+14155552671")

	e.load(site{store: "store sqlite " + dir + "/second.db"})
	r := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if r.body["phone_number"] != nil {
		t.Fatalf("the second database knows the user: %s", r.raw)
	}

	e.load(first)
	r = e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if r.body["phone_number"] != "+14155552671" || r.body["verified"] != true {
		t.Fatalf("the first database lost the number: %s", r.raw)
	}
}
