package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// VonageAPI is the base URL of Vonage's (formerly Nexmo's) SMS API.
const VonageAPI = "https://rest.nexmo.com"

// VonageConfig configures the Vonage SMS API provider.
type VonageConfig struct {
	// Name used by provider_id and in metrics; default "vonage".
	Name string
	// API key and secret, sent in the form as api_key and api_secret.
	APIKey    string
	APISecret string
	// Sender: a Vonage number (sent without its +) or an alphanumeric id.
	From string
	// BaseURL replaces VonageAPI (tests, proxies).
	BaseURL string
}

type vonage struct {
	name                   string
	endpoint               string
	apiKey, apiSecret, frm string
	client                 *http.Client
}

// NewVonage returns a provider that POSTs {BaseURL}/sms/json a form with
// api_key, api_secret, from, to (E.164 without the +), text, client-ref
// (the message id) and, when the body is not GSM 7-bit, type=unicode.
// Vonage answers 200 even when it refuses a message: it counts as sent
// only when every part's status is "0". A nil client means one with a
// 10 s timeout that does not follow redirects.
func NewVonage(cfg VonageConfig, client *http.Client) (Provider, error) {
	switch {
	case cfg.APIKey == "":
		return nil, errors.New("sms vonage: api_key is required")
	case cfg.APISecret == "":
		return nil, errors.New("sms vonage: api_secret is required")
	case cfg.From == "":
		return nil, errors.New("sms vonage: from is required")
	}
	base, err := baseURL("vonage", cfg.BaseURL, VonageAPI)
	if err != nil {
		return nil, err
	}
	v := &vonage{name: cfg.Name, endpoint: base + "/sms/json", apiKey: cfg.APIKey, apiSecret: cfg.APISecret,
		frm: senderID(cfg.From), client: defaultClient(client)}
	if v.name == "" {
		v.name = "vonage"
	}
	return v, nil
}

func (v *vonage) Name() string { return v.name }

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
