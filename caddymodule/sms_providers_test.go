package caddymodule

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func parsePhone(t *testing.T, input string) (*Phone, error) {
	t.Helper()
	tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	var p Phone
	return &p, p.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
}

func TestCaddyfileSMSProviders(t *testing.T) {
	p, err := parsePhone(t, `phone {
		sms twilio {
			account_sid {env.TWILIO_SID}
			auth_token {env.TWILIO_TOKEN}
			from +15550001111
			messaging_service_sid MG0123
			api_url http://127.0.0.1:1
			name tw
		}
		sms vonage {
			api_key {env.VONAGE_KEY}
			api_secret {env.VONAGE_SECRET}
			from Acme
		}
		sms messagebird {
			access_key {env.MB_KEY}
			originator +31612345678
			api_url https://mb-proxy.internal/
		}
		sms webhook https://gw/send {
			secret s
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []SMSConfig{
		{Provider: "twilio", Name: "tw", AccountSID: "{env.TWILIO_SID}", AuthToken: "{env.TWILIO_TOKEN}", From: "+15550001111",
			MessagingServiceSID: "MG0123", APIURL: "http://127.0.0.1:1"},
		{Provider: "vonage", APIKey: "{env.VONAGE_KEY}", APISecret: "{env.VONAGE_SECRET}", From: "Acme"},
		{Provider: "messagebird", AccessKey: "{env.MB_KEY}", Originator: "+31612345678", APIURL: "https://mb-proxy.internal/"},
		{Provider: "webhook", URL: "https://gw/send", Secret: "s"},
	}
	if !reflect.DeepEqual(p.SMS, want) {
		t.Fatalf("sms\n got %+v\nwant %+v", p.SMS, want)
	}
	// The JSON form (what `caddy adapt` prints) uses the subdirectives' names.
	j, _ := json.Marshal(p.SMS[:3])
	if wantJSON := `[{"provider":"twilio","name":"tw","account_sid":"{env.TWILIO_SID}","auth_token":"{env.TWILIO_TOKEN}","from":"+15550001111","messaging_service_sid":"MG0123","api_url":"http://127.0.0.1:1"},` +
		`{"provider":"vonage","from":"Acme","api_key":"{env.VONAGE_KEY}","api_secret":"{env.VONAGE_SECRET}"},` +
		`{"provider":"messagebird","access_key":"{env.MB_KEY}","originator":"+31612345678","api_url":"https://mb-proxy.internal/"}]`; string(j) != wantJSON {
		t.Errorf("JSON\n got %s\nwant %s", j, wantJSON)
	}

	for _, c := range []struct{ input, want string }{
		{"sms twilio {\n secret x\n}", `sms twilio: unknown subdirective "secret"`},
		{"sms vonage {\n access_key x\n}", `sms vonage: unknown subdirective "access_key"`},
		{"sms messagebird {\n from x\n}", `sms messagebird: unknown subdirective "from"`},
		{"sms webhook http://gw {\n api_url x\n}", `sms webhook: unknown subdirective "api_url"`},
		{"sms log {\n auth_token x\n}", `sms log: unknown subdirective "auth_token"`},
		{"sms twilio https://api.twilio.com", "wrong argument count"},
		{"sms twilio {\n auth_token a b\n}", "auth_token: want exactly one value"},
		{"sms plivo", `sms: unknown provider "plivo" (log, webhook, twilio, vonage, messagebird)`},
	} {
		_, err := parsePhone(t, "phone {\n"+c.input+"\n}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.input, err, c.want)
		}
	}
}

// The glue expands {env.*} in every provider value, names providers as
// configured, and refuses a provider whose required field is empty.
func TestBuildSenderProviders(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, string(b))
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/2010-04-01/") {
			w.WriteHeader(http.StatusServiceUnavailable) // twilio is down
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer api.Close()

	if err := initMetrics(nil); err != nil { // the providers are metered
		t.Fatal(err)
	}
	t.Setenv("PHONE_TEST_TW_TOKEN", "tw-secret-token")
	t.Setenv("PHONE_TEST_MB_KEY", "mb-secret-key")
	t.Setenv("PHONE_TEST_API", api.URL)
	p := &Phone{logger: zap.NewNop(), SMS: []SMSConfig{
		{Provider: "twilio", AccountSID: "AC1", AuthToken: "{env.PHONE_TEST_TW_TOKEN}", From: "+15550001111", APIURL: "{env.PHONE_TEST_API}"},
		{Provider: "messagebird", Name: "bird", AccessKey: "{env.PHONE_TEST_MB_KEY}", Originator: "Acme", APIURL: "{env.PHONE_TEST_API}"},
	}}
	sender, err := p.buildSender(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if names := sender.(*sms.Chain).Names(); !reflect.DeepEqual(names, []string{"twilio", "bird"}) {
		t.Errorf("names %v", names)
	}
	if err := sender.Send(context.Background(), sms.Message{ID: "m1", To: "+33612345678", Body: "code 123456", Code: "123456"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d calls, want twilio then messagebird", len(got))
	}
	if a := got[0].Header.Get("Authorization"); a != "Basic "+base64.StdEncoding.EncodeToString([]byte("AC1:tw-secret-token")) {
		t.Errorf("twilio auth %q", a)
	}
	if f, _ := url.ParseQuery(bodies[0]); f.Get("To") != "+33612345678" || f.Get("From") != "+15550001111" {
		t.Errorf("twilio form %q", bodies[0])
	}
	if a := got[1].Header.Get("Authorization"); got[1].URL.Path != "/messages" || a != "AccessKey mb-secret-key" {
		t.Errorf("messagebird %s auth %q", got[1].URL.Path, a)
	}

	// An unset variable empties the field: the error names it.
	for _, c := range []struct {
		sc   SMSConfig
		want string
	}{
		{SMSConfig{Provider: "twilio", AccountSID: "{env.PHONE_TEST_UNSET}", AuthToken: "t", From: "+1"}, "sms[0]: sms twilio: account_sid is required"},
		{SMSConfig{Provider: "vonage", APIKey: "k", APISecret: "{env.PHONE_TEST_UNSET}", From: "Acme"}, "sms[0]: sms vonage: api_secret is required"},
		{SMSConfig{Provider: "messagebird", AccessKey: "k"}, "sms[0]: sms messagebird: originator is required"},
		{SMSConfig{Provider: "twilio", AccountSID: "AC1", AuthToken: "t", From: "+1", APIURL: "localhost:8080"}, "sms[0]: sms twilio: api_url must be"},
	} {
		p := &Phone{logger: zap.NewNop(), SMS: []SMSConfig{c.sc}}
		if _, err := p.buildSender(caddy.NewReplacer()); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.sc, err, c.want)
		} else if errors.Is(err, sms.ErrDeliveryFailed) {
			t.Errorf("config error wraps ErrDeliveryFailed: %v", err)
		}
	}
}
