package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func TestCaddyfileChannels(t *testing.T) {
	p, err := parsePhone(t, `phone {
		channels sms whatsapp voice
		template "Your {app} code is {code}."
		template fr "Votre code {app} : {code}."
		template voice "Your {app} code is {code}. Again: {code}."
		template voice fr "Votre code {app} est {code}."
		template whatsapp "*{code}* is your {app} code."
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Channels, []string{"sms", "whatsapp", "voice"}) {
		t.Errorf("channels %v", p.Channels)
	}
	b, _ := json.Marshal(p)
	for _, want := range []string{`"template":"Your {app} code is {code}."`, `"templates":{"fr":"Votre code {app} : {code}."}`,
		`"channels":["sms","whatsapp","voice"]`,
		`"channel_templates":{"voice":{"template":"Your {app} code is {code}. Again: {code}.","templates":{"fr":"Votre code {app} est {code}."}},"whatsapp":{"template":"*{code}* is your {app} code."}}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s\nlacks %s", b, want)
		}
	}
	for _, c := range []struct{ input, want string }{
		{"channels sms fax", `channels: unknown channel "fax" (sms, whatsapp, voice), at Caddyfile:2`},
		{"channels sms sms", "channels: sms listed twice"},
		{"channels", "channels: want at least one value"},
		{"channels sms\nchannels voice", "channels: already specified, at Caddyfile:3"},
		{"template voice \"{code}\"\ntemplate voice \"{code}!\"", "template voice: the default template is already specified"},
		{"template voice fr \"{code}\"\ntemplate voice fr \"{code}!\"", "template voice fr: already specified"},
		{"template voice fr x \"{code}\"", "template: want [whatsapp|voice] [<locale>]"},
	} {
		_, err := parsePhone(t, "phone {\n"+c.input+"\n}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.input, err, c.want)
		}
	}
	// "template voice" alone is the locale-less SMS template "voice".
	if p, err := parsePhone(t, "phone {\ntemplate voice\n}"); err != nil || p.Template != "voice" {
		t.Errorf("template voice: %q, %v", p.Template, err)
	}
}

// Provision refuses a channel that no provider carries, naming it and
// what would carry it, before anything is opened.
func TestProvisionChannelsCarried(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ cfg, want string }{
		{`"channels":["sms","voice"],"sms":[{"provider":"twilio","account_sid":"AC1","auth_token":"t","from":"Acme"}]`,
			"channels: voice: no configured provider carries it (needs one of: twilio from (a number), vonage application_id and private_key_file, messagebird originator, webhook, log)"},
		{`"channels":["whatsapp"],"sms":[{"provider":"messagebird","access_key":"k","originator":"Acme"}]`,
			"channels: whatsapp: no configured provider carries it"},
		{`"sms":[{"provider":"twilio","account_sid":"AC1","auth_token":"t","whatsapp_from":"whatsapp:+15550002222"}]`,
			"channels: sms: no configured provider carries it"},
		{`"channels":["sms","pigeon"],"sms":[{"provider":"log"}]`, `channels: unknown channel "pigeon"`},
		{`"channels":["sms"],"channel_templates":{"voice":{"template":"no code"}},"sms":[{"provider":"log"}]`,
			"voice template: the default template must contain {code}"},
		{`"channels":["sms"],"channel_templates":{"sms":{"template":"{code}"}},"sms":[{"provider":"log"}]`,
			`template "sms": templates of their own are for whatsapp and voice`},
	} {
		cfg := `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"sqlite","path":"` + filepath.Join(dir, "never.db") + `"},` + c.cfg + `}`
		err := provisionError(t, cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "never.db")); !os.IsNotExist(err) {
		t.Errorf("a refused config opened the store: %v", err)
	}
}

// The provider blocks take their channels' settings, and the chain knows
// what each carries once loaded (through the metering wrapper).
func TestSMSModulesCarryChannels(t *testing.T) {
	key := filepath.Join(t.TempDir(), "vonage.key")
	if err := os.WriteFile(key, testRSAKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := parsePhone(t, `phone {
		sms twilio {
			account_sid AC1
			auth_token t
			whatsapp_from whatsapp:+15550002222
			content_sid HX0123
		}
		sms vonage {
			application_id app-1
			private_key_file `+key+`
		}
		sms messagebird {
			access_key k
			whatsapp_channel_id chan-1
			whatsapp_template acme_otp
			whatsapp_namespace ns-1
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := initMetrics(nil); err != nil {
		t.Fatal(err)
	}
	raws := make([]string, len(p.SMSRaw))
	for i, r := range p.SMSRaw {
		raws[i] = string(r)
	}
	for i, want := range []string{
		`{"provider":"twilio","account_sid":"AC1","auth_token":"t","whatsapp_from":"whatsapp:+15550002222","content_sid":"HX0123"}`,
		`{"provider":"vonage","application_id":"app-1","private_key_file":"` + key + `"}`,
		`{"provider":"messagebird","access_key":"k","whatsapp_channel_id":"chan-1","whatsapp_template":"acme_otp","whatsapp_namespace":"ns-1"}`,
	} {
		var got, exp any
		_ = json.Unmarshal([]byte(raws[i]), &got)
		_ = json.Unmarshal([]byte(want), &exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("sms[%d]\n got %s\nwant %s", i, raws[i], want)
		}
	}
	chain, err := loadSender(t, raws...)
	if err == nil || !strings.Contains(err.Error(), "channels: sms: no configured provider carries it") {
		t.Fatalf("a chain without SMS, channels unset: %v", err)
	}
	q := &Phone{logger: zap.NewNop()}
	for _, r := range raws {
		q.SMSRaw = append(q.SMSRaw, json.RawMessage(r))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	c := checked{}
	c.rules.Channels = []string{"whatsapp", "voice"}
	if err := q.loadBackends(ctx, &c); err != nil {
		t.Fatal(err)
	}
	chain = c.sender
	if !chain.Carries(sms.ChannelWhatsApp) || !chain.Carries(sms.ChannelVoice) || chain.Carries(sms.ChannelSMS) {
		t.Errorf("chain carries whatsapp %v voice %v sms %v", chain.Carries("whatsapp"), chain.Carries("voice"), chain.Carries("sms"))
	}

	for _, c := range []struct{ raw, want string }{
		{`{"provider":"vonage","application_id":"a","private_key_file":"` + filepath.Join(t.TempDir(), "missing.key") + `"}`, "sms vonage: private_key_file: open"},
		{`{"provider":"vonage","application_id":"a","private_key_file":"` + key + `.nope"}`, "sms vonage: private_key_file:"},
		{`{"provider":"twilio","account_sid":"AC1","auth_token":"t","from":"+15550001111","content_sid":"HX1"}`, "sms twilio: content_sid needs whatsapp_from"},
	} {
		if _, err := loadSender(t, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.raw, err, c.want)
		}
	}
}

// testRSAKeyPEM is a fresh RSA key in PKCS #8 PEM, as Vonage hands out
// an application's key.
func testRSAKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// notify_previous goes by SMS when a provider carries it, else by the
// first channel listed.
func TestNotifyChannel(t *testing.T) {
	log := sms.NewChain(sms.NewLog(nil))
	if got := notifyChannel([]string{"voice", "sms"}, log); got != "sms" {
		t.Errorf("with an SMS carrier: %s", got)
	}
	wa, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: "AC1", AuthToken: "t", WhatsAppFrom: "+15550002222"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := notifyChannel([]string{"whatsapp"}, sms.NewChain(wa)); got != "whatsapp" {
		t.Errorf("WhatsApp only: %s", got)
	}
}
