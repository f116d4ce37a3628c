package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(LogSMS{}) }

// LogSMS is `sms log`, for development: it writes each message, code
// included, to Caddy's log instead of sending it.
//
//	sms log {
//	    name <name>
//	}
type LogSMS struct {
	// Name used by provider_id and in metrics; default log.
	Name string `json:"name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (LogSMS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: smsNamespace + ".log", New: func() caddy.Module { return new(LogSMS) }}
}

// UnmarshalCaddyfile reads the block.
func (s *LogSMS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "sms log", map[string]setting{"name": str(&s.Name)})
}

// Provider warns, once per config, that codes go to the log.
func (s *LogSMS) Provider(logger *zap.Logger) sms.Provider {
	logger.Warn("sms log provider: one-time codes are written to this log; do not use it in production")
	return namedProvider(sms.NewLog(logger.Named("sms")), s.Name)
}

// renamed gives a provider the name a config chose for it.
type renamed struct {
	sms.Provider
	name string
}

func (r renamed) Name() string { return r.name }

// Carries passes on what the provider carries.
func (r renamed) Carries(channel string) bool { return sms.Carries(r.Provider, channel) }

func namedProvider(p sms.Provider, name string) sms.Provider {
	if name == "" {
		return p
	}
	return renamed{p, name}
}

var (
	_ SMSModule             = (*LogSMS)(nil)
	_ caddyfile.Unmarshaler = (*LogSMS)(nil)
)
