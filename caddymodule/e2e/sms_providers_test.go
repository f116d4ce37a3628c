package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// providerAPI stands in for a provider's REST API on 127.0.0.1: it
// records each request and answers status.
type providerAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
}

func newProviderAPI(t *testing.T, status int, answer string) *providerAPI {
	a := &providerAPI{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.reqs, a.bodies = append(a.reqs, r), append(a.bodies, string(b))
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *providerAPI) calls() ([]*http.Request, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.reqs...), append([]string(nil), a.bodies...)
}

// Twilio first in the chain answers 500; MessageBird, second, delivers the
// code, which then verifies. Secrets come from {env.*} placeholders.
func TestSMSProvidersFailover(t *testing.T) {
	twilio := newProviderAPI(t, http.StatusInternalServerError, `{"code":20500,"message":"Internal Server Error","status":500}`)
	bird := newProviderAPI(t, http.StatusCreated, `{"id":"e8077d803532c0b5937c639b60216938","recipients":{"totalCount":1,"totalSentCount":1}}`)
	t.Setenv("PHONE_E2E_TWILIO_TOKEN", "tw-token-e2e")
	t.Setenv("PHONE_E2E_MB_KEY", "mb-key-e2e")

	e := newEnv(t, site{sms: `sms twilio {
			account_sid AC0123456789abcdef0123456789abcdef
			auth_token {env.PHONE_E2E_TWILIO_TOKEN}
			from +15550001111
			api_url ` + twilio.srv.URL + `
		}
		sms messagebird {
			access_key {env.PHONE_E2E_MB_KEY}
			originator Acme
			api_url ` + bird.srv.URL + `
			name bird
		}`})
	u := uniqueUser(t, "carol")
	tok := token(t, u)

	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+33 6 12 34 56 78"}).want(t, 200, "")
	if r.body["status"] != "updated" || r.body["masked_phone"] != "+33*****5678" {
		t.Fatalf("update: %s", r.raw)
	}

	treqs, tbodies := twilio.calls()
	if len(treqs) != 1 {
		t.Fatalf("twilio got %d requests, want 1", len(treqs))
	}
	if treqs[0].URL.Path != "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json" ||
		treqs[0].Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("AC0123456789abcdef0123456789abcdef:tw-token-e2e")) {
		t.Errorf("twilio request %s, auth %q", treqs[0].URL.Path, treqs[0].Header.Get("Authorization"))
	}
	if f, _ := url.ParseQuery(tbodies[0]); f.Get("To") != "+33612345678" || f.Get("From") != "+15550001111" || f.Get("Body") == "" {
		t.Errorf("twilio form %q", tbodies[0])
	}

	breqs, bbodies := bird.calls()
	if len(breqs) != 1 {
		t.Fatalf("messagebird got %d requests, want 1", len(breqs))
	}
	if breqs[0].Method != "POST" || breqs[0].URL.Path != "/messages" || breqs[0].Header.Get("Authorization") != "AccessKey mb-key-e2e" ||
		breqs[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("messagebird request %s %s, headers %v", breqs[0].Method, breqs[0].URL.Path, breqs[0].Header)
	}
	var msg struct {
		Originator string   `json:"originator"`
		Recipients []string `json:"recipients"`
		Body       string   `json:"body"`
		Reference  string   `json:"reference"`
	}
	if err := json.Unmarshal([]byte(bbodies[0]), &msg); err != nil {
		t.Fatalf("messagebird body %q: %v", bbodies[0], err)
	}
	if msg.Originator != "Acme" || len(msg.Recipients) != 1 || msg.Recipients[0] != "33612345678" || msg.Reference == "" {
		t.Errorf("messagebird body %s", bbodies[0])
	}
	code := codeRE.FindString(msg.Body)
	if code == "" {
		t.Fatalf("no code in %q", msg.Body)
	}
	if e.sink.count(u) != 0 {
		t.Error("the default webhook sink got a message")
	}

	v := e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	if v.body["status"] != "verified" || v.body["phone_number"] != "+33612345678" || v.body["verified"] != true {
		t.Fatalf("verify: %s", v.raw)
	}

	// provider_id picks MessageBird by its configured name alone.
	r = e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671", "provider_id": "bird"}).want(t, 202, "")
	if treqs, _ = twilio.calls(); len(treqs) != 1 {
		t.Errorf("provider_id bird still called twilio (%d calls)", len(treqs))
	}
	if breqs, _ = bird.calls(); len(breqs) != 2 {
		t.Errorf("messagebird got %d requests, want 2", len(breqs))
	}
}
