package flow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
)

func sampleChallenge() *challenge {
	c := &challenge{
		Number:       numFR,
		Pending:      true,
		Attempts:     2,
		ExpiresAt:    time.Date(2030, 1, 2, 3, 14, 5, 123, time.UTC),
		SentAt:       time.Date(2030, 1, 2, 3, 4, 5, 123, time.UTC),
		ClaimedUntil: time.Date(2030, 1, 2, 3, 4, 35, 0, time.UTC),
		Locale:       "fr-CA",
	}
	for i := range c.MAC {
		c.MAC[i] = byte(i * 7)
	}
	return c
}

func sameChallenge(a, b *challenge) bool {
	return a.Number == b.Number && a.Pending == b.Pending && a.Attempts == b.Attempts && a.OpenAttempts == b.OpenAttempts &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.SentAt.Equal(b.SentAt) &&
		a.ClaimedUntil.Equal(b.ClaimedUntil) && a.MAC == b.MAC && a.Locale == b.Locale && sameAttrs(a.Attrs, b.Attrs) &&
		channelOfBits(channelBits(a.Channel)) == channelOfBits(channelBits(b.Channel)) // "" is sms
}

func TestChallengeRoundtrip(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*challenge)
	}{
		{"full", func(*challenge) {}},
		{"rule 2", func(c *challenge) { c.Pending = false }},
		{"zero times", func(c *challenge) { c.SentAt, c.ClaimedUntil = time.Time{}, time.Time{} }},
		{"no locale", func(c *challenge) { c.Locale = "" }},
		{"no number", func(c *challenge) { c.Number = "" }},
		{"no attempts", func(c *challenge) { c.Attempts = 0 }},
		{"255 attempts", func(c *challenge) { c.Attempts = 255 }},
		{"non-UTC times", func(c *challenge) {
			c.ExpiresAt = c.ExpiresAt.In(time.FixedZone("X", 3600))
		}},
		{"longest number", func(c *challenge) { c.Number = "+123456789012345" }},
		{"35-byte locale", func(c *challenge) { c.Locale = strings.Repeat("a", 35) }},
		{"255-byte locale", func(c *challenge) { c.Locale = strings.Repeat("a", 255) }},
		{"attributes", func(c *challenge) { c.Attrs = descopeAttrs(ptr(true), ptr(false)) }},
		{"largest attributes", func(c *challenge) { c.Attrs = largestAttrs() }},
		{"attributes, no locale", func(c *challenge) { c.Locale, c.Attrs = "", []Attr{{Name: "a", Value: []byte("1")}} }},
		{"token-less attempts", func(c *challenge) { c.OpenAttempts = 3 }},
		{"255 token-less attempts", func(c *challenge) { c.OpenAttempts = 255 }},
		{"token-less attempts and attributes", func(c *challenge) { c.OpenAttempts, c.Attrs = 1, largestAttrs() }},
		{"whatsapp", func(c *challenge) { c.Channel = "whatsapp" }},
		{"voice, rule 2, attributes", func(c *challenge) { c.Channel, c.Pending, c.Attrs = "voice", false, largestAttrs() }},
		{"sms", func(c *challenge) { c.Channel = "sms" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sampleChallenge()
			tc.mutate(c)
			b := c.encode()
			got, err := decodeChallenge(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !sameChallenge(c, got) {
				t.Fatalf("roundtrip\n got %+v\nwant %+v", got, c)
			}
			if !got.SentAt.IsZero() && got.SentAt.Location() != time.UTC {
				t.Fatal("decoded times are not UTC")
			}
			if !bytes.Equal(got.encode(), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestChallengeAttemptsSaturate(t *testing.T) {
	c := sampleChallenge()
	c.Attempts = 1000
	got, err := decodeChallenge(c.encode())
	if err != nil || got.Attempts != 255 {
		t.Fatalf("Attempts = %v, %v; want 255", got, err)
	}
}

func TestChallengeIsCompact(t *testing.T) {
	c := sampleChallenge()
	if n := len(c.encode()); n > 100 {
		t.Fatalf("encoded challenge is %d bytes", n)
	}
}

func TestChallengeCorrupt(t *testing.T) {
	valid := sampleChallenge().encode()
	const fixed = 3 + 3*8 + sha256.Size
	with := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"one byte", []byte{challengeVersion}},
		{"fixed part only", valid[:fixed]},
		{"fixed part + 1", valid[:fixed+1]},
		{"version 2 without attributes", with(func(b []byte) []byte { b[0] = 2; return b })},
		{"version 3 without token-less attempts", with(func(b []byte) []byte { b[0] = 3; return b })},
		{"version 3 with zero token-less attempts", with(func(b []byte) []byte { b[0] = 3; return append(b, 0) })},
		{"wrong version", with(func(b []byte) []byte { b[0] = 4; return b })},
		{"version 0", with(func(b []byte) []byte { b[0] = 0; return b })},
		{"number length too long", with(func(b []byte) []byte { b[fixed] = 200; return b })},
		{"number length 255", with(func(b []byte) []byte { b[fixed] = 255; return b })},
		{"locale length too long", with(func(b []byte) []byte { b[fixed+1+len(numFR)]++; return b })},
		{"locale length too short", with(func(b []byte) []byte { b[fixed+1+len(numFR)]--; return b })},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"text", []byte(strings.Repeat("x", 120))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := decodeChallenge(tc.b); err == nil {
				t.Fatalf("decoded %+v", c)
			}
		})
	}
	// Every truncation fails cleanly, without a panic.
	for i := 0; i < len(valid); i++ {
		if _, err := decodeChallenge(valid[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: decoded", i)
		}
	}

	// The attributes of a version 2 entry: count and lengths must match
	// the bytes exactly.
	c := sampleChallenge()
	c.Attrs = descopeAttrs(ptr(true), ptr(false))
	attrsValid := c.encode()
	tail := len(valid) // where the count byte is
	withAttrs := func(f func([]byte) []byte) []byte { return f(bytes.Clone(attrsValid)) }
	for name, b := range map[string][]byte{
		"version 1 with attributes": withAttrs(func(b []byte) []byte { b[0] = 1; return b }),
		"count 0":                   withAttrs(func(b []byte) []byte { b[tail] = 0; return b }),
		"count too high":            withAttrs(func(b []byte) []byte { b[tail] = 3; return b }),
		"count over the bound":      withAttrs(func(b []byte) []byte { b[tail] = MaxAttributes + 1; return b }),
		"count too low":             withAttrs(func(b []byte) []byte { b[tail] = 1; return b }),
		"name length too long":      withAttrs(func(b []byte) []byte { b[tail+1] = 200; return b }),
		"name length too short":     withAttrs(func(b []byte) []byte { b[tail+1]--; return b }),
		"trailing byte":             append(bytes.Clone(attrsValid), 0),
		"count only":                withAttrs(func(b []byte) []byte { return b[:tail+1] }),
	} {
		if c, err := decodeChallenge(b); err == nil {
			t.Errorf("%s: decoded %+v", name, c)
		}
	}
	for i := len(valid); i < len(attrsValid); i++ {
		if _, err := decodeChallenge(attrsValid[:i]); err == nil {
			t.Fatalf("attributes truncated to %d bytes: decoded", i)
		}
	}
}

// largestAttrs are MaxAttributes attributes of the longest name and value.
func largestAttrs() []Attr {
	attrs := make([]Attr, MaxAttributes)
	for i := range attrs {
		name := []byte(strings.Repeat("n", MaxAttributeName))
		name[0] = 'a' + byte(i)
		attrs[i] = Attr{Name: string(name), Value: json.RawMessage(`"` + strings.Repeat("v", MaxAttributeValue-2) + `"`)}
	}
	return attrs
}

// Entries as the release before attributes wrote them (captured from its
// encoder, sampleChallenge pending): without Descope options, and with
// addToLoginIDs true and onMergeUseExisting false in bits 1..4.
const (
	goldenV1Plain = "0101021a47415f173aa27b1a4740d36471327b1a4740da6094de0000070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d90c2b33333631323334353637380566722d4341"
	goldenV1Flags = "010f021a47415f173aa27b1a4740d36471327b1a4740da6094de0000070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d90c2b33333631323334353637380566722d4341"
)

// A challenge without attributes is written exactly as before them: as
// small, and readable by the release before (it reads version 1 only).
func TestChallengeWithoutAttributesUnchanged(t *testing.T) {
	if got := hex.EncodeToString(sampleChallenge().encode()); got != goldenV1Plain {
		t.Fatalf("encoding changed\n got %s\nwant %s", got, goldenV1Plain)
	}
}

// Entries of the release before attributes still decode after an
// upgrade: the Descope option bits become the attributes compat_descope.go
// now passes, so a code sent before it verifies, and its events say the
// same.
func TestChallengeLegacyDescopeBits(t *testing.T) {
	b, _ := hex.DecodeString(goldenV1Flags)
	got, err := decodeChallenge(b)
	want := sampleChallenge()
	want.Attrs = descopeAttrs(ptr(true), ptr(false))
	if err != nil || !sameChallenge(got, want) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
	}

	// Every combination the old encoder could write: the same bytes as a
	// plain entry, with bits 1..4 set as it set them.
	vals := []*bool{nil, ptr(false), ptr(true)}
	bits := func(v *bool, set, on byte) byte {
		switch {
		case v == nil:
			return 0
		case *v:
			return set | on
		}
		return set
	}
	for _, pending := range []bool{false, true} {
		for _, l := range vals {
			for _, m := range vals {
				c := sampleChallenge()
				c.Pending = pending
				b := c.encode()
				b[1] |= bits(l, flagLoginIDsSet, flagLoginIDs) | bits(m, flagMergeExisting, flagMergeExistingOn)
				got, err := decodeChallenge(b)
				if err != nil {
					t.Fatal(err)
				}
				c.Attrs = descopeAttrs(l, m)
				if !sameChallenge(c, got) {
					t.Fatalf("flags %08b: got %+v, want %+v", b[1], got, c)
				}
				// Written again, they move to attributes, and the
				// pending bit stays bit 0.
				again := got.encode()
				if (again[1]&1 != 0) != pending || again[1]&^flagPending != 0 {
					t.Fatalf("flags byte %08b re-encoded as %08b", b[1], again[1])
				}
				if (l != nil || m != nil) != (again[0] == challengeVersionAttrs) {
					t.Fatalf("version %d for attributes %+v", again[0], got.Attrs)
				}
				if back, err := decodeChallenge(again); err != nil || !sameChallenge(c, back) {
					t.Fatalf("re-encoded: %+v, %v", back, err)
				}
			}
		}
	}

	// An entry from before the Descope bits existed reads as no options.
	old, _ := hex.DecodeString(goldenV1Plain)
	if old[1] != 1 {
		t.Fatalf("flags byte %08b for a plain pending challenge", old[1])
	}
	got, err = decodeChallenge(old)
	if err != nil || got.Attrs != nil || !got.Pending {
		t.Fatalf("old entry decoded as %+v, %v", got, err)
	}
	old[1] |= 0xE0 // bits a later version may use are ignored
	if _, err := decodeChallenge(old); err != nil {
		t.Fatal(err)
	}
}

// A code sent by the release before attributes, for a Descope update with
// both options, verifies after the upgrade, and phone.verified carries
// the options as attributes.
func TestLegacyChallengeStillVerifies(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	now := h.clock.Now()
	c := &challenge{Number: numUK, Pending: true, ExpiresAt: now.Add(h.cfg.TTL), SentAt: now,
		MAC: codeMAC(testSecret, "u", numUK, "123456"), Locale: "fr"}
	b := c.encode()
	b[1] |= flagLoginIDsSet | flagLoginIDs | flagMergeExisting // true, false
	if err := h.bc.Update(h.ctx, challengeKey("u"), func([]byte, bool) ([]byte, time.Duration, error) {
		return b, 2 * h.cfg.TTL, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.rec.take()
	h.mustVerify("u", "123456")
	h.wantUser("u", numUK, true)
	e := ev(events.TypeVerified, "u", numUK, numFR)
	e.Attributes = descopeAttrs(ptr(true), ptr(false))
	h.wantEvents(e)
}

// Attributes are bounded where the rules take them: too many, too long,
// or unfit for an event is an invalid request, and nothing is sent or kept.
func TestUpdateAttributesBounded(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("x", MaxAttributeName+1)
	for name, attrs := range map[string][]Attr{
		"too many":       append(largestAttrs(), Attr{Name: "z", Value: []byte("1")}),
		"name too long":  {{Name: long, Value: []byte("1")}},
		"value too long": {{Name: "a", Value: json.RawMessage(`"` + strings.Repeat("v", MaxAttributeValue-1) + `"`)}},
		"not JSON":       {{Name: "a", Value: []byte("{")}},
		"no value":       {{Name: "a"}},
		"event field":    {{Name: "phone_number", Value: []byte(`"x"`)}},
		"twice":          {{Name: "a", Value: []byte("1")}, {Name: "a", Value: []byte("2")}},
		"bad name":       {{Name: "addToLoginIDs", Value: []byte("true")}},
	} {
		_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Attributes: attrs})
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
		if strings.Contains(fmt.Sprint(err), long) {
			t.Errorf("%s: the error echoes an over-long name", name)
		}
	}
	if n := h.sender.Count(); n != 0 {
		t.Fatalf("%d SMS sent for refused updates", n)
	}
	if c := h.challenge("u"); c != nil {
		t.Fatalf("challenge kept: %+v", c)
	}
	h.wantUser("u", "", false)

	// At the bounds, and with white space that compaction removes: kept.
	attrs := largestAttrs()
	attrs[0].Value = json.RawMessage(" " + string(attrs[0].Value) + " ")
	if _, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Attributes: attrs}); err != nil {
		t.Fatal(err)
	}
	if c := h.challenge("u"); c == nil || !sameAttrs(c.Attrs, largestAttrs()) {
		t.Fatalf("challenge attributes = %+v", c)
	}
}

// A corrupt entry reads as no challenge at all.
func TestCorruptEntryIsNoPending(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numDE)
	if err := h.bc.Update(h.ctx, challengeKey("u"), func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte("junk"), time.Hour, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := h.verify("u", "123456")
	wantErr(t, err, ErrNoPending)
	_, err = h.resend("u")
	wantErr(t, err, ErrNoPending)
	wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
	if st, err := h.svc.Status(h.ctx, "u"); err != nil || st.PendingNumber != "" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	// A new update replaces the junk.
	h.mustUpdate("u", numFR, StatusPending)
	h.mustVerify("u", h.sender.LastCode(t))
}

func FuzzDecodeChallenge(f *testing.F) {
	f.Add(sampleChallenge().encode())
	f.Add([]byte{})
	f.Add([]byte{challengeVersion, 0, 0})
	withAttrs := sampleChallenge()
	withAttrs.Attrs = descopeAttrs(ptr(true), ptr(false))
	f.Add(withAttrs.encode())
	withAttrs.OpenAttempts = 2
	f.Add(withAttrs.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChallenge(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes, up to unused flag
		// bits and zero-time normalisation.
		again, err := decodeChallenge(c.encode())
		if err != nil || !sameChallenge(c, again) {
			t.Fatalf("re-decode of %x: %+v, %v", b, again, err)
		}
	})
}

func TestCodeMACBinding(t *testing.T) {
	base := codeMAC(testSecret, "u", numFR, "123456")
	if base != codeMAC(testSecret, "u", numFR, "123456") {
		t.Fatal("MAC is not deterministic")
	}
	others := map[string][32]byte{
		"other user":   codeMAC(testSecret, "v", numFR, "123456"),
		"other number": codeMAC(testSecret, "u", numUS, "123456"),
		"other code":   codeMAC(testSecret, "u", numFR, "123457"),
		"other secret": codeMAC([]byte("another secret, 16+ bytes"), "u", numFR, "123456"),
		// The separators keep fields from sliding into each other.
		"shifted user/number": codeMAC(testSecret, "u+", "33612345678", "123456"),
		"shifted number/code": codeMAC(testSecret, "u", numFR+"1", "23456"),
	}
	for name, m := range others {
		if m == base {
			t.Errorf("%s: same MAC", name)
		}
	}
	if sha256.Sum256([]byte("123456")) == base {
		t.Fatal("MAC is a bare hash of the code")
	}
}
