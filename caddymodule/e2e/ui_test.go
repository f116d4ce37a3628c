package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page at <prefix>/ui (SPEC §10), driven by a real headless Chromium:
// paste a token, change the number, type the texted code, see it verified.

// browser is one headless Chromium tab on a fresh profile, talking to
// 127.0.0.1 only; its console is watched for script errors and CSP
// violations.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// uiBase is the site's address as the browser reaches it: the IPv4
// loopback, so that no name is resolved.
func uiBase() string { return strings.Replace(base, "//localhost:", "//127.0.0.1:", 1) }

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		if onCI() {
			t.Fatalf("the page test needs Chromium on PATH (apt-get install chromium): %v", err)
		}
		t.Skipf("the page test needs Chromium: apt-get install chromium (%v; CI is not set, so this is a skip)", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(900, 1100),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("no-proxy-server", true),
		// Nothing but the loopback: every host name fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first Do starts the browser; it is bound to ctx, so no timeout
	// here (the allocator has its own start timeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs actions with a deadline.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression that yields a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// text is the textContent of the element with id, "" when it is hidden
// (itself or an ancestor), "<none>" when there is no such element.
func (b *browser) text(id string) string {
	b.t.Helper()
	return b.eval(fmt.Sprintf(`(function(){var e=document.getElementById(%q);
		if(!e)return "<none>"; if(!e.checkVisibility())return ""; return e.textContent.trim();})()`, id))
}

// waitText waits until the element with id shows want.
func (b *browser) waitText(id, want string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = b.text(id); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("#%s shows %q, want %q (message: %q %q)", id, got, want, b.text("message-text"), b.text("message-detail"))
}

// screenshot saves the page as PNG in dir (PHONE_UI_SCREENSHOTS, to keep
// it, or a temporary directory) and returns the file's path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	dir := os.Getenv("PHONE_UI_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// checkClean fails on any script error, CSP violation or other console
// error, and on any request the page made outside its own origin. The
// network log's "Failed to load resource" for a 4xx API answer is expected.
func (b *browser) checkClean() {
	b.t.Helper()
	time.Sleep(100 * time.Millisecond) // let the last console events arrive
	b.mu.Lock()
	for _, m := range b.console {
		if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") || m.Source == "security" {
			b.t.Errorf("console: %s (%s, source %q)", m, m.URL, m.Source)
		}
	}
	b.mu.Unlock()
	var urls []string
	if err := json.Unmarshal([]byte(b.eval(
		`JSON.stringify(performance.getEntriesByType("resource").map(function(e){return e.name}))`)), &urls); err != nil {
		b.t.Fatal(err)
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, uiBase()+"/") {
			b.t.Errorf("the page fetched %s, outside %s", u, uiBase())
		}
	}
}

// A person pastes a token, changes the number, mistypes the code (the
// page says how many tries are left), then types the right one and sees
// the number verified.
func TestUIUpdateAndVerify(t *testing.T) {
	b := newBrowser(t) // first: without Chromium the test stops here
	e := newEnv(t, site{})
	user := uniqueUser(t, "ui")
	const number = "+14155552671"

	b.do(chromedp.Navigate(uiBase() + "/phone/ui"))
	b.checkClean()
	if got := b.text("api-base"); got != "/phone" {
		t.Fatalf("the page's API base is %q, want /phone", got)
	}
	if got := b.eval(`document.title`); got != "Phone number" {
		t.Errorf("title %q", got)
	}
	b.do(chromedp.SetValue(chromedp.ID("token"), token(t, user)), chromedp.Click(chromedp.ID("use-token")))
	b.waitText("state-user", user)
	b.waitText("state-number", "None")
	b.waitText("state-verified", "No number")
	if b.text("verify") != "" {
		t.Error("the code form shows before any code was sent")
	}

	b.do(chromedp.SendKeys(chromedp.ID("phone"), number), chromedp.Click(chromedp.ID("send")))
	b.waitText("message-text", "Code sent to +1******2671.")
	b.waitText("state-number", number)
	b.waitText("state-verified", "Not verified")
	b.waitText("sent-to", "Enter the code we texted to +1******2671.")
	if got := b.eval(`document.activeElement.id`); got != "code" {
		t.Errorf("focus on #%s after sending, want #code", got)
	}
	if got := b.eval(`document.getElementById("resend").disabled ? "disabled" : "enabled"`); got != "disabled" {
		t.Errorf("Resend is %s during the cooldown", got)
	}
	code := e.sink.last(user).Code

	b.do(chromedp.SendKeys(chromedp.ID("code"), wrongCode(code)), chromedp.Click(chromedp.ID("verify-button")))
	b.waitText("message-text", "The code is not correct.")
	b.waitText("message-detail", "4 attempts left.")
	b.waitText("message-code", "invalid_code")
	b.waitText("state-verified", "Not verified")
	b.screenshot("ui-wrong-code")

	if got := b.eval(`document.activeElement.id`); got != "code" {
		t.Errorf("focus on #%s after a wrong code, want #code", got)
	}
	// Select the wrong code, as the page does, and type over it.
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("code").select()`),
		chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify-button")))
	b.waitText("message-text", number+" is verified.")
	b.waitText("state-verified", "Verified")
	b.waitText("state-number", number)
	if b.text("verify") != "" {
		t.Error("the code form still shows after the number was verified")
	}
	// The page told the truth: the API agrees.
	st := e.do("GET", "/phone", token(t, user), nil).want(t, 200, "")
	if st.body["phone_number"] != number || st.body["verified"] != true {
		t.Errorf("GET /phone after the page verified: %s", st.raw)
	}
	b.checkClean()
}

// Under a custom prefix the page finds its API by itself; a change of a
// verified number is pending until verified, Resend sends a new code and
// Cancel drops the change.
func TestUIPendingResendCancel(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t, site{phone: "prefix /account/phone\n\t\totp {\n\t\t\tresend_after 0\n\t\t}"})
	user := uniqueUser(t, "ui")
	tok := token(t, user)
	// A verified number, through the API.
	e.do("POST", "/account/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.do("POST", "/account/phone/verify", tok, map[string]any{"code": e.sink.last(user).Code}).want(t, 200, "")

	b.do(chromedp.Navigate(uiBase() + "/account/phone/ui"))
	b.waitText("api-base", "/account/phone")
	b.do(chromedp.SetValue(chromedp.ID("token"), "Bearer "+tok), chromedp.Click(chromedp.ID("use-token")))
	b.waitText("state-number", "+14155552671")
	b.waitText("state-verified", "Verified")

	b.do(chromedp.SendKeys(chromedp.ID("phone"), "+1 650 253 0000"), chromedp.Click(chromedp.ID("send")))
	b.waitText("message-text", "Code sent to +1******0000.")
	b.waitText("message-detail", "Your current number stays in force until you verify the new one.")
	b.waitText("state-pending", "+16502530000")
	b.waitText("state-number", "+14155552671")
	b.waitText("cancel", "Cancel change")
	sent := e.sink.count(user)

	b.do(chromedp.Click(chromedp.ID("resend")))
	b.waitText("message-text", "New code sent to +1******0000.")
	if n := e.sink.count(user); n != sent+1 {
		t.Fatalf("%d SMS after Resend, want %d", n, sent+1)
	}

	b.do(chromedp.Click(chromedp.ID("cancel")))
	b.waitText("message-text", "The pending change was canceled.")
	b.waitText("state-pending", "")
	b.waitText("state-number", "+14155552671")
	if b.text("verify") != "" {
		t.Error("the code form still shows after Cancel")
	}
	st := e.do("GET", "/account/phone", tok, nil).want(t, 200, "")
	if st.body["pending_phone_number"] != nil {
		t.Errorf("GET after Cancel: %s", st.raw)
	}
	b.checkClean()
}

// The page lets the person pick how the code comes: by a voice call here,
// then a resend by WhatsApp, which this site does not enable (the API's
// 422 is shown, nothing is sent), then by SMS again.
func TestUIChannel(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t, site{phone: "channels sms voice\n\t\totp {\n\t\t\tresend_after 0\n\t\t}"})
	user := uniqueUser(t, "ui")

	b.do(chromedp.Navigate(uiBase() + "/phone/ui"))
	b.do(chromedp.SetValue(chromedp.ID("token"), token(t, user)), chromedp.Click(chromedp.ID("use-token")))
	b.waitText("state-number", "None")
	b.do(chromedp.SendKeys(chromedp.ID("phone"), "+14155552671"), chromedp.SetValue(chromedp.ID("channel"), "voice"),
		chromedp.Click(chromedp.ID("send")))
	b.waitText("message-text", "Code sent by a voice call to +1******2671.")
	b.waitText("sent-to", "Enter the code we read out in a call to +1******2671.")
	if m := e.sink.last(user); m.Channel != "voice" {
		t.Fatalf("the page asked for %q", m.Channel)
	}

	b.do(chromedp.SetValue(chromedp.ID("channel"), "whatsapp"), chromedp.Click(chromedp.ID("resend")))
	b.waitText("message-text", "The whatsapp channel is not enabled.")
	b.waitText("message-code", "channel_not_allowed")
	if n := e.sink.count(user); n != 1 {
		t.Fatalf("%d messages after a refused channel, want 1", n)
	}

	b.do(chromedp.SetValue(chromedp.ID("channel"), "sms"), chromedp.Click(chromedp.ID("resend")))
	b.waitText("message-text", "New code sent to +1******2671.")
	b.waitText("sent-to", "Enter the code we texted to +1******2671.")
	m := e.sink.last(user)
	if m.Channel != "sms" || m.Purpose != "resend" {
		t.Fatalf("resend: %+v", m)
	}
	b.do(chromedp.SendKeys(chromedp.ID("code"), m.Code), chromedp.Click(chromedp.ID("verify-button")))
	b.waitText("message-text", "+14155552671 is verified.")
	b.checkClean()
}
