package flow

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
)

// challenge is one user's open verification. It is stored in the cache in
// a compact binary form (about 80 bytes plus the number, and the
// attributes if any) because a deployment may hold a million of them; the
// code itself is never stored, only its HMAC.
type challenge struct {
	Number       string // E.164 number the code went to
	Pending      bool   // rule 3: a change held until verified
	Attempts     int    // wrong codes so far; resend keeps it
	OpenAttempts int    // wrong codes of token-less verifies (SPEC §6): a budget of their own; resend keeps it
	ExpiresAt    time.Time
	SentAt       time.Time // zero after a failed delivery: resend at once
	ClaimedUntil time.Time // a verify is writing to the store until then
	MAC          [sha256.Size]byte
	Locale       string // locale of the update, reused by resend
	Channel      string // how the code went: sms ("" reads as sms), whatsapp, voice; flags bits 5..6
	// Attrs are the update's vendor-specific attributes, told in the
	// events of the change (phone.verified included).
	Attrs []Attr
}

// The first byte of an entry is its version:
//
//	1: version, flags, attempts, expires, sent, claimed until (unix nanos,
//	   8 bytes each), MAC, then number and locale (a length byte each).
//	2: version 1's layout, then the attributes: a count byte (1..MaxAttributes),
//	   and for each a length byte and the name, a length byte and the value.
//	3: version 1's layout, then the token-less attempts (a byte, 1..255),
//	   then the attributes as in version 2, if any.
//
// An entry without attributes is written as version 1, so its size is
// what it was before attributes, and the release before them (which reads
// version 1 only) still reads it while instances of both ages share a
// cache. That release wrote Descope's two options into bits 1..4 of the
// flags byte: decoding maps them to the attributes compat_descope.go now
// passes, so a code sent before an upgrade still verifies, and its events
// still carry them. Likewise an entry is written as version 3 only once
// a token-less verify counted a wrong code in it.
const (
	challengeVersion      = 1
	challengeVersionAttrs = 2
	challengeVersionOpen  = 3
)

// Bits of the flags byte; bits 5..6 hold the channel (channels.go), bit
// 7 is free and ignored when read.
const (
	flagPending = 1 << 0
	// Written by the release before attributes only (version 1).
	flagLoginIDsSet     = 1 << 1 // add_to_login_ids given …
	flagLoginIDs        = 1 << 2 // … and true
	flagMergeExisting   = 1 << 3 // on_merge_use_existing given …
	flagMergeExistingOn = 1 << 4 // … and true
)

var errCorrupt = errors.New("corrupt challenge entry")

func (c *challenge) encode() []byte {
	n := 64 + len(c.Number) + len(c.Locale)
	version := byte(challengeVersion)
	if c.OpenAttempts > 0 {
		version = challengeVersionOpen
		n++
	}
	if len(c.Attrs) > 0 {
		if version == challengeVersion {
			version = challengeVersionAttrs
		}
		n++
		for _, a := range c.Attrs {
			n += 2 + len(a.Name) + len(a.Value)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, version)
	var flags byte
	if c.Pending {
		flags |= flagPending
	}
	flags |= channelBits(c.Channel)
	b = append(b, flags, byte(min(c.Attempts, 255)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.ExpiresAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.SentAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.ClaimedUntil)))
	b = append(b, c.MAC[:]...)
	b = append(b, byte(len(c.Number)))
	b = append(b, c.Number...)
	b = append(b, byte(len(c.Locale)))
	b = append(b, c.Locale...)
	if version == challengeVersionOpen {
		b = append(b, byte(min(c.OpenAttempts, 255)))
	}
	if len(c.Attrs) > 0 {
		// checkAttrs bounds them before any is kept: the lengths fit a byte.
		b = append(b, byte(len(c.Attrs)))
		for _, a := range c.Attrs {
			b = append(b, byte(len(a.Name)))
			b = append(b, a.Name...)
			b = append(b, byte(len(a.Value)))
			b = append(b, a.Value...)
		}
	}
	return b
}

func decodeChallenge(b []byte) (*challenge, error) {
	const fixed = 3 + 3*8 + sha256.Size
	if len(b) < fixed+2 || b[0] < challengeVersion || b[0] > challengeVersionOpen {
		return nil, errCorrupt
	}
	c := &challenge{Pending: b[1]&flagPending != 0, Attempts: int(b[2]), Channel: channelOfBits(b[1])}
	c.ExpiresAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[3:])))
	c.SentAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[11:])))
	c.ClaimedUntil = fromUnixNano(int64(binary.BigEndian.Uint64(b[19:])))
	copy(c.MAC[:], b[27:fixed])
	rest := b[fixed:]
	n := int(rest[0])
	if len(rest) < 1+n+1 {
		return nil, errCorrupt
	}
	c.Number = string(rest[1 : 1+n])
	rest = rest[1+n:]
	l := int(rest[0])
	if len(rest) < 1+l {
		return nil, errCorrupt
	}
	c.Locale = string(rest[1 : 1+l])
	rest = rest[1+l:]
	if b[0] == challengeVersion {
		if len(rest) != 0 {
			return nil, errCorrupt
		}
		c.Attrs = legacyAttrs(b[1])
		return c, nil
	}
	if b[0] == challengeVersionOpen {
		if len(rest) == 0 || rest[0] == 0 {
			return nil, errCorrupt
		}
		c.OpenAttempts, rest = int(rest[0]), rest[1:]
		if len(rest) == 0 {
			return c, nil
		}
	}
	attrs, err := decodeAttrs(rest)
	if err != nil {
		return nil, err
	}
	c.Attrs = attrs
	return c, nil
}

// decodeAttrs reads the attributes of a version 2 entry, which end it.
// The values are copied: b may be the cache's own buffer.
func decodeAttrs(b []byte) ([]Attr, error) {
	if len(b) == 0 || b[0] == 0 || int(b[0]) > MaxAttributes {
		return nil, errCorrupt
	}
	attrs := make([]Attr, b[0])
	b = b[1:]
	next := func() ([]byte, bool) { // one length byte, then that many bytes
		if len(b) == 0 || len(b) < 1+int(b[0]) {
			return nil, false
		}
		v := b[1 : 1+int(b[0])]
		b = b[1+len(v):]
		return v, true
	}
	for i := range attrs {
		name, ok := next()
		value, ok2 := next()
		if !ok || !ok2 {
			return nil, errCorrupt
		}
		attrs[i] = Attr{Name: string(name), Value: bytes.Clone(value)}
	}
	if len(b) != 0 {
		return nil, errCorrupt
	}
	return attrs, nil
}

// The names and values of the Descope options, as compat_descope.go
// passes them.
const (
	attrAddToLoginIDs      = "add_to_login_ids"
	attrOnMergeUseExisting = "on_merge_use_existing"
)

// legacyAttrs maps the Descope option bits of a version 1 entry to
// attributes: nil when neither is set, as in every entry this release
// writes.
func legacyAttrs(flags byte) []Attr {
	var attrs []Attr
	for _, o := range []struct {
		name    string
		set, on byte
	}{
		{attrAddToLoginIDs, flagLoginIDsSet, flagLoginIDs},
		{attrOnMergeUseExisting, flagMergeExisting, flagMergeExistingOn},
	} {
		if flags&o.set == 0 {
			continue
		}
		v := json.RawMessage("false")
		if flags&o.on != 0 {
			v = json.RawMessage("true")
		}
		attrs = append(attrs, Attr{Name: o.name, Value: v})
	}
	return attrs
}

// codeMAC binds the code to its user and number, so a hash leaked from the
// cache is useless for another user and cannot be brute-forced offline
// without the secret.
func codeMAC(secret []byte, userID, number, code string) [sha256.Size]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("phone-otp\x00"))
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(number))
	m.Write([]byte{0})
	m.Write([]byte(code))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
