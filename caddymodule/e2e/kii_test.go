package e2e

import (
	"strings"
	"testing"
)

// Through a real Caddy, without the SDK: only Kii's five calls are served
// under /api/apps/ (the rest, other apps' paths included when they are not
// Kii's shapes, reach the legacy app); an oversized body, another app and
// another user are refused in Kii's shape.
func TestKiiRoutesThroughCaddy(t *testing.T) {
	e := newEnv(t, kiiSite(""))
	u := uniqueUser(t, "u")
	tok := token(t, u)
	hdr := func(app string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok, "x-kii-appid": app,
			"Content-Type": "application/vnd.kii.PhoneNumberModificationRequest+json"}
	}
	users := "/api/apps/" + kiiAppID + "/users/"

	for _, path := range []string{"/api/apps/" + kiiAppID + "/buckets/b/objects", users + u + "/email-address", "/api/other"} {
		if r := e.doRaw("GET", path, hdr(kiiAppID), nil); r.status != 200 || r.raw != "user="+u {
			t.Fatalf("%s: %d %s, want the legacy app", path, r.status, r.raw)
		}
	}
	r := e.doRaw("HEAD", users+"me?disable_cache=1", hdr(kiiAppID), nil)
	if r.status != 200 {
		t.Fatalf("HEAD users/me: %d", r.status)
	}
	for _, c := range []struct {
		method, path, app string
		body              string
		status            int
		code              string
	}{
		{"GET", users + "me", "otherapp", "", 404, "APP_NOT_FOUND"},
		{"GET", "/api/apps/otherapp/users/me", kiiAppID, "", 404, "APP_NOT_FOUND"},
		{"GET", users + "someone-else", kiiAppID, "", 404, "USER_NOT_FOUND"},
		{"PUT", users + u + "/phone-number", kiiAppID, `{"phoneNumber":"` + strings.Repeat("1", 17<<10) + `"}`, 413, "PAYLOAD_TOO_LARGE"},
		{"PUT", users + u + "/phone-number", kiiAppID, `{"phoneNumber":"12"}`, 400, "INVALID_INPUT_DATA"},
		{"POST", users + "me/phone-number/verify", kiiAppID, `{"verificationCode":"123456"}`, 409, "INVALID_ACCOUNT_STATUS"},
	} {
		r := e.doRaw(c.method, c.path, hdr(c.app), []byte(c.body))
		if r.status != c.status || r.body["errorCode"] != c.code || r.body["message"] == nil {
			t.Fatalf("%s %s (app %s): %d %s, want %d %s", c.method, c.path, c.app, r.status, r.raw, c.status, c.code)
		}
	}
	if e.sink.count(u) != 0 {
		t.Fatal("an SMS went out")
	}
}
