package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// DefaultWebhookTimeout bounds one webhook call when no client is given.
const DefaultWebhookTimeout = 10 * time.Second

type webhook struct {
	allChannels // the gateway reads the channel in the body
	name        string
	url         string
	secret      []byte
	client      *http.Client
}

// NewWebhook returns a provider that POSTs each Message as JSON to url,
// signed with secret in X-Phone-Signature (unsigned when secret is "").
// A nil client means one with a 10 s timeout that does not follow redirects.
func NewWebhook(name, url, secret string, client *http.Client) Provider {
	if name == "" {
		name = "webhook"
	}
	if client == nil {
		client = NoRedirectClient(DefaultWebhookTimeout)
	}
	return &webhook{name: name, url: url, secret: []byte(secret), client: client}
}

func (w *webhook) Name() string { return w.name }

// webhookBody fills the defaults SPEC §8 promises: every field present,
// template_options an object, locale "en", channel "sms".
func webhookBody(m Message) ([]byte, error) {
	if m.TemplateOptions == nil {
		m.TemplateOptions = map[string]string{}
	}
	m.Locale = localeOrDefault(m.Locale)
	m.Channel = ChannelOf(m)
	return json.Marshal(m)
}

func (w *webhook) Send(ctx context.Context, m Message) error {
	body, err := webhookBody(m)
	if err != nil {
		return fmt.Errorf("%w: webhook: encoding message: %w", ErrDeliveryFailed, err)
	}
	status, _, err := PostSigned(ctx, w.client, w.url, w.secret, body)
	if err != nil {
		return fmt.Errorf("%w: webhook: %w", ErrDeliveryFailed, err)
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("%w: webhook: status %d", ErrDeliveryFailed, status)
	}
	return nil
}
