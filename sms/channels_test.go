package sms

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// carrier is a fakeProvider that carries only the channels named.
type carrier struct {
	fakeProvider
	channels []string
}

func (c carrier) Carries(ch string) bool { return slices.Contains(c.channels, ch) }

func carriers(t *testing.T, spec map[string][]string, order ...string) ([]Provider, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var calls []string
	ps := make([]Provider, len(order))
	for i, name := range order {
		fp := fakeProvider{name: name, mu: &mu, calls: &calls}
		if spec[name] == nil {
			ps[i] = fp // no Carrier: SMS only
		} else {
			ps[i] = carrier{fp, spec[name]}
		}
	}
	return ps, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
}

// A chain tries, in order, only the providers that carry the message's
// channel; a provider that says nothing of channels carries SMS alone.
func TestChainPicksProvidersByChannel(t *testing.T) {
	ps, calls := carriers(t, map[string][]string{
		"wa":    {ChannelWhatsApp},
		"voice": {ChannelVoice, ChannelSMS},
		"all":   Channels,
	}, "plain", "wa", "voice", "all")
	// Every provider fails, so each one tried shows in the calls.
	for i, p := range ps {
		switch v := p.(type) {
		case fakeProvider:
			v.err = errA
			ps[i] = v
		case carrier:
			v.err = errB
			ps[i] = v
		}
	}
	c := NewChain(ps...)
	for _, tt := range []struct {
		channel string
		want    []string
	}{
		{"", []string{"plain", "voice", "all"}},
		{ChannelSMS, []string{"plain", "voice", "all"}},
		{ChannelWhatsApp, []string{"wa", "all"}},
		{ChannelVoice, []string{"voice", "all"}},
	} {
		before := len(calls())
		m := testMessage()
		m.Channel = tt.channel
		if err := c.Send(context.Background(), m); !errors.Is(err, ErrDeliveryFailed) {
			t.Fatalf("%q: err = %v", tt.channel, err)
		}
		if got := calls()[before:]; !slices.Equal(got, tt.want) {
			t.Errorf("channel %q tried %v, want %v", tt.channel, got, tt.want)
		}
	}
	for _, ch := range Channels {
		if !c.Carries(ch) {
			t.Errorf("Carries(%s) = false", ch)
		}
	}
	if c.Carries("fax") {
		t.Error("Carries(fax)")
	}
}

func TestChainChannelWithoutProvider(t *testing.T) {
	ps, calls := carriers(t, nil, "plain")
	c := NewChain(ps...)
	if c.Carries(ChannelVoice) || !c.Carries(ChannelSMS) {
		t.Errorf("Carries voice %v, sms %v", c.Carries(ChannelVoice), c.Carries(ChannelSMS))
	}
	m := testMessage()
	m.Channel = ChannelVoice
	err := c.Send(context.Background(), m)
	if !errors.Is(err, ErrDeliveryFailed) || err.Error() != "sms: delivery failed: no provider configured for voice" {
		t.Errorf("err = %v", err)
	}
	// provider_id naming a provider that cannot carry the channel.
	m.ProviderID = "plain"
	if err := c.Send(context.Background(), m); !errors.Is(err, ErrDeliveryFailed) || err.Error() != "sms: delivery failed: provider_id does not carry voice" {
		t.Errorf("provider_id: err = %v", err)
	}
	if len(calls()) != 0 {
		t.Errorf("calls %v", calls())
	}
}

func TestLogAndWebhookCarryEveryChannel(t *testing.T) {
	for _, p := range []Provider{NewLog(nil), NewWebhook("", "http://127.0.0.1:1/", "", nil)} {
		for _, ch := range Channels {
			if !Carries(p, ch) {
				t.Errorf("%s does not carry %s", p.Name(), ch)
			}
		}
		if Carries(p, "fax") {
			t.Errorf("%s carries fax", p.Name())
		}
	}
}

func TestSpokenCode(t *testing.T) {
	for in, want := range map[string]string{"482913": "4, 8, 2, 9, 1, 3", "7": "7", "": "", "0012": "0, 0, 1, 2"} {
		if got := SpokenCode(in); got != want {
			t.Errorf("SpokenCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVoiceLanguage(t *testing.T) {
	for in, want := range map[string]string{"": "en-US", "en": "en-US", "fr": "fr-FR", "fr-CA": "fr-CA", "fr_ca": "fr-CA",
		"pt": "pt-BR", "de-AT": "de-AT", "zh-Hant-TW": "zh-TW", "xx": "xx", "EN-gb": "en-GB"} {
		if got := VoiceLanguage(in); got != want {
			t.Errorf("VoiceLanguage(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"": "en", "fr": "fr", "en-GB": "en_GB", "pt_br": "pt_BR"} {
		if got := whatsAppLanguage(in); got != want {
			t.Errorf("whatsAppLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

// The log provider says which channel a message would have gone by.
func TestLogProviderChannel(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	m := testMessage()
	m.Channel = ChannelWhatsApp
	if err := NewLog(zap.New(core)).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := logs.All()[0].ContextMap()["channel"]; got != "whatsapp" {
		t.Errorf("channel field %v", got)
	}
}
