package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(MessageBirdSMS{}) }

// MessageBirdSMS is `sms messagebird`: MessageBird's SMS API.
//
//	sms messagebird {
//	    access_key <key>
//	    originator <sender>
//	    api_url    <url>
//	    name       <name>
//	}
type MessageBirdSMS struct {
	// The access key.
	AccessKey string `json:"access_key,omitempty"`
	// The sender number or alphanumeric id.
	Originator string `json:"originator,omitempty"`
	// The API's base URL instead of MessageBird's (tests, proxies).
	APIURL string `json:"api_url,omitempty"`
	// Name used by provider_id and in metrics; default messagebird.
	Name string `json:"name,omitempty"`

	provider sms.Provider
}

// CaddyModule returns the Caddy module information.
func (MessageBirdSMS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: smsNamespace + ".messagebird", New: func() caddy.Module { return new(MessageBirdSMS) }}
}

// UnmarshalCaddyfile reads the block.
func (s *MessageBirdSMS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "sms messagebird", map[string]setting{"access_key": str(&s.AccessKey),
		"originator": str(&s.Originator), "api_url": str(&s.APIURL), "name": str(&s.Name)})
}

// Provision expands and checks the settings.
func (s *MessageBirdSMS) Provision(caddy.Context) (err error) {
	x := caddy.NewReplacer().ReplaceKnown
	s.provider, err = sms.NewMessageBird(sms.MessageBirdConfig{Name: s.Name, AccessKey: x(s.AccessKey, ""),
		Originator: x(s.Originator, ""), BaseURL: x(s.APIURL, "")}, nil)
	return err
}

// Provider returns the sender.
func (s *MessageBirdSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*MessageBirdSMS)(nil)
	_ caddy.Provisioner     = (*MessageBirdSMS)(nil)
	_ caddyfile.Unmarshaler = (*MessageBirdSMS)(nil)
)
