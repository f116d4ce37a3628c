package flow

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// openChallenge decodes a challenge a verify or resend may act on.
func (s *Service) openChallenge(b []byte, found bool, now time.Time) (*challenge, error) {
	if !found {
		return nil, ErrNoPending
	}
	c, err := decodeChallenge(b)
	if err != nil {
		return nil, ErrNoPending
	}
	if now.Before(c.ClaimedUntil) {
		return nil, ErrNoPending // another verify of this code is finishing
	}
	if !now.Before(c.ExpiresAt) {
		return c, ErrExpired
	}
	return c, nil
}

func (s *Service) loadChallenge(ctx context.Context, userID string) (*challenge, error) {
	b, err := s.cache.Get(ctx, challengeKey(userID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoPending
	}
	if err != nil {
		return nil, cacheErr(err)
	}
	c, err := decodeChallenge(b)
	if err != nil {
		return nil, ErrNoPending
	}
	return c, nil
}

// allowResendNow clears the cooldown of the challenge whose code just
// failed to go out, so the user can ask again at once (SPEC §5, 502).
func (s *Service) allowResendNow(ctx context.Context, userID string, mac [32]byte) {
	s.rewrite(ctx, userID, mac, func(c *challenge) { c.SentAt = time.Time{} })
}

// release gives back a challenge claimed by a verify whose store write failed.
func (s *Service) release(ctx context.Context, userID string, mac [32]byte) {
	s.rewrite(ctx, userID, mac, func(c *challenge) { c.ClaimedUntil = time.Time{} })
}

// rewrite changes the challenge only if it is still the one with mac.
func (s *Service) rewrite(ctx context.Context, userID string, mac [32]byte, change func(*challenge)) {
	// A cancelled request context must not leave the challenge stuck.
	ctx = context.WithoutCancel(ctx)
	_ = s.cache.Update(ctx, challengeKey(userID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		if !found {
			return nil, 0, errNotOurs
		}
		c, err := decodeChallenge(old)
		if err != nil || c.MAC != mac {
			return nil, 0, errNotOurs
		}
		change(c)
		return c.encode(), s.entryTTL(), nil
	})
}

var errNotOurs = errors.New("challenge replaced")

// storedLocale keeps a challenge's locale short: the template package
// ignores longer ones anyway, and the compact encoding holds 255 bytes.
func storedLocale(l string) string {
	if len(l) > 35 {
		return ""
	}
	return l
}

// entryTTL keeps an expired challenge a while longer than its code so
// verify can say code_expired rather than no_pending_verification.
func (s *Service) entryTTL() time.Duration { return 2 * s.cfg.TTL }

func challengeKey(userID string) string { return "c:" + userID }
