package sms

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// messageBirdVoiceCreated is /voicemessages' 201 answer (trimmed);
// messageBirdSendAccepted the Conversations API's 202.
const (
	messageBirdVoiceCreated = `{"id":"955c3130353eb3dcd090294a42643365","href":"https://rest.messagebird.com/voicemessages/955c3130353eb3dcd090294a42643365","originator":"15550001111","body":"…","reference":"msg_1","language":"fr-fr","voice":"female","repeat":2,"ifMachine":"continue","recipients":{"totalCount":1,"totalSentCount":1}}`
	messageBirdSendAccepted = `{"id":"e7f61b3a2c0a4ea4a1b6b8a1c9f5f1c3","status":"accepted","fallback":null}`
)

func TestMessageBirdVoice(t *testing.T) {
	for _, tt := range []struct{ originator, want string }{
		{"+15550001111", `,"originator":"15550001111"`},
		{"Acme", ``}, // a caller id must be a number: MessageBird's default then
	} {
		api := newFakeAPI(t, http.StatusCreated, messageBirdVoiceCreated)
		p := newTestMessageBird(t, api, tt.originator)
		m := testMessage()
		m.Channel, m.Locale, m.Body = ChannelVoice, "fr", "Votre code Acme est 4, 8, 2, 9, 1, 3."
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		r := api.only(t)
		checkJSONRequest(t, r, "/voicemessages", `{"recipients":["33612345678"],"body":"Votre code Acme est 4, 8, 2, 9, 1, 3."`+
			tt.want+`,"reference":"msg_1","language":"fr-fr","voice":"female","repeat":2}`)
		if a := r.header.Get("Authorization"); a != "AccessKey "+messageBirdKey {
			t.Errorf("Authorization %q", a)
		}
	}
}

func TestMessageBirdWhatsApp(t *testing.T) {
	api := newFakeAPI(t, http.StatusAccepted, messageBirdSendAccepted)
	p, err := NewMessageBird(MessageBirdConfig{AccessKey: messageBirdKey, WhatsAppChannelID: "619747f69cf940a98fb443140ce9aed2", BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), whatsAppMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkJSONRequest(t, r, "/v1/send", `{"to":"+33612345678","from":"619747f69cf940a98fb443140ce9aed2","type":"text","content":{"text":"Your Acme code is 482913. It expires in 10 min."}}`)
	if a := r.header.Get("Authorization"); a != "AccessKey "+messageBirdKey {
		t.Errorf("Authorization %q", a)
	}
	if Carries(p, ChannelSMS) || Carries(p, ChannelVoice) || !Carries(p, ChannelWhatsApp) {
		t.Error("a WhatsApp-only MessageBird carries sms or voice")
	}
	m := testMessage() // sms: not carried, nothing sent
	assertFails(t, p.Send(context.Background(), m), "messagebird: no originator")
	if api.count() != 1 {
		t.Errorf("%d requests", api.count())
	}
}

func TestMessageBirdWhatsAppTemplate(t *testing.T) {
	api := newFakeAPI(t, http.StatusAccepted, messageBirdSendAccepted)
	p, err := NewMessageBird(MessageBirdConfig{AccessKey: messageBirdKey, Originator: "Acme", WhatsAppChannelID: "chan1",
		WhatsAppTemplate: "acme_otp", WhatsAppNamespace: "20332cd4_f095_b080_d255_35677159aaff", BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := whatsAppMessage()
	m.Locale = "pt-BR"
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkJSONRequest(t, api.only(t), "/v1/send", `{"to":"+33612345678","from":"chan1","type":"hsm","content":{"hsm":{"namespace":"20332cd4_f095_b080_d255_35677159aaff","templateName":"acme_otp","language":{"policy":"deterministic","code":"pt_BR"},"params":[{"default":"482913"}]}}}`)
}

func TestMessageBirdChannelErrors(t *testing.T) {
	api := newFakeAPI(t, http.StatusUnprocessableEntity, `{"errors":[{"code":21,"description":"Channel not found for +33612345678","parameter":"from"}]}`)
	p, err := NewMessageBird(MessageBirdConfig{AccessKey: messageBirdKey, WhatsAppChannelID: "chan1", BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Send(context.Background(), whatsAppMessage())
	assertFails(t, err, "messagebird: status 422, code 21")
	assertSecretsKept(t, err, messageBirdKey, "33612345678", "Channel not found")
	for _, tt := range []struct {
		cfg  MessageBirdConfig
		want string
	}{
		{MessageBirdConfig{AccessKey: "k", Originator: "Acme", WhatsAppTemplate: "t", WhatsAppNamespace: "n"}, "sms messagebird: whatsapp_template needs whatsapp_channel_id"},
		{MessageBirdConfig{AccessKey: "k", WhatsAppChannelID: "c", WhatsAppTemplate: "t"}, "sms messagebird: whatsapp_template and whatsapp_namespace go together"},
	} {
		if _, err := NewMessageBird(tt.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}
