package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(VonageSMS{}) }

// VonageSMS is `sms vonage`: Vonage's SMS API.
//
//	sms vonage {
//	    api_key    <key>
//	    api_secret <secret>
//	    from       <sender>
//	    api_url    <url>
//	    name       <name>
//	}
type VonageSMS struct {
	// The API key and secret.
	APIKey    string `json:"api_key,omitempty"`
	APISecret string `json:"api_secret,omitempty"`
	// The sender number or alphanumeric id.
	From string `json:"from,omitempty"`
	// The API's base URL instead of Vonage's (tests, proxies).
	APIURL string `json:"api_url,omitempty"`
	// Name used by provider_id and in metrics; default vonage.
	Name string `json:"name,omitempty"`

	provider sms.Provider
}

// CaddyModule returns the Caddy module information.
func (VonageSMS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: smsNamespace + ".vonage", New: func() caddy.Module { return new(VonageSMS) }}
}

// UnmarshalCaddyfile reads the block.
func (s *VonageSMS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "sms vonage", map[string]setting{"api_key": str(&s.APIKey), "api_secret": str(&s.APISecret),
		"from": str(&s.From), "api_url": str(&s.APIURL), "name": str(&s.Name)})
}

// Provision expands and checks the settings.
func (s *VonageSMS) Provision(caddy.Context) (err error) {
	x := caddy.NewReplacer().ReplaceKnown
	s.provider, err = sms.NewVonage(sms.VonageConfig{Name: s.Name, APIKey: x(s.APIKey, ""), APISecret: x(s.APISecret, ""),
		From: x(s.From, ""), BaseURL: x(s.APIURL, "")}, nil)
	return err
}

// Provider returns the sender.
func (s *VonageSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*VonageSMS)(nil)
	_ caddy.Provisioner     = (*VonageSMS)(nil)
	_ caddyfile.Unmarshaler = (*VonageSMS)(nil)
)
