package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// TwilioAPI is the base URL of Twilio's REST API.
const TwilioAPI = "https://api.twilio.com"

// TwilioConfig configures the Twilio Programmable Messaging provider.
type TwilioConfig struct {
	// Name used by provider_id and in metrics; default "twilio".
	Name string
	// Account SID (AC…): the account in the path and the Basic auth user.
	AccountSID string
	// Auth token: the Basic auth password.
	AuthToken string
	// Sender number (E.164) or alphanumeric sender id.
	From string
	// Messaging Service SID (MG…). When set it is sent instead of From
	// and Twilio picks the sender from the service's pool.
	MessagingServiceSID string
	// BaseURL replaces TwilioAPI (tests, proxies).
	BaseURL string
}

type twilio struct {
	name     string
	endpoint string
	auth     string // "Basic …"
	from     url.Values
	client   *http.Client
}

// NewTwilio returns a provider that creates a Message resource:
// POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json, HTTP Basic
// auth AccountSID:AuthToken, a form with To, Body and MessagingServiceSid
// (or From). A 2xx answer means sent. A nil client means one with a 10 s
// timeout that does not follow redirects.
func NewTwilio(cfg TwilioConfig, client *http.Client) (Provider, error) {
	switch {
	case cfg.AccountSID == "":
		return nil, errors.New("sms twilio: account_sid is required")
	case cfg.AuthToken == "":
		return nil, errors.New("sms twilio: auth_token is required")
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("sms twilio: from or messaging_service_sid is required")
	}
	base, err := baseURL("twilio", cfg.BaseURL, TwilioAPI)
	if err != nil {
		return nil, err
	}
	t := &twilio{
		name:     cfg.Name,
		endpoint: base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		from:     url.Values{},
		client:   defaultClient(client),
	}
	if t.name == "" {
		t.name = "twilio"
	}
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(cfg.AccountSID, cfg.AuthToken)
	t.auth = req.Header.Get("Authorization")
	if cfg.MessagingServiceSID != "" {
		t.from.Set("MessagingServiceSid", cfg.MessagingServiceSID)
	} else {
		t.from.Set("From", cfg.From)
	}
	return t, nil
}

func (t *twilio) Name() string { return t.name }

// twilioAnswer holds the fields read from Twilio's answer: a Message
// resource on success, {"code","message","more_info","status"} on error.
// The message is never read: it may repeat the number.
type twilioAnswer struct {
	Code      int  `json:"code"`
	Status    any  `json:"status"` // a number in errors, a string in a Message
	ErrorCode *int `json:"error_code"`
}

func (t *twilio) Send(ctx context.Context, m Message) error {
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	for k, v := range t.from {
		form[k] = v
	}
	status, body, err := apiCall{
		provider:    "twilio",
		url:         t.endpoint,
		contentType: "application/x-www-form-urlencoded",
		body:        []byte(form.Encode()),
		header:      http.Header{"Authorization": {t.auth}},
	}.do(ctx, t.client)
	if err != nil {
		return err
	}
	var a twilioAnswer
	_ = json.Unmarshal(body, &a)
	if !is2xx(status) {
		if a.Code != 0 {
			return fmt.Errorf("%w: twilio: status %d, code %d", ErrDeliveryFailed, status, a.Code)
		}
		return fmt.Errorf("%w: twilio: status %d", ErrDeliveryFailed, status)
	}
	// A Message created already failed (rare, but documented statuses).
	if s, _ := a.Status.(string); s == "failed" || s == "undelivered" {
		code := ""
		if a.ErrorCode != nil {
			code = ", code " + strconv.Itoa(*a.ErrorCode)
		}
		return fmt.Errorf("%w: twilio: status %d, message %s%s", ErrDeliveryFailed, status, s, code)
	}
	return nil
}
