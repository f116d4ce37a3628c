package flow

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/sms"
)

// ErrChannelNotAllowed: the channel asked for is not under `channels`
// (SPEC §5, 422 channel_not_allowed).
var ErrChannelNotAllowed = errors.New("channel not allowed")

// channelError names the channel refused; it is ErrChannelNotAllowed.
type channelError struct{ channel string }

func (e channelError) Error() string { return "the " + e.channel + " channel is not enabled" }
func (e channelError) Unwrap() error { return ErrChannelNotAllowed }

// CheckChannels checks the `channels` setting: known names, each once.
// Empty means SMS alone.
func CheckChannels(channels []string) error {
	for i, ch := range channels {
		if !sms.KnownChannel(ch) {
			return fmt.Errorf("channels: unknown channel %q (%s)", ch, strings.Join(sms.Channels, ", "))
		}
		if slices.Contains(channels[:i], ch) {
			return fmt.Errorf("channels: %s listed twice", ch)
		}
	}
	return nil
}

// enabledChannels is cfg.Channels, or SMS alone when it is empty.
func (cfg Config) enabledChannels() []string {
	if len(cfg.Channels) == 0 {
		return []string{sms.ChannelSMS}
	}
	return cfg.Channels
}

// channel checks a channel a request asks for: "" is def, and sms when
// def is "" too; a name that is no channel is ErrInvalidRequest, one not
// enabled ErrChannelNotAllowed. Both refuse before anything is stored or
// sent.
func (s *Service) channel(asked, def string) (string, error) {
	if asked == "" {
		asked = def
	}
	if asked == "" {
		asked = sms.ChannelSMS
	}
	if !sms.KnownChannel(asked) {
		return "", fmt.Errorf("%w: channel must be one of %s", ErrInvalidRequest, strings.Join(sms.Channels, ", "))
	}
	if !slices.Contains(s.cfg.enabledChannels(), asked) {
		return "", channelError{asked}
	}
	return asked, nil
}

// templatesFor are the templates of a channel: its own when it has any,
// else the `template` lines (SMS's).
func (cfg Config) templatesFor(channel string) sms.Templates {
	if t, ok := cfg.ChannelTemplates[channel]; ok {
		return t
	}
	return cfg.Templates
}

// CheckTemplates checks every template: the `template` lines and the
// channels' own. New checks them too.
func (cfg Config) CheckTemplates() error {
	if err := cfg.Templates.Validate(); err != nil {
		return err
	}
	return cfg.checkChannelTemplates()
}

// checkChannelTemplates checks the channels' own templates: only WhatsApp
// and voice have any (`template` lines are SMS's), each valid.
func (cfg Config) checkChannelTemplates() error {
	for ch, t := range cfg.ChannelTemplates {
		if ch != sms.ChannelWhatsApp && ch != sms.ChannelVoice {
			return fmt.Errorf("template %q: templates of their own are for whatsapp and voice", ch)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%s %w", ch, err)
		}
	}
	return nil
}

// notifyChannel is how notify_previous goes: NotifyChannel, else SMS.
func (cfg Config) notifyChannel() string {
	if cfg.NotifyChannel == "" {
		return sms.ChannelSMS
	}
	return cfg.NotifyChannel
}

// withChannel marks an event with the channel its code went by; e may be nil.
func withChannel(e *events.Event, channel string) *events.Event {
	if e != nil {
		e.Channel = channel
	}
	return e
}

// The channel of a challenge sits in bits 5 and 6 of its flags byte, which
// releases before channels ignored: an entry they wrote (bits clear) is
// an SMS challenge, and they still verify an entry this one writes.
const (
	flagChannelShift = 5
	flagChannelMask  = 3 << flagChannelShift
)

// channelBits and channelOfBits map a channel to its bits and back;
// unknown bits read as SMS.
func channelBits(channel string) byte {
	switch channel {
	case sms.ChannelWhatsApp:
		return 1 << flagChannelShift
	case sms.ChannelVoice:
		return 2 << flagChannelShift
	}
	return 0
}

func channelOfBits(flags byte) string {
	switch flags & flagChannelMask {
	case 1 << flagChannelShift:
		return sms.ChannelWhatsApp
	case 2 << flagChannelShift:
		return sms.ChannelVoice
	}
	return sms.ChannelSMS
}

// ChannelEnabled is nil when channel is under `channels`, else an error
// wrapping ErrChannelNotAllowed (or ErrInvalidRequest for no channel).
func (s *Service) ChannelEnabled(channel string) error {
	_, err := s.channel(channel, "")
	return err
}
