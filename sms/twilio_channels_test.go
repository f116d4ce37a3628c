package sms

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// twilioCallQueued is Twilio's 201 answer to a Call create (trimmed).
const twilioCallQueued = `{"account_sid":"AC0123456789abcdef0123456789abcdef","api_version":"2010-04-01","direction":"outbound-api","from":"+15550001111","sid":"CA0123456789abcdef0123456789abcdef","status":"queued","to":"+33612345678","uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/CA0123456789abcdef0123456789abcdef.json"}`

func newTestTwilio(t *testing.T, cfg TwilioConfig) Provider {
	t.Helper()
	cfg.AccountSID, cfg.AuthToken = twilioSID, twilioToken
	p, err := NewTwilio(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func whatsAppMessage() Message {
	m := testMessage()
	m.Channel = ChannelWhatsApp
	return m
}

// WhatsApp goes through the Messages API like SMS, both addresses with
// the whatsapp: prefix.
func TestTwilioWhatsApp(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p := newTestTwilio(t, TwilioConfig{From: "+15550001111", WhatsAppFrom: "whatsapp:+15550002222", BaseURL: api.srv.URL})
	if err := p.Send(context.Background(), whatsAppMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkTwilioRequest(t, r, url.Values{
		"To":   {"whatsapp:+33612345678"},
		"From": {"whatsapp:+15550002222"},
		"Body": {"Your Acme code is 482913. It expires in 10 min."},
	})
	if want := "Body=Your+Acme+code+is+482913.+It+expires+in+10+min.&From=whatsapp%3A%2B15550002222&To=whatsapp%3A%2B33612345678"; r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
}

// whatsapp_from may be a bare number, or a Messaging Service; content_sid
// sends the approved template with the code as {{1}} instead of a body.
func TestTwilioWhatsAppServiceAndContentTemplate(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p := newTestTwilio(t, TwilioConfig{WhatsAppFrom: "MG0123456789abcdef0123456789abcdef",
		ContentSID: "HX0123456789abcdef0123456789abcdef", BaseURL: api.srv.URL})
	if err := p.Send(context.Background(), whatsAppMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkTwilioRequest(t, api.only(t), url.Values{
		"To":                  {"whatsapp:+33612345678"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
		"ContentSid":          {"HX0123456789abcdef0123456789abcdef"},
		"ContentVariables":    {`{"1":"482913"}`},
	})
	if Carries(p, ChannelSMS) || Carries(p, ChannelVoice) || !Carries(p, ChannelWhatsApp) {
		t.Error("a WhatsApp-only Twilio carries other channels")
	}

	api2 := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p = newTestTwilio(t, TwilioConfig{WhatsAppFrom: "+15550002222", BaseURL: api2.srv.URL})
	if err := p.Send(context.Background(), whatsAppMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if f, _ := url.ParseQuery(api2.only(t).body); f.Get("From") != "whatsapp:+15550002222" {
		t.Errorf("From %q", f.Get("From"))
	}
}

// Voice creates a Call whose inline TwiML says the text twice, in the
// message's language, after a pause.
func TestTwilioVoice(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, twilioCallQueued)
	p := newTestTwilio(t, TwilioConfig{From: "+15550001111", BaseURL: api.srv.URL})
	m := testMessage()
	m.Channel, m.Locale = ChannelVoice, "fr"
	m.Body = "Votre code Acme est 4, 8, 2, 9, 1, 3. <Merci> & au revoir"
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	if r.method != http.MethodPost || r.path != "/2010-04-01/Accounts/"+twilioSID+"/Calls.json" || r.query != "" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.query)
	}
	if got, want := r.header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte(twilioSID+":"+twilioToken)); got != want {
		t.Errorf("Authorization %q", got)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	form, _ := url.ParseQuery(r.body)
	say := `<Say language="fr-FR">Votre code Acme est 4, 8, 2, 9, 1, 3. &lt;Merci&gt; &amp; au revoir</Say>`
	want := url.Values{
		"To":    {"+33612345678"},
		"From":  {"+15550001111"},
		"Twiml": {`<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="1"/>` + say + `<Pause length="1"/>` + say + `</Response>`},
	}
	if !reflect.DeepEqual(form, want) {
		t.Errorf("form\n got %v\nwant %v", form, want)
	}
}

func TestTwilioChannelsCarried(t *testing.T) {
	for _, tt := range []struct {
		cfg                 TwilioConfig
		sms, whatsapp, call bool
	}{
		{TwilioConfig{From: "+15550001111"}, true, false, true},
		{TwilioConfig{From: "Acme"}, true, false, false}, // an alphanumeric id cannot call
		{TwilioConfig{MessagingServiceSID: "MG1"}, true, false, false},
		{TwilioConfig{MessagingServiceSID: "MG1", From: "+15550001111", WhatsAppFrom: "whatsapp:+15550002222"}, true, true, true},
	} {
		p := newTestTwilio(t, tt.cfg)
		if Carries(p, ChannelSMS) != tt.sms || Carries(p, ChannelWhatsApp) != tt.whatsapp || Carries(p, ChannelVoice) != tt.call {
			t.Errorf("%+v carries sms %v whatsapp %v voice %v", tt.cfg, Carries(p, ChannelSMS), Carries(p, ChannelWhatsApp), Carries(p, ChannelVoice))
		}
	}
	// A channel it does not carry fails without a request.
	api := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p := newTestTwilio(t, TwilioConfig{From: "Acme", BaseURL: api.srv.URL})
	for _, ch := range []string{ChannelWhatsApp, ChannelVoice, "fax"} {
		m := testMessage()
		m.Channel = ch
		assertFails(t, p.Send(context.Background(), m), "twilio:")
	}
	if api.count() != 0 {
		t.Errorf("%d requests", api.count())
	}
}

func TestTwilioChannelConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  TwilioConfig
		want string
	}{
		{TwilioConfig{ContentSID: "HX1", From: "+15550001111"}, "sms twilio: content_sid needs whatsapp_from"},
		{TwilioConfig{WhatsAppFrom: "whatsapp:Acme"}, "sms twilio: whatsapp_from must be whatsapp:+<E.164 number>"},
		{TwilioConfig{WhatsAppFrom: "15550002222"}, "sms twilio: whatsapp_from must be"},
	} {
		tt.cfg.AccountSID, tt.cfg.AuthToken = twilioSID, twilioToken
		if _, err := NewTwilio(tt.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}
