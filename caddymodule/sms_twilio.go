package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
)

func init() { caddy.RegisterModule(TwilioSMS{}) }

// TwilioSMS is `sms twilio`: Twilio Programmable Messaging (SMS and
// WhatsApp) and Programmable Voice. It carries SMS with from or
// messaging_service_sid, WhatsApp with whatsapp_from, voice with a from
// that is a phone number.
//
//	sms twilio {
//	    account_sid           <sid>
//	    auth_token            <token>
//	    from                  <sender>
//	    messaging_service_sid <sid>
//	    whatsapp_from         whatsapp:+<E.164>|<MG… sid>
//	    content_sid           <HX… sid>      # WhatsApp as this approved template, the code its {{1}}
//	    api_url               <url>
//	    name                  <name>
//	}
type TwilioSMS struct {
	// The Account SID and auth token (HTTP Basic auth).
	AccountSID string `json:"account_sid,omitempty"`
	AuthToken  string `json:"auth_token,omitempty"`
	// The sender number or alphanumeric id.
	From string `json:"from,omitempty"`
	// A Messaging Service SID, sent instead of from when both are set.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// The WhatsApp sender: whatsapp:+<E.164>, or a Messaging Service SID.
	WhatsAppFrom string `json:"whatsapp_from,omitempty"`
	// A Content template SID (HX…) WhatsApp messages are sent as.
	ContentSID string `json:"content_sid,omitempty"`
	// The API's base URL instead of Twilio's (tests, proxies).
	APIURL string `json:"api_url,omitempty"`
	// Name used by provider_id and in metrics; default twilio.
	Name string `json:"name,omitempty"`

	provider sms.Provider
}

// CaddyModule returns the Caddy module information.
func (TwilioSMS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: smsNamespace + ".twilio", New: func() caddy.Module { return new(TwilioSMS) }}
}

// UnmarshalCaddyfile reads the block.
func (s *TwilioSMS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "sms twilio", map[string]setting{"account_sid": str(&s.AccountSID), "auth_token": str(&s.AuthToken),
		"from": str(&s.From), "messaging_service_sid": str(&s.MessagingServiceSID), "whatsapp_from": str(&s.WhatsAppFrom),
		"content_sid": str(&s.ContentSID), "api_url": str(&s.APIURL), "name": str(&s.Name)})
}

// Provision expands and checks the settings.
func (s *TwilioSMS) Provision(caddy.Context) (err error) {
	x := caddy.NewReplacer().ReplaceKnown
	s.provider, err = sms.NewTwilio(sms.TwilioConfig{Name: s.Name, AccountSID: x(s.AccountSID, ""), AuthToken: x(s.AuthToken, ""),
		From: x(s.From, ""), MessagingServiceSID: x(s.MessagingServiceSID, ""), WhatsAppFrom: x(s.WhatsAppFrom, ""),
		ContentSID: x(s.ContentSID, ""), BaseURL: x(s.APIURL, "")}, nil)
	return err
}

// Provider returns the sender.
func (s *TwilioSMS) Provider(*zap.Logger) sms.Provider { return s.provider }

var (
	_ SMSModule             = (*TwilioSMS)(nil)
	_ caddy.Provisioner     = (*TwilioSMS)(nil)
	_ caddyfile.Unmarshaler = (*TwilioSMS)(nil)
)
