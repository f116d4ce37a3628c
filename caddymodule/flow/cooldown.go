package flow

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"
)

// The resend cooldown (`otp resend_after`) binds a user and a number, not
// a challenge (SPEC §4): asking again for the same number waits it out
// whatever became of the challenge in between (canceled, replaced by an
// update to another number, dropped by an admin change). Each send to a
// number keeps the time it went out under its own key, for resend_after;
// a send that failed, or never happened, lifts it at once.

// cooldownKey is the cooldown of userID's sends to number: a number is
// E.164 (no ':'), so the key is unambiguous for any user ID.
func cooldownKey(userID, number string) string { return "rc:" + number + ":" + userID }

func encodeSentAt(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(t.UnixNano()))
}

// cooldownFor is how long a send holds the next one to its number:
// resend_after, but never past the code's ttl (a code that has expired
// no longer holds a new one back).
func (s *Service) cooldownFor() time.Duration { return min(s.cfg.ResendAfter, s.cfg.TTL) }

// coolingDown refuses a send before resend_after has passed since the
// send recorded in b.
func (s *Service) coolingDown(b []byte, now time.Time) error {
	if len(b) != 8 {
		return nil
	}
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	if wait := sent.Add(s.cooldownFor()).Sub(now); wait > 0 {
		return &RetryError{After: wait, Err: ErrRateLimited, Limit: limitCooldown}
	}
	return nil
}

// limitCooldown names the cooldown in a RetryError, as a budget's name
// names the budget.
const limitCooldown = "resend_after"

// startCooldown starts the cooldown of a send to number at now, or
// refuses if one is running (another instance sent meanwhile): checked
// and written in one step, so two concurrent sends cannot both pass.
func (s *Service) startCooldown(ctx context.Context, userID, number string, now time.Time) error {
	if s.cfg.ResendAfter <= 0 {
		return nil
	}
	return cacheErr(s.cache.Update(ctx, cooldownKey(userID, number), func(old []byte, found bool) ([]byte, time.Duration, error) {
		if found {
			if err := s.coolingDown(old, now); err != nil {
				return nil, 0, err
			}
		}
		return encodeSentAt(now), s.cooldownFor(), nil
	}))
}

// endCooldown lifts the cooldown started at sentAt when its code did not
// go out (SPEC §5: after a 502 or a 503 the user may ask again at once);
// a later send's cooldown is left alone.
func (s *Service) endCooldown(ctx context.Context, userID, number string, sentAt time.Time) {
	if s.cfg.ResendAfter <= 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	_ = s.cache.Update(ctx, cooldownKey(userID, number), func(old []byte, found bool) ([]byte, time.Duration, error) {
		if !found || !bytes.Equal(old, encodeSentAt(sentAt)) {
			return nil, 0, errNotOurs
		}
		return nil, 0, nil
	})
}

// liftCooldown ends the cooldown of userID's sends to number once the
// number is verified theirs (a verify, an admin change, a held number
// made theirs): an update to it is then rule 4's "unchanged", which the
// early refusal (refuseEarly) must not answer 429. No send is lost to
// it: a verified number gets no code until it stops being the user's.
// Best effort: a failure leaves a cooldown that runs out by itself.
func (s *Service) liftCooldown(ctx context.Context, userID, number string) {
	if s.cfg.ResendAfter <= 0 || number == "" {
		return
	}
	_ = s.cache.Delete(context.WithoutCancel(ctx), cooldownKey(userID, number))
}
