package sms

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// TwilioAPI is the base URL of Twilio's REST API.
const TwilioAPI = "https://api.twilio.com"

// TwilioConfig configures the Twilio provider: Programmable Messaging for
// SMS and WhatsApp, Programmable Voice for calls. It carries each channel
// whose settings it has: SMS (From or MessagingServiceSID), WhatsApp
// (WhatsAppFrom), voice (From, when it is a phone number).
type TwilioConfig struct {
	// Name used by provider_id and in metrics; default "twilio".
	Name string
	// Account SID (AC…): the account in the path and the Basic auth user.
	AccountSID string
	// Auth token: the Basic auth password.
	AuthToken string
	// Sender number (E.164) or alphanumeric sender id. A number also
	// places the voice calls.
	From string
	// Messaging Service SID (MG…). When set it is sent instead of From
	// and Twilio picks the sender from the service's pool.
	MessagingServiceSID string
	// WhatsApp sender: "whatsapp:+E164" (or "+E164"), or the SID (MG…) of a
	// Messaging Service whose pool holds a WhatsApp sender.
	WhatsAppFrom string
	// ContentSID (HX…), when set, sends WhatsApp messages as that approved
	// Content template, with the code as its variable {{1}}, instead of
	// free text: WhatsApp refuses free text outside a 24-hour window
	// opened by the user.
	ContentSID string
	// BaseURL replaces TwilioAPI (tests, proxies).
	BaseURL string
}

type twilio struct {
	name       string
	endpoint   string // the Messages.json endpoint
	calls      string // the Calls.json endpoint
	auth       string // "Basic …"
	from       url.Values
	whatsapp   url.Values // From or MessagingServiceSid of WhatsApp messages; nil: none
	voiceFrom  string     // "" when From is not a number
	contentSID string
	client     *http.Client
}

// NewTwilio returns a provider that sends SMS and WhatsApp messages by
// creating a Message resource (POST {BaseURL}/2010-04-01/Accounts/
// {AccountSID}/Messages.json, a form with To, Body and MessagingServiceSid
// or From; WhatsApp addresses are "whatsapp:+E164", and with ContentSID
// the form carries ContentSid and ContentVariables instead of Body), and
// voice messages by creating a Call resource (…/Calls.json, a form with
// To, From and Twiml: <Say> reading the text twice, in the message's
// language). Every request has HTTP Basic auth AccountSID:AuthToken. A
// 2xx answer means sent. A nil client means one with a 10 s timeout that
// does not follow redirects.
func NewTwilio(cfg TwilioConfig, client *http.Client) (Provider, error) {
	switch {
	case cfg.AccountSID == "":
		return nil, errors.New("sms twilio: account_sid is required")
	case cfg.AuthToken == "":
		return nil, errors.New("sms twilio: auth_token is required")
	case cfg.From == "" && cfg.MessagingServiceSID == "" && cfg.WhatsAppFrom == "":
		return nil, errors.New("sms twilio: from or messaging_service_sid is required (or whatsapp_from, for WhatsApp alone)")
	case cfg.ContentSID != "" && cfg.WhatsAppFrom == "":
		return nil, errors.New("sms twilio: content_sid needs whatsapp_from")
	}
	base, err := baseURL("twilio", cfg.BaseURL, TwilioAPI)
	if err != nil {
		return nil, err
	}
	account := base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID)
	t := &twilio{
		name:       cfg.Name,
		endpoint:   account + "/Messages.json",
		calls:      account + "/Calls.json",
		contentSID: cfg.ContentSID,
		client:     defaultClient(client),
	}
	if t.name == "" {
		t.name = "twilio"
	}
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(cfg.AccountSID, cfg.AuthToken)
	t.auth = req.Header.Get("Authorization")
	switch {
	case cfg.MessagingServiceSID != "":
		t.from = url.Values{"MessagingServiceSid": {cfg.MessagingServiceSID}}
	case cfg.From != "":
		t.from = url.Values{"From": {cfg.From}}
	}
	if isE164(cfg.From) {
		t.voiceFrom = cfg.From
	}
	if w := cfg.WhatsAppFrom; w != "" {
		if strings.HasPrefix(w, "MG") {
			t.whatsapp = url.Values{"MessagingServiceSid": {w}}
		} else {
			number := strings.TrimPrefix(w, "whatsapp:")
			if !isE164(number) {
				return nil, errors.New("sms twilio: whatsapp_from must be whatsapp:+<E.164 number> or a Messaging Service SID (MG…)")
			}
			t.whatsapp = url.Values{"From": {"whatsapp:" + number}}
		}
	}
	return t, nil
}

func (t *twilio) Name() string { return t.name }

// Carries says which channels the settings allow.
func (t *twilio) Carries(channel string) bool {
	switch channel {
	case ChannelSMS:
		return t.from != nil
	case ChannelWhatsApp:
		return t.whatsapp != nil
	case ChannelVoice:
		return t.voiceFrom != ""
	}
	return false
}

// twilioAnswer holds the fields read from Twilio's answer: a Message or
// Call resource on success, {"code","message","more_info","status"} on
// error. The message is never read: it may repeat the number.
type twilioAnswer struct {
	Code      int  `json:"code"`
	Status    any  `json:"status"` // a number in errors, a string in a resource
	ErrorCode *int `json:"error_code"`
}

func (t *twilio) Send(ctx context.Context, m Message) error {
	endpoint, form := t.endpoint, url.Values{}
	switch ChannelOf(m) {
	case ChannelSMS:
		if t.from == nil {
			return fmt.Errorf("%w: twilio: no sms sender configured", ErrDeliveryFailed)
		}
		form.Set("To", m.To)
		form.Set("Body", m.Body)
		for k, v := range t.from {
			form[k] = v
		}
	case ChannelWhatsApp:
		if t.whatsapp == nil {
			return fmt.Errorf("%w: twilio: no whatsapp_from configured", ErrDeliveryFailed)
		}
		form.Set("To", "whatsapp:"+m.To)
		for k, v := range t.whatsapp {
			form[k] = v
		}
		if t.contentSID != "" {
			vars, _ := json.Marshal(map[string]string{"1": m.Code})
			form.Set("ContentSid", t.contentSID)
			form.Set("ContentVariables", string(vars))
		} else {
			form.Set("Body", m.Body)
		}
	case ChannelVoice:
		if t.voiceFrom == "" {
			return fmt.Errorf("%w: twilio: no voice caller number configured", ErrDeliveryFailed)
		}
		endpoint = t.calls
		form.Set("To", m.To)
		form.Set("From", t.voiceFrom)
		form.Set("Twiml", TwiML(m.Body, VoiceLanguage(m.Locale)))
	default:
		return fmt.Errorf("%w: twilio: unknown channel", ErrDeliveryFailed)
	}
	status, body, err := apiCall{
		provider:    "twilio",
		url:         endpoint,
		contentType: "application/x-www-form-urlencoded",
		body:        []byte(form.Encode()),
		header:      http.Header{"Authorization": {t.auth}},
	}.do(ctx, t.client)
	if err != nil {
		return err
	}
	var a twilioAnswer
	_ = json.Unmarshal(body, &a)
	if !is2xx(status) {
		if a.Code != 0 {
			return fmt.Errorf("%w: twilio: status %d, code %d", ErrDeliveryFailed, status, a.Code)
		}
		return fmt.Errorf("%w: twilio: status %d", ErrDeliveryFailed, status)
	}
	// A Message created already failed (rare, but documented statuses);
	// a Call answers "queued" and its fate comes later.
	if s, _ := a.Status.(string); s == "failed" || s == "undelivered" {
		code := ""
		if a.ErrorCode != nil {
			code = ", code " + strconv.Itoa(*a.ErrorCode)
		}
		return fmt.Errorf("%w: twilio: status %d, message %s%s", ErrDeliveryFailed, status, s, code)
	}
	return nil
}

// TwiML is the call's instructions: the text said twice in language, a
// pause of a second before and between, so a person who picks up late or
// mishears hears it again:
//
//	<Response><Pause length="1"/><Say language="fr-FR">…</Say><Pause length="1"/><Say language="fr-FR">…</Say></Response>
func TwiML(text, language string) string {
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(text))
	var lang strings.Builder
	_ = xml.EscapeText(&lang, []byte(language))
	say := `<Say language="` + lang.String() + `">` + esc.String() + `</Say>`
	return `<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="1"/>` + say + `<Pause length="1"/>` + say + `</Response>`
}

// isE164 reports whether s is "+" and 8 to 15 digits.
func isE164(s string) bool {
	d, ok := strings.CutPrefix(s, "+")
	return ok && len(d) >= 8 && len(d) <= 15 && strings.Trim(d, "0123456789") == ""
}
