package sms

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// VonageAPI is the base URL of Vonage's (formerly Nexmo's) SMS API;
// VonageAPIv1 that of its Messages and Voice APIs.
const (
	VonageAPI   = "https://rest.nexmo.com"
	VonageAPIv1 = "https://api.nexmo.com"
)

// VonageConfig configures the Vonage provider: the SMS API for SMS, the
// Messages API for WhatsApp, the Voice API for calls. It carries each
// channel whose settings it has: SMS (From), WhatsApp (WhatsAppFrom),
// voice (ApplicationID and PrivateKeyPEM).
type VonageConfig struct {
	// Name used by provider_id and in metrics; default "vonage".
	Name string
	// API key and secret: sent in the SMS API's form, and as the Messages
	// API's Basic auth. Required for SMS; WhatsApp uses the application's
	// JWT without them.
	APIKey    string
	APISecret string
	// Sender: a Vonage number (sent without its +) or an alphanumeric id.
	// A number is also the caller of voice calls (else Vonage picks one of
	// the account's numbers).
	From string
	// WhatsApp sender: the WhatsApp Business number, E.164 with or
	// without +.
	WhatsAppFrom string
	// WhatsAppTemplate, when set, sends WhatsApp messages as that approved
	// WhatsApp template (message_type template, the code its one
	// parameter, the message's locale its language) instead of free text.
	WhatsAppTemplate string
	// ApplicationID and PrivateKeyPEM (the application's RSA key, PEM)
	// sign the RS256 JWT the Voice API needs.
	ApplicationID string
	PrivateKeyPEM []byte
	// BaseURL replaces both VonageAPI and VonageAPIv1 (tests, proxies).
	BaseURL string
}

type vonage struct {
	name                   string
	endpoint               string // the SMS API
	messages, calls        string // the Messages and Voice APIs
	apiKey, apiSecret, frm string
	whatsappFrom, template string
	appID                  string
	key                    *rsa.PrivateKey // nil: no voice
	client                 *http.Client
}

// NewVonage returns a provider that POSTs {BaseURL}/sms/json a form with
// api_key, api_secret, from, to (E.164 without the +), text, client-ref
// (the message id) and, when the body is not GSM 7-bit, type=unicode.
// Vonage answers 200 even when it refuses a message: it counts as sent
// only when every part's status is "0". A nil client means one with a
// 10 s timeout that does not follow redirects.
//
// WhatsApp messages go to {BaseURL}/v1/messages (channel "whatsapp", Basic
// auth api_key:api_secret, or the application's JWT without them) and
// voice calls to {BaseURL}/v1/calls (a "talk" NCCO read twice, Bearer
// JWT): see vonage_channels.go.
func NewVonage(cfg VonageConfig, client *http.Client) (Provider, error) {
	basicAuth := cfg.From != "" || (cfg.WhatsAppFrom != "" && cfg.ApplicationID == "")
	switch {
	case cfg.From == "" && cfg.WhatsAppFrom == "" && cfg.ApplicationID == "":
		return nil, errors.New("sms vonage: from is required (or whatsapp_from, or application_id and private_key_file for voice)")
	case basicAuth && cfg.APIKey == "":
		return nil, errors.New("sms vonage: api_key is required")
	case basicAuth && cfg.APISecret == "":
		return nil, errors.New("sms vonage: api_secret is required")
	case (cfg.ApplicationID == "") != (len(cfg.PrivateKeyPEM) == 0):
		return nil, errors.New("sms vonage: application_id and private_key_file go together")
	case cfg.WhatsAppTemplate != "" && cfg.WhatsAppFrom == "":
		return nil, errors.New("sms vonage: whatsapp_template needs whatsapp_from")
	}
	if cfg.WhatsAppFrom != "" && !isE164("+"+msisdn(cfg.WhatsAppFrom)) {
		return nil, errors.New("sms vonage: whatsapp_from must be a phone number")
	}
	base, err := baseURL("vonage", cfg.BaseURL, VonageAPI)
	if err != nil {
		return nil, err
	}
	baseV1 := base
	if cfg.BaseURL == "" {
		baseV1 = VonageAPIv1
	}
	v := &vonage{name: cfg.Name, endpoint: base + "/sms/json", messages: baseV1 + "/v1/messages", calls: baseV1 + "/v1/calls",
		apiKey: cfg.APIKey, apiSecret: cfg.APISecret, frm: senderID(cfg.From),
		whatsappFrom: msisdn(cfg.WhatsAppFrom), template: cfg.WhatsAppTemplate, appID: cfg.ApplicationID,
		client: defaultClient(client)}
	if len(cfg.PrivateKeyPEM) > 0 {
		if v.key, err = parseRSAKey(cfg.PrivateKeyPEM); err != nil {
			return nil, fmt.Errorf("sms vonage: private_key_file: %w", err)
		}
	}
	if v.name == "" {
		v.name = "vonage"
	}
	return v, nil
}

func (v *vonage) Name() string { return v.name }

// Carries says which channels the settings allow.
func (v *vonage) Carries(channel string) bool {
	switch channel {
	case ChannelSMS:
		return v.frm != "" && v.apiKey != ""
	case ChannelWhatsApp:
		return v.whatsappFrom != ""
	case ChannelVoice:
		return v.key != nil
	}
	return false
}

// vonageAnswer is the SMS API's answer: one status per message part. Its
// error-text is never read: it may repeat the number.
type vonageAnswer struct {
	Messages []struct {
		Status string `json:"status"`
	} `json:"messages"`
}

// vonageStatus names the SMS API's documented non-zero statuses.
var vonageStatus = map[string]string{
	"1": "throttled", "2": "missing parameters", "3": "invalid parameters", "4": "invalid credentials",
	"5": "internal error", "6": "invalid message", "7": "number barred", "8": "partner account barred",
	"9": "partner quota violation", "10": "too many existing binds", "11": "account not enabled for HTTP",
	"12": "message too long", "14": "invalid signature", "15": "invalid sender address",
	"22": "invalid network code", "23": "invalid callback URL", "29": "non-whitelisted destination",
	"32": "signature and API secret disallowed", "33": "number de-activated",
}

func (v *vonage) Send(ctx context.Context, m Message) error {
	switch ChannelOf(m) {
	case ChannelSMS:
		if !v.Carries(ChannelSMS) {
			return fmt.Errorf("%w: vonage: no sms sender configured", ErrDeliveryFailed)
		}
		return v.sendSMS(ctx, m)
	case ChannelWhatsApp:
		return v.sendWhatsApp(ctx, m)
	case ChannelVoice:
		return v.call(ctx, m)
	}
	return fmt.Errorf("%w: vonage: unknown channel", ErrDeliveryFailed)
}

func (v *vonage) sendSMS(ctx context.Context, m Message) error {
	form := url.Values{
		"api_key":    {v.apiKey},
		"api_secret": {v.apiSecret},
		"from":       {v.frm},
		"to":         {msisdn(m.To)},
		"text":       {m.Body},
	}
	if m.ID != "" {
		form.Set("client-ref", truncate(m.ID, 40))
	}
	if !isGSM7(m.Body) {
		form.Set("type", "unicode")
	}
	status, body, err := apiCall{
		provider:    "vonage",
		url:         v.endpoint,
		contentType: "application/x-www-form-urlencoded",
		body:        []byte(form.Encode()),
	}.do(ctx, v.client)
	if err != nil {
		return err
	}
	if !is2xx(status) {
		return fmt.Errorf("%w: vonage: status %d", ErrDeliveryFailed, status)
	}
	var a vonageAnswer
	if err := json.Unmarshal(body, &a); err != nil || len(a.Messages) == 0 {
		return fmt.Errorf("%w: vonage: status %d, no message status in the answer", ErrDeliveryFailed, status)
	}
	for _, part := range a.Messages {
		if part.Status == "0" {
			continue
		}
		if name, ok := vonageStatus[part.Status]; ok {
			return fmt.Errorf("%w: vonage: status %d, error %s (%s)", ErrDeliveryFailed, status, part.Status, name)
		}
		return fmt.Errorf("%w: vonage: status %d, error %q", ErrDeliveryFailed, status, truncate(part.Status, 8))
	}
	return nil
}

// truncate cuts s to at most n bytes (ids and codes are ASCII).
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
