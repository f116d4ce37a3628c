package caddymodule

import (
	"fmt"

	"github.com/caddy-phone/caddy-phone/sms"
)

// channelSettings says, for a config error, which provider settings carry
// a channel (SPEC §2).
var channelSettings = map[string]string{
	sms.ChannelSMS:      "twilio from or messaging_service_sid, vonage from, messagebird originator, webhook, log",
	sms.ChannelWhatsApp: "twilio whatsapp_from, vonage whatsapp_from, messagebird whatsapp_channel_id, webhook, log",
	sms.ChannelVoice:    "twilio from (a number), vonage application_id and private_key_file, messagebird originator, webhook, log",
}

// notifyChannel is how notify_previous reaches the old number: by SMS
// when a provider carries it, else by the first channel listed (which the
// chain carries, checkChannelsCarried made sure).
func notifyChannel(channels []string, chain *sms.Chain) string {
	if chain.Carries(sms.ChannelSMS) || len(channels) == 0 {
		return sms.ChannelSMS
	}
	return channels[0]
}

// checkChannelsCarried refuses a `channels` entry that no provider of the
// chain carries (SPEC §2): every call asking for it would fail with 502.
// No channels listed means SMS alone, which a chain carrying no SMS may
// still not carry.
func checkChannelsCarried(channels []string, chain *sms.Chain) error {
	if len(channels) == 0 {
		channels = []string{sms.ChannelSMS}
	}
	for _, ch := range channels {
		if !chain.Carries(ch) {
			return fmt.Errorf("channels: %s: no configured provider carries it (needs one of: %s)", ch, channelSettings[ch])
		}
	}
	return nil
}
