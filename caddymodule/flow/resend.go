package flow

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/store"
)

// ResendRequest asks for a new code.
type ResendRequest struct {
	UserID string
	Locale string
	// Channel, when set, switches the challenge to it (sms, whatsapp,
	// voice); "" keeps the challenge's.
	Channel  string
	ClientIP string
	// OpenForUnverified lets a resend with no open challenge start one for
	// the user's unverified current number.
	OpenForUnverified bool
	// number and index are set by ResendByNumber: the challenge must be
	// for number, and the token-less index entry index must still point
	// at the user. tokenless spares the owner's per_user budget.
	number, index string
	tokenless     bool
}

// ResendResult tells where the new code went.
type ResendResult struct {
	SentTo      string
	Channel     string // how the new code went
	ExpiresIn   time.Duration
	ResendAfter time.Duration
}

// Resend sends a new code for the open challenge, voiding the old one and
// keeping its attempt count (NIST SP 800-63B). With no open challenge it
// answers ErrNoPending, unless r.OpenForUnverified asks it to open one for
// an unverified current number (ReachFive's first send).
func (s *Service) Resend(ctx context.Context, r ResendRequest) (ResendResult, error) {
	if r.Channel != "" { // refused before anything is read or sent
		if _, err := s.channel(r.Channel, ""); err != nil {
			return ResendResult{}, err
		}
	}
	unlock, err := s.lockUser(ctx, r.UserID)
	if err != nil {
		return ResendResult{}, err
	}
	defer unlock()
	now := s.clock.Now()
	var c *challenge
	b, err := s.cache.Get(ctx, challengeKey(r.UserID))
	switch {
	case err == nil:
		c, err = s.openChallenge(b, true, now)
		if errors.Is(err, ErrExpired) {
			c, err = nil, nil
		}
		if err != nil {
			return ResendResult{}, cacheErr(err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return ResendResult{}, cacheErr(err)
	}
	if c == nil {
		u, err := s.users.Get(ctx, r.UserID)
		if err != nil {
			return ResendResult{}, err
		}
		if !r.OpenForUnverified || u.PhoneNumber == "" || u.Verified {
			return ResendResult{}, ErrNoPending
		}
		c = &challenge{Number: u.PhoneNumber}
	}
	if r.number != "" && c.Number != r.number {
		return ResendResult{}, ErrNoPending
	}
	if r.index != "" {
		if still, err := s.stillIndexed(ctx, r.index, r.UserID); err != nil || !still {
			return ResendResult{}, cmp.Or(err, ErrNoPending)
		}
	}
	// The challenge's channel unless the call switches it; one no longer
	// enabled (the config changed since) is refused like any other.
	channel, err := s.channel(r.Channel, c.Channel)
	if err != nil {
		return ResendResult{}, err
	}
	if c.Attempts >= s.cfg.MaxAttempts {
		return ResendResult{}, ErrTooManyAttempts
	}
	if wait := c.SentAt.Add(s.cfg.ResendAfter).Sub(now); !c.SentAt.IsZero() && wait > 0 {
		return ResendResult{}, &RetryError{After: wait, Err: ErrRateLimited, Limit: limitCooldown}
	}
	budgets := s.sendBudgets(r.UserID, c.Number, r.ClientIP)
	if r.tokenless {
		// A caller who proved no user spends the number's and its own
		// address's budgets, never the owner's.
		budgets = slices.DeleteFunc(budgets, func(b budget) bool { return b.name == "per_user" })
	}
	if err := s.checkBudgets(ctx, budgets); err != nil {
		return ResendResult{}, err
	}
	// The cooldown of the user and number, which outlives challenges: a
	// first send for an unverified number (ReachFive) after a cancel waits
	// it out too.
	if err := s.startCooldown(ctx, r.UserID, c.Number, now); err != nil {
		return ResendResult{}, err
	}
	sent, number := false, c.Number
	defer func() {
		if !sent {
			s.endCooldown(ctx, r.UserID, number, now)
		}
	}()
	if err := s.spendBudgets(ctx, budgets); err != nil {
		return ResendResult{}, err
	}
	code, err := s.newCode()
	if err != nil {
		return ResendResult{}, err
	}
	locale := r.Locale
	if locale == "" {
		locale = c.Locale
	}
	readMAC, fromCache := c.MAC, !c.ExpiresAt.IsZero()
	newMAC := codeMAC(s.cfg.Secret, r.UserID, c.Number, code)
	// Rewrite the challenge only if it is still the one read above: another
	// instance may have counted wrong codes, verified it or replaced it
	// since, and a blind write would undo that.
	if err := s.cache.Update(ctx, challengeKey(r.UserID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		cur, err := s.openChallenge(old, found, now)
		switch {
		case fromCache && (err != nil || cur.MAC != readMAC):
			return nil, 0, ErrNoPending
		case fromCache && cur.Attempts >= s.cfg.MaxAttempts:
			return nil, 0, ErrTooManyAttempts
		case !fromCache && err == nil:
			return nil, 0, ErrNoPending // one was opened meanwhile: resend that one
		case !fromCache:
			cur = c
		}
		cur.MAC, cur.SentAt, cur.ExpiresAt, cur.Locale = newMAC, now, now.Add(s.cfg.TTL), storedLocale(locale)
		cur.Channel = channel
		c = cur
		return cur.encode(), s.entryTTL(), nil
	}); err != nil {
		return ResendResult{}, cacheErr(err)
	}
	if s.cfg.IndexNumbers {
		// A resend keeps its number reachable as long as its code lives,
		// unless a later update of another user took the number over; a
		// first send (ReachFive) opens a challenge as an update does.
		if err := s.pointIndex(ctx, numberIndexKey(c.Number), r.UserID, fromCache); err != nil && !errors.Is(err, errNotMine) {
			s.logger.Warn("resend: token-less index not refreshed", zap.String("user_id", r.UserID), zap.Error(err))
		}
	}
	res := ResendResult{SentTo: c.Number, Channel: channel, ExpiresIn: s.cfg.TTL, ResendAfter: s.cfg.ResendAfter}
	if err := s.send(ctx, r.UserID, c.Number, code, "resend", locale, nil, "", channel); err != nil {
		s.allowResendNow(ctx, r.UserID, c.MAC)
		return res, err
	}
	sent = true
	s.keepLoginID(ctx, r.UserID)
	return res, nil
}
