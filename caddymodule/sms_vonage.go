package caddymodule

import (
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(VonageSMS{}) }

// VonageSMS is `sms vonage`: Vonage's SMS API, Messages API (WhatsApp)
// and Voice API. It carries SMS with from, WhatsApp with whatsapp_from,
// voice with application_id and private_key_file.
//
//	sms vonage {
//	    api_key           <key>
//	    api_secret        <secret>
//	    from              <sender>
//	    whatsapp_from     <number>
//	    whatsapp_template <name>     # WhatsApp as this approved template, the code its parameter
//	    application_id    <id>
//	    private_key_file  <pem>      # the application's key: signs the Voice API's JWT
//	    api_url           <url>
//	    name              <name>
//	}
type VonageSMS struct {
	// The API key and secret.
	APIKey    string `json:"api_key,omitempty"`
	APISecret string `json:"api_secret,omitempty"`
	// The sender number or alphanumeric id.
	From string `json:"from,omitempty"`
	// The WhatsApp Business number.
	WhatsAppFrom string `json:"whatsapp_from,omitempty"`
	// An approved WhatsApp template WhatsApp messages are sent as.
	WhatsAppTemplate string `json:"whatsapp_template,omitempty"`
	// The Vonage application (voice) and the file of its private key (PEM).
	ApplicationID  string `json:"application_id,omitempty"`
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// The APIs' base URL instead of Vonage's (tests, proxies).
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
		"from": str(&s.From), "whatsapp_from": str(&s.WhatsAppFrom), "whatsapp_template": str(&s.WhatsAppTemplate),
		"application_id": str(&s.ApplicationID), "private_key_file": str(&s.PrivateKeyFile),
		"api_url": str(&s.APIURL), "name": str(&s.Name)})
}

// Provision expands and checks the settings, reading the key file.
func (s *VonageSMS) Provision(caddy.Context) (err error) {
	x := caddy.NewReplacer().ReplaceKnown
	var key []byte
	if f := x(s.PrivateKeyFile, ""); f != "" {
		if key, err = os.ReadFile(f); err != nil {
			return fmt.Errorf("sms vonage: private_key_file: %w", err)
		}
	}
	s.provider, err = sms.NewVonage(sms.VonageConfig{Name: s.Name, APIKey: x(s.APIKey, ""), APISecret: x(s.APISecret, ""),
		From: x(s.From, ""), WhatsAppFrom: x(s.WhatsAppFrom, ""), WhatsAppTemplate: x(s.WhatsAppTemplate, ""),
		ApplicationID: x(s.ApplicationID, ""), PrivateKeyPEM: key, BaseURL: x(s.APIURL, "")}, nil)
	return err
}

// Provider returns the sender.
func (s *VonageSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*VonageSMS)(nil)
	_ caddy.Provisioner     = (*VonageSMS)(nil)
	_ caddyfile.Unmarshaler = (*VonageSMS)(nil)
)
