package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// A whole flow logged at DEBUG, access log included, leaves no code, no
// token and no full phone number in the logs; masked forms are fine.
func TestLogsRedacted(t *testing.T) {
	dir := t.TempDir()
	errLog, accessLog := dir+"/caddy.log", dir+"/access.log"
	e := newEnv(t, site{
		global:   "log {\n\t\toutput file " + errLog + "\n\t\tlevel DEBUG\n\t}",
		phone:    "otp {\n resend_after 0s\n}",
		upstream: "log {\n\t\toutput file " + accessLog + "\n\t}\n\trespond \"user={http.auth.user.id}\"",
	})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	badTok := tamper(token(t, u, "purpose", "bad"))

	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+1 415 555 2671"}).want(t, 200, "")
	first := e.sink.last(u).Code
	e.do("POST", "/phone/verify", tok, map[string]any{"code": wrongCode(first)}).want(t, 400, "invalid_code")
	e.do("POST", "/phone/resend", tok, nil).want(t, 200, "")
	second := e.sink.last(u).Code
	e.do("POST", "/phone/verify", tok, map[string]any{"code": first}) // void now (unless equal by chance)
	e.do("POST", "/phone/verify", tok, map[string]any{"code": second, "phone_number": "+14155552671"}).want(t, 200, "")
	e.do("GET", "/phone", tok, nil).want(t, 200, "")
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33612345678"}).want(t, 202, "")
	third := e.sink.last(u).Code
	e.do("DELETE", "/phone/pending", tok, nil).want(t, 200, "")
	e.do("GET", "/phone", badTok, nil).want(t, 401, "unauthorized")
	e.do("GET", "/app?token="+"x", tok, nil).want(t, 200, "")

	logs := map[string]string{}
	for _, f := range []string{errLog, accessLog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logs[f] = string(b)
	}
	// The logs are really there, at debug level, with masked numbers.
	all := logs[errLog] + logs[accessLog]
	for _, want := range []string{`"phone update"`, `"bearer token refused"`, "+1******2671", `"/phone/verify"`} {
		if !strings.Contains(all, want) {
			t.Errorf("logs lack %s: the test would prove nothing\n%s", want, all)
		}
	}
	codes := map[string]string{"first code": first, "second code": second, "third code": third}
	tokens := map[string]string{"token": tok, "bad token": badTok,
		"token signature": tok[strings.LastIndexByte(tok, '.')+1:], "token payload": strings.Split(tok, ".")[1]}
	for f, text := range logs {
		for what, c := range codes {
			if regexp.MustCompile(`\b` + c + `\b`).MatchString(text) {
				t.Errorf("%s holds the %s", f, what)
			}
		}
		for what, s := range tokens {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s", f, what)
			}
		}
		for _, n := range []string{"4155552671", "612345678", "415 555 2671"} {
			if strings.Contains(text, n) {
				t.Errorf("%s holds the number %s", f, n)
			}
		}
	}
}
