package sms

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// Chain is the failover list of the `sms` lines: providers are tried in
// order until one accepts the message.
type Chain struct {
	// Logger, when set, gets one WARN line per provider failure (provider
	// name and masked number; never the body or the code).
	Logger *zap.Logger
	// Mask hides the number in those lines. The host sets the one it uses
	// everywhere else (caddymodule: numbers.Mask, which keeps the country
	// code); nil means MaskNumber.
	Mask func(number string) string

	providers []Provider
}

// NewChain returns a chain of the non-nil providers, in order.
func NewChain(providers ...Provider) *Chain {
	c := &Chain{}
	for _, p := range providers {
		if p != nil {
			c.providers = append(c.providers, p)
		}
	}
	return c
}

// Names lists the providers in order.
func (c *Chain) Names() []string {
	names := make([]string, len(c.providers))
	for i, p := range c.providers {
		names[i] = p.Name()
	}
	return names
}

// Carries reports whether some provider of the chain carries channel.
func (c *Chain) Carries(channel string) bool {
	for _, p := range c.providers {
		if Carries(p, channel) {
			return true
		}
	}
	return false
}

// Send delivers m through the first provider, in order, that carries its
// channel and accepts it, or through the provider named m.ProviderID
// alone. The error wraps ErrDeliveryFailed and every provider's cause.
func (c *Chain) Send(ctx context.Context, m Message) error {
	channel := ChannelOf(m)
	var providers []Provider
	if m.ProviderID != "" {
		for _, p := range c.providers {
			if p.Name() == m.ProviderID {
				providers = []Provider{p}
				break
			}
		}
		if providers == nil {
			// The id comes from the request; it is not echoed.
			return fmt.Errorf("%w: unknown provider_id", ErrDeliveryFailed)
		}
		if !Carries(providers[0], channel) {
			return fmt.Errorf("%w: provider_id does not carry %s", ErrDeliveryFailed, channel)
		}
	} else {
		for _, p := range c.providers {
			if Carries(p, channel) {
				providers = append(providers, p)
			}
		}
	}
	if len(providers) == 0 {
		return fmt.Errorf("%w: no provider configured for %s", ErrDeliveryFailed, channel)
	}
	var errs causes
	for _, p := range providers {
		// A canceled request should not burn the next provider's budget.
		if err := ctx.Err(); err != nil {
			errs = append(errs, cause{err: err})
			break
		}
		err := p.Send(ctx, m)
		if err == nil {
			return nil
		}
		errs = append(errs, cause{name: p.Name(), err: err})
		if c.Logger != nil {
			c.Logger.Warn("sms provider failed",
				zap.String("provider", p.Name()),
				zap.String("channel", channel),
				zap.String("to", c.mask(m.To)),
				zap.String("id", m.ID),
				zap.Error(err),
			)
		}
	}
	return fmt.Errorf("%w: %w", ErrDeliveryFailed, errs)
}

func (c *Chain) mask(number string) string {
	if c.Mask != nil {
		return c.Mask(number)
	}
	return MaskNumber(number)
}

// MaskNumber hides a phone number for a log line, knowing nothing of
// country codes: a "+" and 8 to 20 digits keep their length and their
// last 2 digits ("+33612345678" → "+*********78"); anything else becomes
// "****".
func MaskNumber(number string) string {
	const opaque = "****"
	digits, ok := strings.CutPrefix(number, "+")
	if !ok || len(digits) < 8 || len(digits) > 20 ||
		strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return opaque
	}
	return "+" + strings.Repeat("*", len(digits)-2) + digits[len(digits)-2:]
}

type cause struct {
	name string // provider; "" for the context's error
	err  error
}

// causes lists the providers' errors on one line (errors.Join uses newlines,
// awkward in a log field) and keeps them reachable by errors.Is/As.
type causes []cause

func (c causes) Error() string {
	var b strings.Builder
	prefix := ErrDeliveryFailed.Error()
	for i, e := range c {
		if i > 0 {
			b.WriteString("; ")
		}
		if e.name != "" {
			b.WriteString(e.name)
			b.WriteString(": ")
		}
		// Each cause already wraps ErrDeliveryFailed; say it once.
		msg := strings.TrimPrefix(strings.TrimPrefix(e.err.Error(), prefix), ": ")
		if msg == "" {
			msg = "failed"
		}
		b.WriteString(msg)
	}
	return b.String()
}

func (c causes) Unwrap() []error {
	errs := make([]error, len(c))
	for i, e := range c {
		errs[i] = e.err
	}
	return errs
}

var _ Sender = (*Chain)(nil)
