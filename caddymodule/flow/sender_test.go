package flow

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
)

// Message fields: purpose, locale actually used, template options, user,
// recipient, body carrying the code.
func TestMessageFields(t *testing.T) {
	tpl := sms.Templates{
		Default: "{app}: {code} ({minutes} min){brand}",
		ByLocale: map[string]string{
			"fr":    "Code {app} : {code}{brand}",
			"pt_BR": "Codigo {code}",
		},
	}
	cases := []struct {
		name       string
		locale     string
		opts       map[string]string
		provider   string
		wantLocale string
		wantBody   string // with CODE for the code
	}{
		{"default", "", nil, "", "en", "Acme: CODE (10 min){brand}"},
		{"unknown locale", "de-DE", nil, "", "en", "Acme: CODE (10 min){brand}"},
		{"exact", "fr", nil, "", "fr", "Code Acme : CODE{brand}"},
		{"base language", "fr-CA", nil, "", "fr", "Code Acme : CODE{brand}"},
		{"case and underscore", "PT-br", nil, "", "pt-BR", "Codigo CODE"},
		{"options", "", map[string]string{"brand": " by X", "code": "nope"}, "p2", "en", "Acme: CODE (10 min) by X"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Templates = tpl })
			_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "user-42", PhoneNumber: "+33 6 12 34 56 78",
				Locale: tc.locale, TemplateOptions: tc.opts, ProviderID: tc.provider, ClientIP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			m := h.sender.Last(t)
			code := h.sender.LastCode(t)
			if m.Purpose != "update" || m.To != numFR || m.UserID != "user-42" || m.Locale != tc.wantLocale ||
				m.ProviderID != tc.provider {
				t.Fatalf("message = %+v", m)
			}
			if want := strings.ReplaceAll(tc.wantBody, "CODE", code); m.Body != want {
				t.Fatalf("body = %q, want %q", m.Body, want)
			}
			if m.TemplateOptions == nil {
				t.Fatal("TemplateOptions is nil, want {}")
			}
			if len(m.TemplateOptions) != len(tc.opts) {
				t.Fatalf("TemplateOptions = %v, want %v", m.TemplateOptions, tc.opts)
			}
			for k, v := range tc.opts {
				if m.TemplateOptions[k] != v {
					t.Fatalf("TemplateOptions = %v, want %v", m.TemplateOptions, tc.opts)
				}
			}
			if id, err := hex.DecodeString(m.ID); err != nil || len(id) != 16 {
				t.Fatalf("message ID %q is not 16 random bytes in hex", m.ID)
			}

			// Resend: purpose resend, the update's locale reused when none
			// is given, options {} not nil, no provider pinning.
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "user-42"}); err != nil {
				t.Fatal(err)
			}
			r := h.sender.Last(t)
			if r.Purpose != "resend" || r.To != numFR || r.UserID != "user-42" || r.Locale != tc.wantLocale ||
				r.TemplateOptions == nil || len(r.TemplateOptions) != 0 || r.ID == m.ID {
				t.Fatalf("resend message = %+v", r)
			}
			if !strings.Contains(r.Body, h.sender.LastCode(t)) {
				t.Fatalf("resend body %q lacks the code", r.Body)
			}
			// Resend with its own locale.
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "user-42", Locale: "fr-FR"}); err != nil {
				t.Fatal(err)
			}
			if r := h.sender.Last(t); r.Locale != "fr" {
				t.Fatalf("resend with locale fr-FR used %q", r.Locale)
			}
			h.mustVerify("user-42", h.sender.LastCode(t))
		})
	}
}

func TestMessageMinutesRoundUp(t *testing.T) {
	cases := []struct {
		ttl  time.Duration
		want string
	}{
		{time.Second, "1 min"},
		{90 * time.Second, "2 min"},
		{5 * time.Minute, "5 min"},
		{5*time.Minute + time.Second, "6 min"},
	}
	for _, tc := range cases {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.TTL = tc.ttl })
			h.mustUpdate("u", numFR, StatusUpdated)
			if b := h.sender.Last(t).Body; !strings.Contains(b, tc.want) {
				t.Fatalf("body %q, want %q", b, tc.want)
			}
		})
	}
}

// A very long locale (the HTTP layer does not bound it) must not break
// the challenge: the code that went out must verify.
func TestLongLocaleKeepsChallengeUsable(t *testing.T) {
	for _, n := range []int{35, 36, 255, 256, 300} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			h := newHarness(t)
			loc := strings.Repeat("a", n)
			_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Locale: loc})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if _, err := h.verify("u", h.sender.LastCode(t)); err != nil {
				t.Fatalf("locale of %d bytes: Verify with the right code: %v", n, err)
			}
		})
		t.Run(fmt.Sprintf("resend %d bytes", n), func(t *testing.T) {
			h := newHarness(t)
			h.mustUpdate("u", numFR, StatusUpdated)
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Locale: strings.Repeat("a", n)}); err != nil {
				t.Fatalf("Resend: %v", err)
			}
			if _, err := h.verify("u", h.sender.LastCode(t)); err != nil {
				t.Fatalf("resend locale of %d bytes: Verify with the right code: %v", n, err)
			}
		})
	}
}

func TestCodesAreCodeLengthDigits(t *testing.T) {
	for _, length := range []int{4, 5, 6, 8, 10} {
		t.Run(fmt.Sprintf("length %d", length), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.CodeLength = length; c.ResendAfter = 0 })
			seen := map[string]bool{}
			for i := 0; i < 40; i++ {
				h.mustUpdate("u", frNumber(i), StatusUpdated)
				code := h.sender.LastCode(t)
				if len(code) != length || strings.Trim(code, "0123456789") != "" {
					t.Fatalf("code %q is not %d digits", code, length)
				}
				seen[code] = true
			}
			if length >= 6 && len(seen) < 35 {
				t.Fatalf("only %d distinct codes in 40", len(seen))
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Leading zeros are kept, and codes compare as strings.
func TestCodeZeroPadded(t *testing.T) {
	h := newHarness(t)
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Rand: zeroReader{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR}); err != nil {
		t.Fatal(err)
	}
	if code := h.sender.LastCode(t); code != "000000" {
		t.Fatalf("code = %q, want 000000", code)
	}
	_, err = svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: "0"})
	wantCodeError(t, err, h.cfg.MaxAttempts-1)
	if _, err := svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: "000000"}); err != nil {
		t.Fatal(err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

func TestRandFailure(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numDE)
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Rand: errReader{}})
	if err != nil {
		t.Fatal(err)
	}
	sends := h.sender.Count()
	if _, err := svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR}); err == nil {
		t.Fatal("Update succeeded without randomness")
	}
	if h.sender.Count() != sends {
		t.Fatal("an SMS went out without a random code")
	}
	h.wantUser("u", numDE, true)
}

// The cache never holds the plain code: scan every value ever written.
func TestCacheNeverHoldsPlainCode(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.CodeLength = 10
		c.Limits = DefaultLimits
	})
	var codes []string
	h.seedVerified("u", numDE)
	codes = append(codes, h.sender.LastCode(t))
	h.mustUpdate("u", numFR, StatusPending)
	codes = append(codes, h.sender.LastCode(t))
	_, _ = h.verify("u", wrongCodeFor(h.sender.LastCode(t)))
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	codes = append(codes, h.sender.LastCode(t))
	h.users.failSet.Store(true)
	_, _ = h.verify("u", h.sender.LastCode(t)) // claim + release rewrite
	h.users.failSet.Store(false)
	h.mustUpdate("v", numUS, StatusUpdated)
	codes = append(codes, h.sender.LastCode(t))

	keys, values := h.cache.Written()
	if len(values) < 8 {
		t.Fatalf("only %d cache writes seen", len(values))
	}
	live := [][]byte{}
	for _, k := range append(keys, challengeKey("u"), challengeKey("v")) {
		if b, err := h.bc.Get(h.ctx, k); err == nil {
			live = append(live, b)
		}
	}
	for _, code := range codes {
		for i, v := range append(values, live...) {
			if strings.Contains(string(v), code) {
				t.Fatalf("cache value %d holds the plain code", i)
			}
		}
		for _, k := range keys {
			if strings.Contains(k, code) {
				t.Fatalf("cache key %q holds the plain code", k)
			}
		}
	}
}

// Errors never carry a code or a number.
func TestErrorTextsCarryNoSecrets(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	_, err := h.verify("u", wrongCodeFor(code))
	_, err2 := h.update("u", numFR)
	for _, e := range []error{err, err2} {
		if e == nil {
			t.Fatal("want an error")
		}
		if s := e.Error(); strings.Contains(s, code) || strings.Contains(s, wrongCodeFor(code)) || strings.Contains(s, "612345678") {
			t.Fatalf("error text %q carries a secret", s)
		}
	}
}
