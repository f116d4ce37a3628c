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

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "tw-auth-token-0123456789abcdef"
)

// twilioCreated is Twilio's 201 answer to a Message create (trimmed).
const twilioCreated = `{"account_sid":"AC0123456789abcdef0123456789abcdef","api_version":"2010-04-01","body":"Your Acme code is 482913. It expires in 10 min.","direction":"outbound-api","error_code":null,"error_message":null,"from":"+15550001111","messaging_service_sid":null,"num_segments":"0","sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+33612345678","uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123456789abcdef0123456789abcdef.json"}`

// checkTwilioRequest checks the documented Message create request:
// POST /2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP Basic auth
// AccountSid:AuthToken, a urlencoded form of exactly wantForm.
func checkTwilioRequest(t *testing.T, r apiRequest, wantForm url.Values) {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/2010-04-01/Accounts/"+twilioSID+"/Messages.json" || r.query != "" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.query)
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(twilioSID+":"+twilioToken))
	if got := r.header.Get("Authorization"); got != wantAuth {
		t.Errorf("Authorization %q, want %q", got, wantAuth)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := r.header.Get("Accept"); a != "application/json" {
		t.Errorf("Accept %q", a)
	}
	form, err := url.ParseQuery(r.body)
	if err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if !reflect.DeepEqual(form, wantForm) {
		t.Errorf("form\n got %v\nwant %v", form, wantForm)
	}
}

func TestTwilioRequestWithFrom(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p, err := NewTwilio(TwilioConfig{AccountSID: twilioSID, AuthToken: twilioToken, From: "+15550001111", BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "twilio" {
		t.Errorf("Name() = %q", p.Name())
	}
	m := testMessage()
	m.Locale, m.TemplateOptions, m.ProviderID = "fr", map[string]string{"x": "y"}, "twilio" // none of these is sent
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkTwilioRequest(t, r, url.Values{
		"To":   {"+33612345678"},
		"From": {"+15550001111"},
		"Body": {"Your Acme code is 482913. It expires in 10 min."},
	})
	// The exact bytes: keys sorted, + escaped.
	if want := "Body=Your+Acme+code+is+482913.+It+expires+in+10+min.&From=%2B15550001111&To=%2B33612345678"; r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
}

// With both from and messaging_service_sid configured, only
// MessagingServiceSid is sent: Twilio then picks the sender from the
// service's pool (From would have to be one of the pool's numbers).
func TestTwilioRequestWithMessagingService(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, twilioCreated)
	p, err := NewTwilio(TwilioConfig{Name: "tw-eu", AccountSID: twilioSID, AuthToken: twilioToken, From: "+15550001111",
		MessagingServiceSID: "MG0123456789abcdef0123456789abcdef", BaseURL: api.srv.URL + "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "tw-eu" {
		t.Errorf("Name() = %q", p.Name())
	}
	m := testMessage()
	m.Body = "Votre code Acme est 482913. Il expire dans 10 min. Ça va ?"
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkTwilioRequest(t, api.only(t), url.Values{
		"To":                  {"+33612345678"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
		"Body":                {m.Body},
	})
}

func TestTwilioErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		answer string
		want   []string
	}{
		{"invalid To", http.StatusBadRequest,
			`{"code":21211,"message":"The 'To' number +33612345678 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
			[]string{"twilio: status 400, code 21211"}},
		{"bad credentials", http.StatusUnauthorized,
			`{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`,
			[]string{"twilio: status 401, code 20003"}},
		{"no JSON", http.StatusBadGateway, `<html>bad gateway</html>`, []string{"twilio: status 502"}},
		{"created but failed", http.StatusCreated,
			strings.Replace(strings.Replace(twilioCreated, `"status":"queued"`, `"status":"failed"`, 1), `"error_code":null`, `"error_code":30007`, 1),
			[]string{"twilio: status 201, message failed, code 30007"}},
		{"redirect", http.StatusFound, ``, []string{"twilio: status 302"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, tt.status, tt.answer)
			p, err := NewTwilio(TwilioConfig{AccountSID: twilioSID, AuthToken: twilioToken, From: "+15550001111", BaseURL: api.srv.URL}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Send(context.Background(), testMessage())
			assertFails(t, err, tt.want...)
			assertSecretsKept(t, err, twilioToken, "is not a valid", "Authenticate", "more_info")
		})
	}
}

func TestTwilioConfigErrors(t *testing.T) {
	ok := TwilioConfig{AccountSID: twilioSID, AuthToken: twilioToken, From: "+15550001111"}
	for _, tt := range []struct {
		edit func(*TwilioConfig)
		want string
	}{
		{func(c *TwilioConfig) { c.AccountSID = "" }, "sms twilio: account_sid is required"},
		{func(c *TwilioConfig) { c.AuthToken = "" }, "sms twilio: auth_token is required"},
		{func(c *TwilioConfig) { c.From = "" }, "sms twilio: from or messaging_service_sid is required"},
		{func(c *TwilioConfig) { c.BaseURL = "api.twilio.com" }, "sms twilio: api_url must be an http:// or https:// URL"},
	} {
		c := ok
		tt.edit(&c)
		if _, err := NewTwilio(c, nil); err == nil || err.Error() != tt.want && !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	c := ok
	c.From, c.MessagingServiceSID = "", "MG1"
	if _, err := NewTwilio(c, nil); err != nil {
		t.Errorf("messaging_service_sid alone: %v", err)
	}
}
