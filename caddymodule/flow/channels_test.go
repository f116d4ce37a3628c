package flow

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/sms"
)

func allChannels(c *Config) { c.Channels = []string{"sms", "whatsapp", "voice"} }

// A code asked for by WhatsApp goes as a WhatsApp message with the SMS
// text (no WhatsApp template configured), its challenge remembers the
// channel, and it verifies; the events say how the code went.
func TestUpdateByWhatsAppVerifies(t *testing.T) {
	h := newEventsHarness(t, allChannels)
	res, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: "whatsapp"})
	if err != nil || res.Channel != "whatsapp" || res.SentTo != numFR {
		t.Fatalf("Update = %+v, %v", res, err)
	}
	m := h.sender.Last(t)
	if m.Channel != "whatsapp" || m.Body != "Your Acme code is "+m.Code+". It expires in 10 min." {
		t.Fatalf("message %+v", m)
	}
	if c := h.challenge("u"); c.Channel != "whatsapp" {
		t.Fatalf("challenge channel %q", c.Channel)
	}
	h.mustVerify("u", m.Code)
	h.wantUser("u", numFR, true)
	got := h.rec.take()
	if len(got) != 2 || got[0].Type != events.TypeUpdated || got[0].Channel != "whatsapp" ||
		got[1].Type != events.TypeVerified || got[1].Channel != "whatsapp" {
		t.Fatalf("events %+v", got)
	}
}

// A voice message spells the code digit by digit, with the voice
// templates when there are some, in the locale asked; the message still
// carries the code itself for the webhook.
func TestUpdateByVoiceSpellsTheCode(t *testing.T) {
	h := newEventsHarness(t, allChannels, func(c *Config) {
		c.ChannelTemplates = map[string]sms.Templates{"voice": {Default: "Your {app} code: {code}.",
			ByLocale: map[string]string{"fr": "Votre code {app} : {code}. Je répète : {code}."}}}
	})
	h.seedVerified("u", numFR)
	h.rec.take()
	res, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numUK, Channel: "voice", Locale: "fr-CA"})
	if err != nil || res.Status != StatusPending || res.Channel != "voice" {
		t.Fatalf("Update = %+v, %v", res, err)
	}
	m := h.sender.Last(t)
	spoken := sms.SpokenCode(m.Code)
	if m.Channel != "voice" || m.Locale != "fr" || m.Body != "Votre code Acme : "+spoken+". Je répète : "+spoken+"." ||
		len(m.Code) != 6 || strings.Count(spoken, ", ") != 5 {
		t.Fatalf("message %+v", m)
	}
	if got := h.rec.take(); len(got) != 1 || got[0].Type != events.TypePending || got[0].Channel != "voice" {
		t.Fatalf("events %+v", got)
	}
	h.mustVerify("u", m.Code)
	h.wantUser("u", numUK, true)
	// SMS keeps the `template` lines.
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numDE, StatusPending)
	if m := h.sender.Last(t); m.Channel != "sms" || m.Body != "Your Acme code is "+m.Code+". It expires in 10 min." {
		t.Fatalf("sms message %+v", m)
	}
}

// A channel not under `channels` is 422 and an unknown one 400, before
// anything is stored or sent; SMS alone is the default.
func TestChannelRefusedSendsNothing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Channels = []string{"sms", "whatsapp"} })
	for _, tt := range []struct {
		channel string
		want    error
	}{{"voice", ErrChannelNotAllowed}, {"fax", ErrInvalidRequest}, {"SMS", ErrInvalidRequest}} {
		_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: tt.channel})
		wantErr(t, err, tt.want)
	}
	if h.sender.Count() != 0 || h.challenge("u") != nil || h.user("u").PhoneNumber != "" {
		t.Fatal("a refused channel stored or sent something")
	}
	if _, _, ok := strings.Cut(errText(h, "voice"), "voice"); !ok {
		t.Errorf("the refusal does not name the channel")
	}
	h2 := newHarness(t) // channels unset: sms only
	_, err := h2.svc.Update(h2.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: "whatsapp"})
	wantErr(t, err, ErrChannelNotAllowed)
	h2.mustUpdate("u", numFR, StatusUpdated)
	if m := h2.sender.Last(t); m.Channel != "sms" {
		t.Fatalf("default channel %q", m.Channel)
	}
}

func errText(h *harness, channel string) string {
	_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: channel})
	return err.Error()
}

// A resend may switch the channel: the new code goes by it, the old one
// is void, the attempt count and the cooldown hold; without a channel a
// resend keeps the challenge's.
func TestResendSwitchesChannel(t *testing.T) {
	h := newHarness(t, allChannels)
	if _, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: "sms"}); err != nil {
		t.Fatal(err)
	}
	old := h.sender.LastCode(t)
	_, err := h.verify("u", wrongCodeFor(old))
	wantCodeError(t, err, 2)

	_, err = h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: "voice"})
	wantRetry(t, err, "resend_after", 30*time.Second)
	h.clock.Advance(30 * time.Second)
	res, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: "voice"})
	if err != nil || res.Channel != "voice" || res.SentTo != numFR {
		t.Fatalf("Resend = %+v, %v", res, err)
	}
	m := h.sender.Last(t)
	if m.Channel != "voice" || m.Purpose != "resend" || !strings.Contains(m.Body, sms.SpokenCode(m.Code)) {
		t.Fatalf("message %+v", m)
	}
	if c := h.challenge("u"); c.Channel != "voice" || c.Attempts != 1 {
		t.Fatalf("challenge %+v", c)
	}
	if m.Code != old {
		_, err = h.verify("u", old)
		wantCodeError(t, err, 1)
	}

	h.clock.Advance(30 * time.Second)
	if res, err = h.svc.Resend(h.ctx, ResendRequest{UserID: "u"}); err != nil || res.Channel != "voice" {
		t.Fatalf("Resend without channel = %+v, %v", res, err)
	}
	if h.sender.Last(t).Channel != "voice" {
		t.Fatal("a resend without channel changed it")
	}
	h.mustVerify("u", h.sender.Last(t).Code)
}

func TestResendRefusedChannelSendsNothing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Channels = []string{"sms", "voice"} })
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(time.Minute)
	before := h.challenge("u")
	for _, tt := range []struct {
		channel string
		want    error
	}{{"whatsapp", ErrChannelNotAllowed}, {"pigeon", ErrInvalidRequest}} {
		_, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: tt.channel})
		wantErr(t, err, tt.want)
	}
	if h.sender.Count() != 1 || !sameChallenge(before, h.challenge("u")) {
		t.Fatal("a refused resend sent or changed something")
	}
	// A challenge whose channel is no longer enabled (the config changed)
	// must be switched explicitly.
	cfg := h.cfg
	cfg.Channels = []string{"sms"}
	svc, err := New(cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender, Numbers: h.svc.numbers, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: "voice"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	_, err = svc.Resend(h.ctx, ResendRequest{UserID: "u"})
	wantErr(t, err, ErrChannelNotAllowed)
	if _, err := svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: "sms"}); err != nil {
		t.Fatal(err)
	}
}

// The limits count every message alike, whatever its channel.
func TestLimitsCountEveryChannel(t *testing.T) {
	h := newHarness(t, allChannels, func(c *Config) {
		c.Limits.PerNumber = Limit{Count: 3, Window: time.Hour}
		c.ResendAfter = 0
	})
	for _, ch := range []string{"sms", "whatsapp", "voice"} {
		if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: ch}); ch == "sms" {
			wantErr(t, err, ErrNoPending)
			if _, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Channel: ch}); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
	}
	_, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Channel: "sms"})
	wantRetry(t, err, "per_number", time.Hour)
	if h.sender.Count() != 3 {
		t.Fatalf("%d messages", h.sender.Count())
	}
}

// Entries written before channels (bits 5..6 clear) are SMS challenges;
// an SMS challenge encodes as before, byte for byte, so a release before
// channels still reads what this one writes.
func TestChallengeChannelBits(t *testing.T) {
	old, _ := hex.DecodeString(goldenV1Plain)
	c, err := decodeChallenge(old)
	if err != nil || c.Channel != "sms" {
		t.Fatalf("old entry: %+v, %v", c, err)
	}
	for ch, bits := range map[string]byte{"sms": 0, "whatsapp": 0x20, "voice": 0x40} {
		c := sampleChallenge()
		c.Channel = ch
		b := c.encode()
		if b[0] != challengeVersion || b[1] != flagPending|bits || len(b) != len(old) {
			t.Fatalf("%s: version %d flags %08b len %d", ch, b[0], b[1], len(b))
		}
	}
}

func TestChannelsConfigChecked(t *testing.T) {
	for _, tt := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Channels = []string{"sms", "fax"} }, `channels: unknown channel "fax" (sms, whatsapp, voice)`},
		{func(c *Config) { c.Channels = []string{"voice", "voice"} }, "channels: voice listed twice"},
		{func(c *Config) { c.ChannelTemplates = map[string]sms.Templates{"sms": {Default: "{code}"}} }, `template "sms": templates of their own are for whatsapp and voice`},
		{func(c *Config) { c.ChannelTemplates = map[string]sms.Templates{"voice": {Default: "no code"}} }, "voice template: the default template must contain {code}"},
	} {
		cfg := baseConfig()
		tt.mutate(&cfg)
		h := newHarness(t)
		_, err := New(cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender, Numbers: h.svc.numbers})
		if err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

// notify_previous goes by NotifyChannel (SMS by default).
func TestNotifyPreviousChannel(t *testing.T) {
	for _, want := range []string{"", "whatsapp"} {
		h := newHarness(t, allChannels, func(c *Config) { c.NotifyPrevious, c.NotifyChannel = true, want })
		h.seedVerified("u", numFR)
		h.mustUpdate("u", numUK, StatusPending)
		h.mustVerify("u", h.sender.LastCode(t))
		n := h.sender.LastTo(numFR)
		if n.Purpose != PurposeNotify || sms.ChannelOf(n) != map[string]string{"": "sms", "whatsapp": "whatsapp"}[want] || n.Channel == "" {
			t.Fatalf("NotifyChannel %q: notice %+v", want, n)
		}
	}
}
