// Package sms delivers one-time codes: the Sender interface, the providers
// (log, webhook, …), message templates and the failover chain.
package sms

import (
	"context"
	"errors"
)

// ErrDeliveryFailed: no provider accepted the message.
var ErrDeliveryFailed = errors.New("sms: delivery failed")

// Message is one message: an SMS, a WhatsApp message or a voice call's
// text (Channel). Its JSON form is the webhook provider's body (SPEC §8):
// every field is always present.
type Message struct {
	ID              string            `json:"id"`
	To              string            `json:"to"` // E.164
	Body            string            `json:"body"`
	Code            string            `json:"code"`
	Locale          string            `json:"locale"`  // the template's locale actually used; "en" by default
	Purpose         string            `json:"purpose"` // "update" or "resend"
	UserID          string            `json:"user_id"`
	TemplateOptions map[string]string `json:"template_options"` // {} when none
	// Channel is how the message goes: ChannelSMS ("" means it too),
	// ChannelWhatsApp or ChannelVoice. For a voice message Body is the text
	// read out, its code spelled digit by digit (SpokenCode).
	Channel string `json:"channel"`
	// ProviderID, when set, names the one provider to use (Descope's providerId).
	ProviderID string `json:"-"`
}

// Sender delivers a message or returns an error wrapping ErrDeliveryFailed.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Provider is one named delivery route.
type Provider interface {
	Sender
	Name() string
}
