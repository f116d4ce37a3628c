package sms

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const (
	vonageKey    = "a1b2c3d4"
	vonageSecret = "vg-api-secret-0123456789"
)

// vonageSent is the SMS API's answer to an accepted message.
const vonageSent = `{"message-count":"1","messages":[{"to":"33612345678","message-id":"0C000000217B7F02","status":"0","remaining-balance":"15.53590000","message-price":"0.03330000","network":"20801","client-ref":"msg_1"}]}`

// checkVonageRequest checks the documented send request: POST /sms/json,
// a urlencoded form of exactly wantForm, no Authorization header (the
// credentials travel in the form).
func checkVonageRequest(t *testing.T, r apiRequest, wantForm url.Values) {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/sms/json" || r.query != "" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.query)
	}
	if a := r.header.Get("Authorization"); a != "" {
		t.Errorf("Authorization %q", a)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	form, err := url.ParseQuery(r.body)
	if err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if !reflect.DeepEqual(form, wantForm) {
		t.Errorf("form\n got %v\nwant %v", form, wantForm)
	}
}

func newTestVonage(t *testing.T, api *fakeAPI, from string) Provider {
	t.Helper()
	p, err := NewVonage(VonageConfig{APIKey: vonageKey, APISecret: vonageSecret, From: from, BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVonageRequest(t *testing.T) {
	api := newFakeAPI(t, http.StatusOK, vonageSent)
	p := newTestVonage(t, api, "+15550001111")
	if p.Name() != "vonage" {
		t.Errorf("Name() = %q", p.Name())
	}
	if err := p.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkVonageRequest(t, r, url.Values{
		"api_key":    {vonageKey},
		"api_secret": {vonageSecret},
		"from":       {"15550001111"}, // a number goes without its +
		"to":         {"33612345678"}, // E.164 without the +
		"text":       {"Your Acme code is 482913. It expires in 10 min."},
		"client-ref": {"msg_1"},
	})
	if want := "api_key=a1b2c3d4&api_secret=vg-api-secret-0123456789&client-ref=msg_1&from=15550001111&text=Your+Acme+code+is+482913.+It+expires+in+10+min.&to=33612345678"; r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
}

// A body outside the GSM alphabet is sent as type=unicode; an
// alphanumeric sender is kept as it is.
func TestVonageUnicode(t *testing.T) {
	api := newFakeAPI(t, http.StatusOK, vonageSent)
	p := newTestVonage(t, api, "Acme")
	m := testMessage()
	m.Body, m.ID = "Ваш код Acme: 482913", ""
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkVonageRequest(t, api.only(t), url.Values{
		"api_key":    {vonageKey},
		"api_secret": {vonageSecret},
		"from":       {"Acme"},
		"to":         {"33612345678"},
		"text":       {m.Body},
		"type":       {"unicode"},
	})
}

// The SMS API answers 200 when it refuses a message: a non-zero status in
// any part is a failure.
func TestVonageErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		answer string
		want   string
	}{
		{"bad credentials", http.StatusOK, `{"message-count":"1","messages":[{"status":"4","error-text":"Bad Credentials"}]}`,
			"vonage: status 200, error 4 (invalid credentials)"},
		{"second part refused", http.StatusOK, `{"message-count":"2","messages":[{"to":"33612345678","message-id":"1","status":"0"},{"to":"33612345678","status":"29","error-text":"Non White-listed Destination - rejected 33612345678"}]}`,
			"vonage: status 200, error 29 (non-whitelisted destination)"},
		{"unknown status", http.StatusOK, `{"message-count":"1","messages":[{"status":"99","error-text":"?"}]}`,
			`vonage: status 200, error "99"`},
		{"no messages", http.StatusOK, `{"message-count":"0","messages":[]}`, "vonage: status 200, no message status"},
		{"not JSON", http.StatusOK, `<html></html>`, "vonage: status 200, no message status"},
		{"server error", http.StatusInternalServerError, `{}`, "vonage: status 500"},
		{"problem JSON", http.StatusUnauthorized, `{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Invalid credentials supplied"}`, "vonage: status 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, tt.status, tt.answer)
			err := newTestVonage(t, api, "Acme").Send(context.Background(), testMessage())
			assertFails(t, err, tt.want)
			assertSecretsKept(t, err, vonageSecret, vonageKey, "Bad Credentials", "White-listed", "Invalid credentials")
		})
	}
}

func TestVonageConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  VonageConfig
		want string
	}{
		{VonageConfig{APISecret: "s", From: "Acme"}, "sms vonage: api_key is required"},
		{VonageConfig{APIKey: "k", From: "Acme"}, "sms vonage: api_secret is required"},
		{VonageConfig{APIKey: "k", APISecret: "s"}, "sms vonage: from is required"},
		{VonageConfig{APIKey: "k", APISecret: "s", From: "Acme", BaseURL: "rest.nexmo.com"}, "sms vonage: api_url must be"},
	} {
		if _, err := NewVonage(tt.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}
