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

// MessageBirdAPI is the base URL of MessageBird's (Bird's) REST API.
const MessageBirdAPI = "https://rest.messagebird.com"

// MessageBirdConfig configures the MessageBird SMS provider.
type MessageBirdConfig struct {
	// Name used by provider_id and in metrics; default "messagebird".
	Name string
	// Access key, sent as "Authorization: AccessKey <key>".
	AccessKey string
	// Sender: a number (sent without its +) or an alphanumeric id of at
	// most 11 characters.
	Originator string
	// BaseURL replaces MessageBirdAPI (tests, proxies).
	BaseURL string
}

type messageBird struct {
	name       string
	endpoint   string
	auth       string
	originator string
	client     *http.Client
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
	case cfg.Originator == "":
		return nil, errors.New("sms messagebird: originator is required")
	}
	base, err := baseURL("messagebird", cfg.BaseURL, MessageBirdAPI)
	if err != nil {
		return nil, err
	}
	p := &messageBird{name: cfg.Name, endpoint: base + "/messages", auth: "AccessKey " + cfg.AccessKey,
		originator: senderID(cfg.Originator), client: defaultClient(client)}
	if p.name == "" {
		p.name = "messagebird"
	}
	return p, nil
}

func (p *messageBird) Name() string { return p.name }

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
	r := messageBirdRequest{Originator: p.originator, Recipients: []string{msisdn(m.To)}, Body: m.Body, Reference: m.ID}
	if !isGSM7(m.Body) {
		r.DataCoding = "unicode"
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%w: messagebird: encoding message: %w", ErrDeliveryFailed, err)
	}
	status, answer, err := apiCall{
		provider:    "messagebird",
		url:         p.endpoint,
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
