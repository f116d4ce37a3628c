package sms

import (
	"context"
	"fmt"
	"strings"
)

// messageBirdVoice is a /voicemessages request: the text read twice in
// the message's language.
type messageBirdVoice struct {
	Recipients []string `json:"recipients"`
	Body       string   `json:"body"`
	Originator string   `json:"originator,omitempty"`
	Reference  string   `json:"reference,omitempty"`
	Language   string   `json:"language"`
	Voice      string   `json:"voice"`
	Repeat     int      `json:"repeat"`
}

func (p *messageBird) sendVoice(ctx context.Context, m Message) error {
	if p.originator == "" {
		return fmt.Errorf("%w: messagebird: no originator configured", ErrDeliveryFailed)
	}
	r := messageBirdVoice{Recipients: []string{msisdn(m.To)}, Body: m.Body, Reference: m.ID,
		Language: strings.ToLower(VoiceLanguage(m.Locale)), Voice: "female", Repeat: 2}
	if isE164("+" + p.originator) {
		r.Originator = p.originator // a caller must be a number: else MessageBird's default
	}
	return p.post(ctx, p.voice, r)
}

// messageBirdSend is a Conversations API /v1/send request: a text, or an
// approved template ("hsm") with the code as its one parameter.
type messageBirdSend struct {
	To      string             `json:"to"`
	From    string             `json:"from"`
	Type    string             `json:"type"`
	Content messageBirdContent `json:"content"`
}

type messageBirdContent struct {
	Text string          `json:"text,omitempty"`
	HSM  *messageBirdHSM `json:"hsm,omitempty"`
}

type messageBirdHSM struct {
	Namespace    string              `json:"namespace"`
	TemplateName string              `json:"templateName"`
	Language     messageBirdLanguage `json:"language"`
	Params       []messageBirdParam  `json:"params"`
}

type messageBirdLanguage struct {
	Policy string `json:"policy"`
	Code   string `json:"code"`
}

type messageBirdParam struct {
	Default string `json:"default"`
}

func (p *messageBird) sendWhatsApp(ctx context.Context, m Message) error {
	if p.channelID == "" {
		return fmt.Errorf("%w: messagebird: no whatsapp_channel_id configured", ErrDeliveryFailed)
	}
	r := messageBirdSend{To: m.To, From: p.channelID, Type: "text", Content: messageBirdContent{Text: m.Body}}
	if p.template != "" {
		r.Type = "hsm"
		r.Content = messageBirdContent{HSM: &messageBirdHSM{Namespace: p.ns, TemplateName: p.template,
			Language: messageBirdLanguage{Policy: "deterministic", Code: whatsAppLanguage(m.Locale)},
			Params:   []messageBirdParam{{Default: m.Code}}}}
	}
	return p.post(ctx, p.conversations, r)
}
