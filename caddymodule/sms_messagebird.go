package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(MessageBirdSMS{}) }

// MessageBirdSMS is `sms messagebird`: MessageBird's SMS and voice
// messages and its Conversations API (WhatsApp). It carries SMS and voice
// with originator, WhatsApp with whatsapp_channel_id.
//
//	sms messagebird {
//	    access_key          <key>
//	    originator          <sender>
//	    whatsapp_channel_id <id>
//	    whatsapp_template   <name>    # WhatsApp as this approved template (hsm), the code its parameter
//	    whatsapp_namespace  <namespace>
//	    api_url             <url>
//	    name                <name>
//	}
type MessageBirdSMS struct {
	// The access key.
	AccessKey string `json:"access_key,omitempty"`
	// The sender number or alphanumeric id.
	Originator string `json:"originator,omitempty"`
	// The WhatsApp channel's id in MessageBird.
	WhatsAppChannelID string `json:"whatsapp_channel_id,omitempty"`
	// An approved WhatsApp template (name and namespace) WhatsApp messages
	// are sent as.
	WhatsAppTemplate  string `json:"whatsapp_template,omitempty"`
	WhatsAppNamespace string `json:"whatsapp_namespace,omitempty"`
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
		"originator": str(&s.Originator), "whatsapp_channel_id": str(&s.WhatsAppChannelID),
		"whatsapp_template": str(&s.WhatsAppTemplate), "whatsapp_namespace": str(&s.WhatsAppNamespace),
		"api_url": str(&s.APIURL), "name": str(&s.Name)})
}

// Provision expands and checks the settings.
func (s *MessageBirdSMS) Provision(caddy.Context) (err error) {
	x := caddy.NewReplacer().ReplaceKnown
	s.provider, err = sms.NewMessageBird(sms.MessageBirdConfig{Name: s.Name, AccessKey: x(s.AccessKey, ""),
		Originator: x(s.Originator, ""), WhatsAppChannelID: x(s.WhatsAppChannelID, ""),
		WhatsAppTemplate: x(s.WhatsAppTemplate, ""), WhatsAppNamespace: x(s.WhatsAppNamespace, ""), BaseURL: x(s.APIURL, "")}, nil)
	return err
}

// Provider returns the sender.
func (s *MessageBirdSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*MessageBirdSMS)(nil)
	_ caddy.Provisioner     = (*MessageBirdSMS)(nil)
	_ caddyfile.Unmarshaler = (*MessageBirdSMS)(nil)
)
