package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// appPage is the app of TestCORSBrowserSDK: Descope's browser build of
// @descope/core-js-sdk (the package's ES module, unmodified, with its two
// dependencies mapped to their own browser builds), loaded from the
// harness's node_modules. window.descope(call, args) runs one SDK call
// and leaves its SdkResponse, as JSON, in window.__r.
const appPage = `<!doctype html>
<meta charset="utf-8">
<title>app</title>
<script type="importmap">
{"imports": {
  "jwt-decode": "/node_modules/jwt-decode/build/esm/index.js",
  "tslib": "/node_modules/tslib/tslib.es6.mjs"
}}
</script>
<script type="module">
import createSdk from "/node_modules/@descope/core-js-sdk/dist/index.esm.js";
window.descope = (call, a) => {
  window.__r = "";
  const sdk = createSdk({ projectId: a.projectId, baseUrl: a.baseUrl });
  const run = call === "update"
    ? sdk.otp.update.phone.sms(a.loginId, a.phone, a.token)
    : sdk.otp.verify.sms(a.loginId, a.code);
  run.then(
    (r) => { window.__r = JSON.stringify({ ok: r.ok, code: r.code, data: r.data ?? null, error: r.error ?? null }); },
    (e) => { window.__r = JSON.stringify({ thrown: e.name + ": " + e.message }); });
  return "started";
};
window.sdkLoaded = "yes";
</script>
<p>app</p>
`

// sdkAnswer is the SdkResponse the page read, or what the SDK threw.
type sdkAnswer struct {
	OK     bool           `json:"ok"`
	Code   int            `json:"code"`
	Data   map[string]any `json:"data"`
	Error  map[string]any `json:"error"`
	Thrown string         `json:"thrown"`
	raw    string
}

// A real Chromium on a page of one Caddy site (origin A) runs Descope's
// browser SDK from the harness's node_modules against the phone site on
// another origin (B), through CORS with credentials (the SDK sends
// credentials: 'include' and its x-descope-* headers): update, a wrong
// code, then the code the SMS carried; the page reads every answer, the
// error included. The same page on an unlisted origin (C) is blocked
// before the update is sent.
func TestCORSBrowserSDK(t *testing.T) {
	needSDK(t, "@descope/core-js-sdk", "jwt-decode", "tslib")
	pages := t.TempDir()
	if err := os.WriteFile(filepath.Join(pages, "index.html"), []byte(appPage), 0o600); err != nil {
		t.Fatal(err)
	}
	portA, portC := httpPort+1, httpPort+2
	app := func(port int) string {
		return fmt.Sprintf(`:%d {
	handle /node_modules/* {
		root * %q
		file_server
	}
	handle {
		root * %q
		file_server
	}
}
`, port, sdkDir(t), pages)
	}
	originA := fmt.Sprintf("http://127.0.0.1:%d", portA)
	originC := fmt.Sprintf("http://127.0.0.1:%d", portC)
	e := newEnv(t, site{
		jwt:    jwtLines("project_id " + descopeProject),
		phone:  "compat descope\ncors " + originA,
		others: app(portA) + app(portC),
	})
	user, number := uniqueUser(t, "u"), sdkNumber()
	tok := token(t, user)
	b := newBrowser(t)

	open := func(origin string) {
		t.Helper()
		b.do(chromedp.Navigate(origin + "/"))
		deadline := time.Now().Add(10 * time.Second)
		for b.eval(`window.sdkLoaded || ""`) != "yes" {
			if time.Now().After(deadline) {
				t.Fatalf("the SDK did not load on %s", origin)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	call := func(name string, args map[string]any) sdkAnswer {
		t.Helper()
		args["baseUrl"], args["projectId"], args["loginId"] = uiBase(), descopeProject, user
		a, _ := json.Marshal(args)
		b.eval(fmt.Sprintf(`window.descope(%q, %s)`, name, a))
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if r := b.eval(`window.__r || ""`); r != "" {
				ans := sdkAnswer{raw: r}
				if err := json.Unmarshal([]byte(r), &ans); err != nil {
					t.Fatalf("%s: %v: %s", name, err, r)
				}
				return ans
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no answer", name)
		return sdkAnswer{}
	}

	open(originA)
	r := call("update", map[string]any{"phone": number, "token": tok})
	if !r.OK || r.Code != 200 || r.Data["maskedPhone"] != numbers.Mask(number) {
		t.Fatalf("update from origin A: %s", r.raw)
	}
	code := e.sink.last(user).Code
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = call("verify", map[string]any{"code": wrong})
	if r.OK || r.Code != 400 || r.Error["errorCode"] != "E061102" || r.Error["errorDescription"] == "" {
		t.Fatalf("a wrong code from origin A: the page must read the error: %s", r.raw)
	}
	r = call("verify", map[string]any{"code": code})
	u, _ := r.Data["user"].(map[string]any)
	if !r.OK || r.Code != 200 || u["phone"] != number || u["verifiedPhone"] != true {
		t.Fatalf("verify from origin A: %s", r.raw)
	}
	if st := e.do("GET", "/phone", tok, nil).want(t, 200, ""); st.body["phone_number"] != number || st.body["verified"] != true {
		t.Fatalf("after the browser's verify: %s", st.raw)
	}

	// Origin C is not listed: the preflight is refused, the SDK's fetch
	// fails, and no update reaches the phone site.
	open(originC)
	if r = call("update", map[string]any{"phone": sdkNumber(), "token": tok}); r.Thrown != "TypeError: Failed to fetch" {
		t.Fatalf("update from unlisted origin C: %s", r.raw)
	}
	if n := e.sink.count(user); n != 1 {
		t.Fatalf("%d SMS for %s, want 1 (origin A's update)", n, user)
	}
	if st := e.do("GET", "/phone", tok, nil).want(t, 200, ""); st.body["phone_number"] != number || st.body["pending_phone_number"] != nil {
		t.Fatalf("after origin C's attempt: %s", st.raw)
	}
}
