package sms

import (
	"context"

	"go.uber.org/zap"
)

// logProvider is the dev-only provider: it "delivers" by writing the whole
// message, code included, to the log. This is the one place a code may be
// logged, which is why it logs at WARN and the Caddy glue warns at start.
type logProvider struct {
	allChannels
	logger *zap.Logger
}

// NewLog returns the "log" provider. A nil logger discards everything.
func NewLog(logger *zap.Logger) Provider {
	if logger == nil {
		logger = zap.NewNop()
	}
	return logProvider{logger: logger}
}

func (logProvider) Name() string { return "log" }

func (p logProvider) Send(ctx context.Context, m Message) error {
	p.logger.Warn("sms (log provider, not delivered)",
		zap.String("id", m.ID),
		zap.String("to", m.To),
		zap.String("body", m.Body),
		zap.String("purpose", m.Purpose),
		zap.String("channel", ChannelOf(m)),
		zap.String("locale", localeOrDefault(m.Locale)),
	)
	return nil
}

// localeOrDefault is the locale a provider reports: "en" when none was set.
func localeOrDefault(l string) string {
	if l == "" {
		return "en"
	}
	return l
}
