package caddymodule

import (
	"net/http"
	"path"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/sms"
)

// Descope's voice and WhatsApp twins of the SMS routes (SPEC §6): the
// same calls, the code going by the channel the path names; 422
// channel_not_allowed when it is not under `channels`.
func init() {
	for _, ch := range []string{sms.ChannelVoice, sms.ChannelWhatsApp} {
		descopeRoutes["/v1/auth/otp/update/phone/"+ch] = route{method: http.MethodPost, fresh: true, handle: (*Phone).descopeUpdate}
		descopeRoutes["/v1/auth/otp/verify/"+ch] = route{method: http.MethodPost, open: true, handle: descopeVerifyOn(ch)}
	}
}

// descopeChannel is the delivery method a Descope route's path ends with.
func descopeChannel(r *http.Request) string {
	if ch := path.Base(r.URL.Path); sms.KnownChannel(ch) {
		return ch
	}
	return sms.ChannelSMS
}

// descopeVerifyOn is Descope's verify on a channel: a code is a code
// whichever way it went (a resend may have switched it), but the route of
// a channel not enabled does not answer.
func descopeVerifyOn(channel string) func(*Phone, http.ResponseWriter, *http.Request, *bearer.Identity) error {
	return func(p *Phone, w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
		if err := p.service.ChannelEnabled(channel); err != nil {
			return err
		}
		return p.descopeVerify(w, r, id)
	}
}
