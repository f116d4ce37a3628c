package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// SPEC §4 "Channels": a code by WhatsApp or by a voice call, through each
// provider's documented API (a local server stands in for it), then
// verified; a resend switching channel; a channel not enabled refused.

// spokenRE finds a code read digit by digit ("4, 8, 2, 9, 1, 3").
var spokenRE = regexp.MustCompile(`\d(, \d){3,9}`)

func spokenCode(t *testing.T, text string) string {
	t.Helper()
	s := spokenRE.FindString(text)
	if s == "" {
		t.Fatalf("no spoken code in %q", text)
	}
	return strings.ReplaceAll(s, ", ", "")
}

func writtenCode(t *testing.T, text string) string {
	t.Helper()
	c := codeRE.FindString(text)
	if c == "" {
		t.Fatalf("no code in %q", text)
	}
	return c
}

// channelFlow runs update → code by WhatsApp → verify, then a change of
// the verified number → code by voice → verify, reading each code from
// what the provider's API received (readWhatsApp, readVoice: the code of
// the last request, checked as the API documents it).
func channelFlow(t *testing.T, e *env, readWhatsApp, readVoice func() string) {
	t.Helper()
	u := uniqueUser(t, "u")
	tok := token(t, u)
	first, second := sdkNumber(), "+447911123456"

	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": first, "channel": "whatsapp"}).want(t, 200, "")
	if r.body["status"] != "updated" || r.body["channel"] != "whatsapp" {
		t.Fatalf("update by whatsapp: %s", r.raw)
	}
	code := readWhatsApp()
	r = e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	if r.body["phone_number"] != first || r.body["verified"] != true {
		t.Fatalf("verify: %s", r.raw)
	}

	r = e.do("POST", "/phone/update", tok, map[string]any{"phone_number": second, "channel": "voice", "locale": "fr"}).want(t, 202, "")
	if r.body["status"] != "pending" || r.body["channel"] != "voice" || r.body["masked_phone"] != "+44******3456" {
		t.Fatalf("update by voice: %s", r.raw)
	}
	code = readVoice()
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != second || st.body["verified"] != true {
		t.Fatalf("status: %s", st.raw)
	}
	if e.sink.count(u) != 0 {
		t.Fatal("the default webhook sink got a message")
	}
}

const voiceTemplates = `channels sms whatsapp voice
		template voice "Your {app} code is {code}."
		template voice fr "Votre code {app} est {code}. Je répète : {code}."
		app_name Acme`

func TestChannelsTwilio(t *testing.T) {
	api := newProviderAPI(t, http.StatusCreated, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`)
	const sid = "AC0123456789abcdef0123456789abcdef"
	e := newEnv(t, site{phone: voiceTemplates, sms: `sms twilio {
			account_sid ` + sid + `
			auth_token tw-token-e2e
			from +15550001111
			whatsapp_from whatsapp:+15550002222
			api_url ` + api.srv.URL + `
		}`})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(sid+":tw-token-e2e"))
	last := func(path string) url.Values {
		reqs, bodies := api.calls()
		r := reqs[len(reqs)-1]
		if r.Method != "POST" || r.URL.Path != "/2010-04-01/Accounts/"+sid+path || r.Header.Get("Authorization") != auth ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Fatalf("twilio request %s %s, headers %v", r.Method, r.URL.Path, r.Header)
		}
		f, err := url.ParseQuery(bodies[len(bodies)-1])
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	channelFlow(t, e, func() string {
		f := last("/Messages.json")
		if !strings.HasPrefix(f.Get("To"), "whatsapp:+336") || f.Get("From") != "whatsapp:+15550002222" || len(f) != 3 {
			t.Fatalf("twilio whatsapp form %v", f)
		}
		return writtenCode(t, f.Get("Body"))
	}, func() string {
		f := last("/Calls.json")
		tw := f.Get("Twiml")
		if f.Get("To") != "+447911123456" || f.Get("From") != "+15550001111" || len(f) != 3 ||
			strings.Count(tw, `<Say language="fr-FR">Votre code Acme est `) != 2 || !strings.HasSuffix(tw, "</Say></Response>") {
			t.Fatalf("twilio call form %v", f)
		}
		return spokenCode(t, tw)
	})
}

// vonageKey writes a fresh application key for `private_key_file`.
func vonageKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f := filepath.Join(t.TempDir(), "vonage-app.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k, f
}

func TestChannelsVonage(t *testing.T) {
	api := newProviderAPI(t, http.StatusAccepted, `{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}`)
	key, keyFile := vonageKey(t)
	const app = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
	e := newEnv(t, site{phone: voiceTemplates, sms: `sms vonage {
			api_key vg-key
			api_secret vg-secret
			from +15550001111
			whatsapp_from 15550002222
			application_id ` + app + `
			private_key_file ` + keyFile + `
			api_url ` + api.srv.URL + `
		}`})
	last := func(path string, into any) *http.Request {
		reqs, bodies := api.calls()
		r := reqs[len(reqs)-1]
		if r.Method != "POST" || r.URL.Path != path || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("vonage request %s %s, headers %v", r.Method, r.URL.Path, r.Header)
		}
		dec := json.NewDecoder(strings.NewReader(bodies[len(bodies)-1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("vonage body %s: %v", bodies[len(bodies)-1], err)
		}
		return r
	}
	channelFlow(t, e, func() string {
		var m struct {
			MessageType string `json:"message_type"`
			Text        string `json:"text"`
			To          string `json:"to"`
			From        string `json:"from"`
			Channel     string `json:"channel"`
			ClientRef   string `json:"client_ref"`
		}
		r := last("/v1/messages", &m)
		if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("vg-key:vg-secret")) ||
			m.MessageType != "text" || m.ClientRef == "" || m.Channel != "whatsapp" || m.From != "15550002222" || !strings.HasPrefix(m.To, "336") {
			t.Fatalf("vonage whatsapp %+v, auth %q", m, r.Header.Get("Authorization"))
		}
		return writtenCode(t, m.Text)
	}, func() string {
		var c struct {
			To   []struct{ Type, Number string }
			From struct{ Type, Number string }
			NCCO []struct {
				Action, Text, Language string
				Loop                   int
			}
		}
		r := last("/v1/calls", &c)
		claims := jwt.MapClaims{}
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired()); err != nil || claims["application_id"] != app || claims["jti"] == nil {
			t.Fatalf("vonage JWT %v, claims %v", err, claims)
		}
		if len(c.To) != 1 || c.To[0].Number != "447911123456" || c.From.Number != "15550001111" || len(c.NCCO) != 1 ||
			c.NCCO[0].Action != "talk" || c.NCCO[0].Language != "fr-FR" || c.NCCO[0].Loop != 2 {
			t.Fatalf("vonage call %+v", c)
		}
		return spokenCode(t, c.NCCO[0].Text)
	})
}

func TestChannelsMessageBird(t *testing.T) {
	api := newProviderAPI(t, http.StatusCreated, `{"id":"e8077d803532c0b5937c639b60216938"}`)
	e := newEnv(t, site{phone: voiceTemplates, sms: `sms messagebird {
			access_key mb-key-e2e
			originator +15550001111
			whatsapp_channel_id 619747f69cf940a98fb443140ce9aed2
			api_url ` + api.srv.URL + `
		}`})
	last := func(path string, into any) {
		reqs, bodies := api.calls()
		r := reqs[len(reqs)-1]
		if r.Method != "POST" || r.URL.Path != path || r.Header.Get("Authorization") != "AccessKey mb-key-e2e" ||
			r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("messagebird request %s %s, headers %v", r.Method, r.URL.Path, r.Header)
		}
		dec := json.NewDecoder(strings.NewReader(bodies[len(bodies)-1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("messagebird body %s: %v", bodies[len(bodies)-1], err)
		}
	}
	channelFlow(t, e, func() string {
		var m struct {
			To, From, Type string
			Content        struct{ Text string }
		}
		last("/v1/send", &m)
		if !strings.HasPrefix(m.To, "+336") || m.From != "619747f69cf940a98fb443140ce9aed2" || m.Type != "text" {
			t.Fatalf("messagebird send %+v", m)
		}
		return writtenCode(t, m.Content.Text)
	}, func() string {
		var v struct {
			Recipients                            []string
			Body, Originator, Reference, Language string
			Voice                                 string
			Repeat                                int
		}
		last("/voicemessages", &v)
		if len(v.Recipients) != 1 || v.Recipients[0] != "447911123456" || v.Originator != "15550001111" ||
			v.Language != "fr-fr" || v.Repeat != 2 || v.Reference == "" {
			t.Fatalf("messagebird voice %+v", v)
		}
		return spokenCode(t, v.Body)
	})
}

// A resend may switch channel: the new code goes by it (the webhook body
// says which), the old code no longer verifies, the new one does; the
// events tell the channel of the code verified.
func TestChannelsResendSwitches(t *testing.T) {
	rcv := newEventReceiver(t)
	e := newEnv(t, site{phone: "channels sms whatsapp voice\notp {\n resend_after 0s\n}\n" + rcv.line()})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber()}).want(t, 200, "")
	old := e.sink.last(u)
	if old.Channel != "sms" {
		t.Fatalf("default channel %q", old.Channel)
	}
	r := e.do("POST", "/phone/resend", tok, map[string]any{"channel": "voice"}).want(t, 200, "")
	if r.body["channel"] != "voice" || r.body["status"] != "sent" {
		t.Fatalf("resend: %s", r.raw)
	}
	msg := e.sink.last(u)
	if msg.Channel != "voice" || msg.Purpose != "resend" || spokenCode(t, msg.Body) != msg.Code {
		t.Fatalf("resent message %+v", msg)
	}
	if old.Code != msg.Code {
		e.do("POST", "/phone/verify", tok, map[string]any{"code": old.Code}).want(t, 400, "invalid_code")
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": msg.Code}).want(t, 200, "")
	got := rcv.waitFor(u, 2, 10e9)
	if got[0].Type != "phone.updated" || got[0].Channel != "sms" || got[1].Type != "phone.verified" || got[1].Channel != "voice" {
		t.Fatalf("events %+v", got)
	}
	// The metrics count the sends by channel.
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	m, _ := io.ReadAll(res.Body)
	for _, want := range []string{`caddy_phone_sms_sends_total{channel="sms",provider="webhook",result="ok"}`,
		`caddy_phone_sms_sends_total{channel="voice",provider="webhook",result="ok"}`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A channel not under `channels` is 422 channel_not_allowed, an unknown
// one 400, and nothing is stored or sent.
func TestChannelsNotAllowedSendsNothing(t *testing.T) {
	e := newEnv(t, site{phone: "channels sms whatsapp"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	r := e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber(), "channel": "voice"}).want(t, 422, "channel_not_allowed")
	if r.body["message"] != "The voice channel is not enabled." {
		t.Fatalf("422: %s", r.raw)
	}
	// An unknown name is refused without being echoed, however long.
	odd := "<b>" + strings.Repeat("x", 4000)
	r = e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber(), "channel": odd}).want(t, 400, "invalid_request")
	if strings.Contains(r.raw, "<b>") || strings.Contains(r.raw, "xxxx") {
		t.Fatalf("the refusal echoes the channel: %s", r.raw)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber(), "channel": []string{"sms"}}).want(t, 400, "invalid_request")
	if st := e.do("GET", "/phone", tok, nil).want(t, 200, ""); st.body["phone_number"] != nil {
		t.Fatalf("stored: %s", st.raw)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber(), "channel": "whatsapp"}).want(t, 200, "")
	e.do("POST", "/phone/resend", tok, map[string]any{"channel": "voice"}).want(t, 422, "channel_not_allowed")
	if n := e.sink.count(u); n != 1 {
		t.Fatalf("%d messages, want the one WhatsApp code", n)
	}
}

// The limits count every message alike, whatever its channel: with
// per_number 3, a code by SMS, a resend by WhatsApp and one by voice use
// the budget up, and a fourth message, by any channel, is refused.
func TestChannelsShareTheLimits(t *testing.T) {
	e := newEnv(t, site{phone: "channels sms whatsapp voice\notp {\n resend_after 0s\n}\nlimits {\n per_number 3 1h\n}"})
	u := uniqueUser(t, "u")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": sdkNumber(), "channel": "sms"}).want(t, 200, "")
	e.do("POST", "/phone/resend", tok, map[string]any{"channel": "whatsapp"}).want(t, 200, "")
	e.do("POST", "/phone/resend", tok, map[string]any{"channel": "voice"}).want(t, 200, "")
	for _, ch := range []string{"sms", "whatsapp", "voice"} {
		r := e.do("POST", "/phone/resend", tok, map[string]any{"channel": ch}).want(t, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: no Retry-After: %s", ch, r.raw)
		}
	}
	if n := e.sink.count(u); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}
