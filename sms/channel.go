package sms

import "strings"

// The delivery channels (SPEC §4 "Channels"). A Message without one goes
// by SMS.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelVoice    = "voice"
)

// Channels lists every channel, in the order messages name them.
var Channels = []string{ChannelSMS, ChannelWhatsApp, ChannelVoice}

// KnownChannel reports whether name is one of Channels.
func KnownChannel(name string) bool {
	return name == ChannelSMS || name == ChannelWhatsApp || name == ChannelVoice
}

// ChannelOf is m's channel: ChannelSMS when none is set.
func ChannelOf(m Message) string {
	if m.Channel == "" {
		return ChannelSMS
	}
	return m.Channel
}

// Carrier is a Provider that says which channels it carries. A Provider
// that is not one carries SMS only, as every provider did before channels.
type Carrier interface {
	Carries(channel string) bool
}

// Carries reports whether p carries channel.
func Carries(p Provider, channel string) bool {
	if c, ok := p.(Carrier); ok {
		return c.Carries(channel)
	}
	return channel == ChannelSMS
}

// allChannels is embedded by the providers that carry every channel (log,
// webhook): what they do with a message does not depend on it.
type allChannels struct{}

func (allChannels) Carries(channel string) bool { return KnownChannel(channel) }

// SpokenCode writes a code for a voice message: its digits one by one,
// separated by commas so that text-to-speech reads each digit and pauses
// between them ("482913" → "4, 8, 2, 9, 1, 3").
func SpokenCode(code string) string {
	if len(code) < 2 {
		return code
	}
	var b strings.Builder
	b.Grow(3 * len(code))
	for i, r := range code {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteRune(r)
	}
	return b.String()
}
