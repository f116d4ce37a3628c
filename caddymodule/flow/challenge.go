package flow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// challenge is one user's open verification. It is stored in the cache in
// a compact binary form (about 80 bytes plus the number) because a
// deployment may hold a million of them; the code itself is never stored,
// only its HMAC.
type challenge struct {
	Number       string // E.164 number the code went to
	Pending      bool   // rule 3: a change held until verified
	Attempts     int    // wrong codes so far; resend keeps it
	ExpiresAt    time.Time
	SentAt       time.Time // zero after a failed delivery: resend at once
	ClaimedUntil time.Time // a verify is writing to the store until then
	MAC          [sha256.Size]byte
	Locale       string // locale of the update, reused by resend
	Flags        descopeFlags
}

// descopeFlags are Descope's update options, told in the events of the
// change.
type descopeFlags struct {
	AddToLoginIDs, OnMergeUseExisting *bool
}

// challengeVersion is the first byte of an entry. The flags byte after it
// grew bits within version 1: older entries have them clear (no Descope
// options), and older code ignores them, so instances of both ages can
// share a cache.
const challengeVersion = 1

// Bits of the flags byte; bits 5..7 are free and ignored when read.
const (
	flagPending         = 1 << 0
	flagLoginIDsSet     = 1 << 1 // AddToLoginIDs given …
	flagLoginIDs        = 1 << 2 // … and true
	flagMergeExisting   = 1 << 3 // OnMergeUseExisting given …
	flagMergeExistingOn = 1 << 4 // … and true
)

var errCorrupt = errors.New("corrupt challenge entry")

func (c *challenge) encode() []byte {
	b := make([]byte, 0, 64+len(c.Number)+len(c.Locale))
	b = append(b, challengeVersion)
	var flags byte
	if c.Pending {
		flags |= flagPending
	}
	flags |= triBits(c.Flags.AddToLoginIDs, flagLoginIDsSet, flagLoginIDs)
	flags |= triBits(c.Flags.OnMergeUseExisting, flagMergeExisting, flagMergeExistingOn)
	b = append(b, flags, byte(min(c.Attempts, 255)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.ExpiresAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.SentAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(c.ClaimedUntil)))
	b = append(b, c.MAC[:]...)
	b = append(b, byte(len(c.Number)))
	b = append(b, c.Number...)
	b = append(b, byte(len(c.Locale)))
	b = append(b, c.Locale...)
	return b
}

func decodeChallenge(b []byte) (*challenge, error) {
	const fixed = 3 + 3*8 + sha256.Size
	if len(b) < fixed+2 || b[0] != challengeVersion {
		return nil, errCorrupt
	}
	c := &challenge{Pending: b[1]&flagPending != 0, Attempts: int(b[2])}
	c.Flags.AddToLoginIDs = fromTriBits(b[1], flagLoginIDsSet, flagLoginIDs)
	c.Flags.OnMergeUseExisting = fromTriBits(b[1], flagMergeExisting, flagMergeExistingOn)
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
	if len(rest) != 1+l {
		return nil, errCorrupt
	}
	c.Locale = string(rest[1:])
	return c, nil
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

// triBits packs an optional bool into two bits: given, and its value.
func triBits(v *bool, set, on byte) byte {
	switch {
	case v == nil:
		return 0
	case *v:
		return set | on
	}
	return set
}

func fromTriBits(flags, set, on byte) *bool {
	if flags&set == 0 {
		return nil
	}
	v := flags&on != 0
	return &v
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
