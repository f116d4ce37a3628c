package caddymodule

import (
	"errors"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(WebhookSMS{}) }

// WebhookSMS is `sms webhook`: each message is POSTed, signed, to a
// gateway of the operator's.
//
//	sms webhook <url> {
//	    secret <secret>
//	    name   <name>
//	}
type WebhookSMS struct {
	// The gateway URL, http:// or https:// (internal gateways).
	URL string `json:"url,omitempty"`
	// The signing secret of X-Phone-Signature.
	Secret string `json:"secret,omitempty"`
	// Name used by provider_id and in metrics; default webhook.
	Name string `json:"name,omitempty"`

	provider sms.Provider
}

// CaddyModule returns the Caddy module information.
func (WebhookSMS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: smsNamespace + ".webhook", New: func() caddy.Module { return new(WebhookSMS) }}
}

// UnmarshalCaddyfile reads the URL and the block.
func (s *WebhookSMS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.Errf("sms webhook: want a URL")
	}
	s.URL = d.Val()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "sms webhook", map[string]setting{"name": str(&s.Name), "secret": str(&s.Secret)})
}

// Provision expands and checks the settings.
func (s *WebhookSMS) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	u := repl.ReplaceKnown(s.URL, "")
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return errors.New("sms webhook: url must be http:// or https://")
	}
	s.provider = sms.NewWebhook(s.Name, u, repl.ReplaceKnown(s.Secret, ""), nil)
	return nil
}

// Provider returns the sender.
func (s *WebhookSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*WebhookSMS)(nil)
	_ caddy.Provisioner     = (*WebhookSMS)(nil)
	_ caddyfile.Unmarshaler = (*WebhookSMS)(nil)
)
