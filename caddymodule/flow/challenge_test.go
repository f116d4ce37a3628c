package flow

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"
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
	return a.Number == b.Number && a.Pending == b.Pending && a.Attempts == b.Attempts &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.SentAt.Equal(b.SentAt) &&
		a.ClaimedUntil.Equal(b.ClaimedUntil) && a.MAC == b.MAC && a.Locale == b.Locale
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
		{"wrong version", with(func(b []byte) []byte { b[0] = 2; return b })},
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
