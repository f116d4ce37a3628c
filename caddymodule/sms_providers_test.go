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
	// The JSON form (what `caddy adapt` prints) uses the subdirectives' names.
	want := []string{
		`{"provider":"twilio","name":"tw","account_sid":"{env.TWILIO_SID}","auth_token":"{env.TWILIO_TOKEN}","from":"+15550001111","messaging_service_sid":"MG0123","api_url":"http://127.0.0.1:1"}`,
		`{"provider":"vonage","from":"Acme","api_key":"{env.VONAGE_KEY}","api_secret":"{env.VONAGE_SECRET}"}`,
		`{"provider":"messagebird","access_key":"{env.MB_KEY}","originator":"+31612345678","api_url":"https://mb-proxy.internal/"}`,
		`{"provider":"webhook","url":"https://gw/send","secret":"s"}`,
	}
	if len(p.SMSRaw) != len(want) {
		t.Fatalf("%d sms lines, want %d", len(p.SMSRaw), len(want))
	}
	for i, w := range want {
		var got, exp any
		if err := json.Unmarshal(p.SMSRaw[i], &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(w), &exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("sms[%d]\n got %s\nwant %s", i, p.SMSRaw[i], w)
		}
	}

	for _, c := range []struct{ input, want string }{
		{"sms twilio {\n secret x\n}", `sms twilio: unknown subdirective "secret"`},
		{"sms vonage {\n access_key x\n}", `sms vonage: unknown subdirective "access_key"`},
		{"sms messagebird {\n from x\n}", `sms messagebird: unknown subdirective "from"`},
		{"sms webhook http://gw {\n api_url x\n}", `sms webhook: unknown subdirective "api_url"`},
		{"sms log {\n auth_token x\n}", `sms log: unknown subdirective "auth_token"`},
		{"sms twilio https://api.twilio.com", "wrong argument count"},
		{"sms twilio {\n auth_token a b\n}", "auth_token: want exactly one value"},
		{"sms plivo", `sms: unknown provider "plivo" (log, messagebird, twilio, vonage, webhook)`},
		{"store sqlite a.db {\n}\nstore memory", `store: already specified`},
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
	sender, err := loadSender(t, `{"provider":"twilio","account_sid":"AC1","auth_token":"{env.PHONE_TEST_TW_TOKEN}","from":"+15550001111","api_url":"{env.PHONE_TEST_API}"}`,
		`{"provider":"messagebird","name":"bird","access_key":"{env.PHONE_TEST_MB_KEY}","originator":"Acme","api_url":"{env.PHONE_TEST_API}"}`)
	if err != nil {
		t.Fatal(err)
	}
	if names := sender.Names(); !reflect.DeepEqual(names, []string{"twilio", "bird"}) {
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
	for _, c := range []struct{ sc, want string }{
		{`{"provider":"twilio","account_sid":"{env.PHONE_TEST_UNSET}","auth_token":"t","from":"+1"}`, "sms twilio: account_sid is required"},
		{`{"provider":"vonage","api_key":"k","api_secret":"{env.PHONE_TEST_UNSET}","from":"Acme"}`, "sms vonage: api_secret is required"},
		{`{"provider":"messagebird","access_key":"k"}`, "sms messagebird: originator is required"},
		{`{"provider":"twilio","account_sid":"AC1","auth_token":"t","from":"+1","api_url":"localhost:8080"}`, "sms twilio: api_url must be"},
	} {
		if _, err := loadSender(t, c.sc); err == nil || !strings.HasPrefix(err.Error(), "sms: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.sc, err, c.want)
		} else if errors.Is(err, sms.ErrDeliveryFailed) {
			t.Errorf("config error wraps ErrDeliveryFailed: %v", err)
		}
	}
}

// loadSender loads the sms modules of a config, as Provision does, and
// returns their chain.
func loadSender(t *testing.T, providers ...string) (*sms.Chain, error) {
	t.Helper()
	p := &Phone{logger: zap.NewNop()}
	for _, raw := range providers {
		p.SMSRaw = append(p.SMSRaw, json.RawMessage(raw))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var c checked
	err := p.loadBackends(ctx, &c)
	return c.sender, err
}
