package flow

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// claimFor bounds how long a verify may hold a challenge while it writes
// to the store; a crashed instance's claim lapses after it.
const claimFor = 30 * time.Second

// VerifyRequest carries a code typed by the user; PhoneNumber, when given,
// must be the number the code went to.
type VerifyRequest struct {
	UserID      string
	Code        string
	PhoneNumber string
	ClientIP    string // for verify_per_ip
	// Tokenless says the caller proved no user (Descope's verify with the
	// project ID alone, SPEC §6): anyone who knows the user ID can send
	// it. Its wrong codes count in the challenge's token-less budget
	// (max_attempts of its own) and verify_per_ip, never in the owner's
	// attempts or verify_per_user; a call that finds no open challenge
	// still spends verify_per_ip.
	Tokenless bool
	// index is the token-less index entry the user was found by
	// (VerifyByNumber): it must still point at the user when the right
	// code has claimed the challenge.
	index string
}

// Verify checks a code. The right one makes the challenged number the
// user's verified number and consumes the challenge; exactly one of many
// concurrent verifies of one code succeeds, on any cache backend, because
// the winner claims the challenge atomically before writing the store.
func (s *Service) Verify(ctx context.Context, r VerifyRequest) (store.User, error) {
	if r.Code == "" || len(r.Code) > 32 {
		return store.User{}, fmt.Errorf("%w: code must be 1..32 characters", ErrInvalidRequest)
	}
	var number string
	if r.PhoneNumber != "" {
		n, err := s.numbers.Normalize(r.PhoneNumber)
		if err != nil {
			return store.User{}, err
		}
		number = n
	}
	unlock, err := s.lockUser(ctx, r.UserID)
	if err != nil {
		return store.User{}, err
	}
	defer unlock()
	failKey, ipFailKey := "vf:"+r.UserID, ""
	if r.ClientIP != "" {
		ipFailKey = "v" + ipKey(r.ClientIP)
	}
	if r.Tokenless {
		failKey = "" // a stranger's guesses never spend the owner's budget
	}
	if err := s.check(ctx, "verify_per_user", failKey, s.cfg.Limits.VerifyPerUser); err != nil {
		return store.User{}, cacheErr(err)
	}
	// Checked before the challenge is touched: one client guessing against
	// many users (Descope's verify needs only the public project ID) must
	// not lock their challenges or spend their budgets.
	if err := s.check(ctx, "verify_per_ip", ipFailKey, s.cfg.Limits.VerifyPerIP); err != nil {
		return store.User{}, cacheErr(err)
	}
	now := s.clock.Now()
	var won *challenge
	wrongLeft := -1 // set when this call counted a wrong code
	err = s.cache.Update(ctx, challengeKey(r.UserID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		won, wrongLeft = nil, -1
		c, err := s.openChallenge(old, found, now)
		if err != nil {
			return nil, 0, err
		}
		if number != "" && number != c.Number {
			return nil, 0, ErrNoPending
		}
		attempts := &c.Attempts
		if r.Tokenless {
			attempts = &c.OpenAttempts
		}
		if *attempts >= s.cfg.MaxAttempts {
			return nil, 0, ErrTooManyAttempts
		}
		mac := codeMAC(s.cfg.Secret, r.UserID, c.Number, r.Code)
		if !hmac.Equal(mac[:], c.MAC[:]) {
			*attempts++
			wrongLeft = s.cfg.MaxAttempts - *attempts
			return c.encode(), s.entryTTL(), nil
		}
		// Claimed at least until the code would expire anyway: if the
		// consuming delete below fails, a lapsed claim must not reopen a
		// code that was already used.
		c.ClaimedUntil = now.Add(claimFor)
		if c.ClaimedUntil.Before(c.ExpiresAt) {
			c.ClaimedUntil = c.ExpiresAt
		}
		won = c
		return c.encode(), s.entryTTL(), nil
	})
	if err == nil && won != nil && r.index != "" {
		// Found by a number: a newer update of another user to it, made
		// since the entry was read, makes that user's challenge the
		// reachable one, and this claim must not stand.
		var still bool
		if still, err = s.stillIndexed(ctx, r.index, r.UserID); err == nil && !still {
			err = ErrNoPending
		}
		if err != nil {
			s.release(ctx, r.UserID, won.MAC)
		}
	}
	if err != nil {
		if r.Tokenless && !errors.Is(cacheErr(err), ErrUnavailable) {
			// Nothing to guess at (no challenge, expired, locked): a poll
			// for whom has one still costs the caller.
			if lerr := s.take(ctx, "verify_per_ip", ipFailKey, s.cfg.Limits.VerifyPerIP); lerr != nil && !errors.Is(lerr, ErrRateLimited) {
				return store.User{}, cacheErr(lerr)
			}
		}
		return store.User{}, cacheErr(err)
	}
	if wrongLeft >= 0 {
		// The wrong guess is counted in the challenge; the per-user
		// budget spans challenges, so updates and resends cannot refill it.
		if lerr := s.take(ctx, "verify_per_user", failKey, s.cfg.Limits.VerifyPerUser); lerr != nil && !errors.Is(lerr, ErrRateLimited) {
			return store.User{}, cacheErr(lerr)
		}
		if lerr := s.take(ctx, "verify_per_ip", ipFailKey, s.cfg.Limits.VerifyPerIP); lerr != nil && !errors.Is(lerr, ErrRateLimited) {
			return store.User{}, cacheErr(lerr)
		}
		return store.User{}, &CodeError{AttemptsLeft: wrongLeft}
	}
	// The number replaced, for the phone.verified event and notify_previous.
	var old store.User
	if s.events != nil || s.cfg.NotifyPrevious {
		var err error
		if old, err = s.users.Get(ctx, r.UserID); err != nil {
			s.release(ctx, r.UserID, won.MAC)
			return store.User{}, err
		}
	}
	u := store.User{ID: r.UserID, PhoneNumber: won.Number, Verified: true}
	var previous string
	if old.PhoneNumber != won.Number {
		previous = old.PhoneNumber
	}
	ev := withChannel(s.event(events.TypeVerified, r.UserID, won.Number, previous, won.Attrs), won.Channel)
	switch err := s.setAndEmit(ctx, u, ev); {
	case err == nil, errors.Is(err, ErrPhoneInUse):
		// Possession is proven either way: the challenge is spent. A failed
		// delete is left alone: the claim lapses, and the code can no
		// longer match a fresh update.
		_ = s.cache.Delete(ctx, challengeKey(r.UserID))
		if s.cfg.IndexNumbers {
			s.dropIndex(ctx, numberIndexKey(won.Number), r.UserID)
		}
		if err != nil {
			return store.User{}, err
		}
		s.liftCooldown(ctx, r.UserID, won.Number)
		if old.Verified && previous != "" {
			s.notifyPrevious(ctx, r.UserID, previous)
		}
		return u, nil
	default:
		// Nothing was written: give the challenge back so the same code
		// works once the store is back.
		s.release(ctx, r.UserID, won.MAC)
		return store.User{}, err
	}
}
