package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MessageBirdAPI is the base URL of MessageBird's (Bird's) REST API (SMS
// and voice messages); MessageBirdConversationsAPI that of its
// Conversations API (WhatsApp).
const (
	MessageBirdAPI              = "https://rest.messagebird.com"
	MessageBirdConversationsAPI = "https://conversations.messagebird.com"
)

// MessageBirdConfig configures the MessageBird provider: SMS through
// /messages, voice through /voicemessages (both with Originator), WhatsApp
// through the Conversations API's /v1/send (with WhatsAppChannelID).
type MessageBirdConfig struct {
	// Name used by provider_id and in metrics; default "messagebird".
	Name string
	// Access key, sent as "Authorization: AccessKey <key>".
	AccessKey string
	// Sender: a number (sent without its +) or an alphanumeric id of at
	// most 11 characters.
	Originator string
	// WhatsAppChannelID is the id of the WhatsApp channel installed in
	// MessageBird: the "from" of a Conversations API send.
	WhatsAppChannelID string
	// WhatsAppTemplate and WhatsAppNamespace, when set, send WhatsApp
	// messages as that approved template (type "hsm", the code its one
	// parameter, the message's locale its language) instead of free text.
	WhatsAppTemplate  string
	WhatsAppNamespace string
	// BaseURL replaces both MessageBirdAPI and MessageBirdConversationsAPI
	// (tests, proxies).
	BaseURL string
}

type messageBird struct {
	name          string
	endpoint      string // /messages
	voice         string // /voicemessages
	conversations string // /v1/send
	auth          string
	originator    string
	channelID     string
	template, ns  string
	client        *http.Client
}

// NewMessageBird returns a provider that POSTs {BaseURL}/messages the JSON
// {"originator","recipients":["<E.164 without +>"],"body","reference"}
// (plus "datacoding":"unicode" when the body is not GSM 7-bit) with
// "Authorization: AccessKey <key>". A 2xx answer (201 Created) means sent.
// A nil client means one with a 10 s timeout that does not follow
// redirects.
func NewMessageBird(cfg MessageBirdConfig, client *http.Client) (Provider, error) {
	switch {
	case cfg.AccessKey == "":
		return nil, errors.New("sms messagebird: access_key is required")
	case cfg.Originator == "" && cfg.WhatsAppChannelID == "":
		return nil, errors.New("sms messagebird: originator is required (or whatsapp_channel_id, for WhatsApp alone)")
	case (cfg.WhatsAppTemplate != "" || cfg.WhatsAppNamespace != "") && cfg.WhatsAppChannelID == "":
		return nil, errors.New("sms messagebird: whatsapp_template needs whatsapp_channel_id")
	case (cfg.WhatsAppTemplate == "") != (cfg.WhatsAppNamespace == ""):
		return nil, errors.New("sms messagebird: whatsapp_template and whatsapp_namespace go together")
	}
	base, err := baseURL("messagebird", cfg.BaseURL, MessageBirdAPI)
	if err != nil {
		return nil, err
	}
	conv := base
	if cfg.BaseURL == "" {
		conv = MessageBirdConversationsAPI
	}
	p := &messageBird{name: cfg.Name, endpoint: base + "/messages", voice: base + "/voicemessages",
		conversations: conv + "/v1/send", auth: "AccessKey " + cfg.AccessKey,
		originator: senderID(cfg.Originator), channelID: cfg.WhatsAppChannelID,
		template: cfg.WhatsAppTemplate, ns: cfg.WhatsAppNamespace, client: defaultClient(client)}
	if p.name == "" {
		p.name = "messagebird"
	}
	return p, nil
}

func (p *messageBird) Name() string { return p.name }

// Carries says which channels the settings allow.
func (p *messageBird) Carries(channel string) bool {
	switch channel {
	case ChannelSMS, ChannelVoice:
		return p.originator != ""
	case ChannelWhatsApp:
		return p.channelID != ""
	}
	return false
}

type messageBirdRequest struct {
	Originator string   `json:"originator"`
	Recipients []string `json:"recipients"`
	Body       string   `json:"body"`
	Reference  string   `json:"reference,omitempty"`
	DataCoding string   `json:"datacoding,omitempty"`
}

// messageBirdAnswer holds the error codes of an error answer; the
// descriptions are never read: they may repeat the number.
type messageBirdAnswer struct {
	Errors []struct {
		Code int `json:"code"`
	} `json:"errors"`
}

func (p *messageBird) Send(ctx context.Context, m Message) error {
	switch ChannelOf(m) {
	case ChannelSMS:
		if p.originator == "" {
			return fmt.Errorf("%w: messagebird: no originator configured", ErrDeliveryFailed)
		}
		return p.sendSMS(ctx, m)
	case ChannelVoice:
		return p.sendVoice(ctx, m)
	case ChannelWhatsApp:
		return p.sendWhatsApp(ctx, m)
	}
	return fmt.Errorf("%w: messagebird: unknown channel", ErrDeliveryFailed)
}

func (p *messageBird) sendSMS(ctx context.Context, m Message) error {
	r := messageBirdRequest{Originator: p.originator, Recipients: []string{msisdn(m.To)}, Body: m.Body, Reference: m.ID}
	if !isGSM7(m.Body) {
		r.DataCoding = "unicode"
	}
	return p.post(ctx, p.endpoint, r)
}

// post sends one JSON request with the access key; a 2xx answer (201
// Created, 202 Accepted) means sent.
func (p *messageBird) post(ctx context.Context, url string, r any) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%w: messagebird: encoding message: %w", ErrDeliveryFailed, err)
	}
	status, answer, err := apiCall{
		provider:    "messagebird",
		url:         url,
		contentType: "application/json",
		body:        body,
		header:      http.Header{"Authorization": {p.auth}},
	}.do(ctx, p.client)
	if err != nil {
		return err
	}
	if is2xx(status) {
		return nil
	}
	var a messageBirdAnswer
	_ = json.Unmarshal(answer, &a)
	if len(a.Errors) == 0 {
		return fmt.Errorf("%w: messagebird: status %d", ErrDeliveryFailed, status)
	}
	codes := make([]string, len(a.Errors))
	for i, e := range a.Errors {
		codes[i] = strconv.Itoa(e.Code)
	}
	word := "code"
	if len(codes) > 1 {
		word = "codes"
	}
	return fmt.Errorf("%w: messagebird: status %d, %s %s", ErrDeliveryFailed, status, word, strings.Join(codes, ", "))
}
