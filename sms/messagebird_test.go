package sms

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const messageBirdKey = "live_mb0123456789abcdefghij"

// messageBirdCreated is MessageBird's 201 answer to a message create (trimmed).
const messageBirdCreated = `{"id":"e8077d803532c0b5937c639b60216938","href":"https://rest.messagebird.com/messages/e8077d803532c0b5937c639b60216938","direction":"mt","type":"sms","originator":"Acme","body":"Your Acme code is 482913. It expires in 10 min.","reference":"msg_1","validity":null,"gateway":10,"typeDetails":{},"datacoding":"plain","mclass":1,"scheduledDatetime":null,"createdDatetime":"2026-01-01T10:00:00+00:00","recipients":{"totalCount":1,"totalSentCount":1,"totalDeliveredCount":0,"totalDeliveryFailedCount":0,"items":[{"recipient":33612345678,"status":"sent","statusDatetime":"2026-01-01T10:00:00+00:00"}]}}`

// checkMessageBirdRequest checks the documented create request: POST
// /messages, "Authorization: AccessKey <key>", a JSON body of exactly want.
func checkMessageBirdRequest(t *testing.T, r apiRequest, want string) {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/messages" || r.query != "" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.query)
	}
	if a := r.header.Get("Authorization"); a != "AccessKey "+messageBirdKey {
		t.Errorf("Authorization %q", a)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
}

func newTestMessageBird(t *testing.T, api *fakeAPI, originator string) Provider {
	t.Helper()
	p, err := NewMessageBird(MessageBirdConfig{AccessKey: messageBirdKey, Originator: originator, BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMessageBirdRequest(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, messageBirdCreated)
	p := newTestMessageBird(t, api, "Acme")
	if p.Name() != "messagebird" {
		t.Errorf("Name() = %q", p.Name())
	}
	if err := p.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkMessageBirdRequest(t, api.only(t),
		`{"originator":"Acme","recipients":["33612345678"],"body":"Your Acme code is 482913. It expires in 10 min.","reference":"msg_1"}`)
}

// A numeric originator loses its +; a body outside the GSM alphabet is
// sent with datacoding unicode.
func TestMessageBirdUnicodeAndNumericOriginator(t *testing.T) {
	api := newFakeAPI(t, http.StatusCreated, messageBirdCreated)
	p := newTestMessageBird(t, api, "+31612345678")
	m := testMessage()
	m.Body, m.ID = "Tu código de Acme es 482913", ""
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkMessageBirdRequest(t, api.only(t),
		`{"originator":"31612345678","recipients":["33612345678"],"body":"Tu código de Acme es 482913","datacoding":"unicode"}`)
}

func TestMessageBirdErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		answer string
		want   string
	}{
		{"bad key", http.StatusUnauthorized, `{"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)","parameter":"access_key"}]}`,
			"messagebird: status 401, code 2"},
		{"two errors", http.StatusUnprocessableEntity, `{"errors":[{"code":9,"description":"no (correct) recipients found 33612345678","parameter":"recipients"},{"code":25,"description":"Not enough balance","parameter":null}]}`,
			"messagebird: status 422, codes 9, 25"},
		{"no JSON", http.StatusServiceUnavailable, `Service Unavailable`, "messagebird: status 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, tt.status, tt.answer)
			err := newTestMessageBird(t, api, "Acme").Send(context.Background(), testMessage())
			assertFails(t, err, tt.want)
			assertSecretsKept(t, err, messageBirdKey, "incorrect", "recipients found", "balance")
		})
	}
}

func TestMessageBirdConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  MessageBirdConfig
		want string
	}{
		{MessageBirdConfig{Originator: "Acme"}, "sms messagebird: access_key is required"},
		{MessageBirdConfig{AccessKey: "k"}, "sms messagebird: originator is required"},
		{MessageBirdConfig{AccessKey: "k", Originator: "Acme", BaseURL: "/messages"}, "sms messagebird: api_url must be"},
	} {
		if _, err := NewMessageBird(tt.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	p, err := NewMessageBird(MessageBirdConfig{Name: "bird", AccessKey: "k", Originator: "Acme"}, nil)
	if err != nil || p.Name() != "bird" {
		t.Errorf("renamed: %v %v", p, err)
	}
}
