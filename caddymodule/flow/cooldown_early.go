package flow

import (
	"context"
)

// refuseInCooldown refuses, before the user's lock is taken, an update to a
// number whose resend cooldown is running (issue 13: the cost of saying
// no). An SMS-pumping flood sends the same update again and again; each
// used to wait for the user's lock (held by the previous one) to learn it
// was refused, so the flood's refusals ran one at a time. A refusal
// changes nothing, so it needs no lock: it reads the cooldown, then the
// user, and refuses only if neither rule 4 (the verified number typed
// again, answered "unchanged") nor a number the user holds verified among
// their others (made theirs with no code) applies: both come before the
// cooldown in Update. Anything else — no cooldown, a read that fails,
// either of those — goes on to the locked path, which checks everything
// again.
func (s *Service) refuseInCooldown(ctx context.Context, userID, number string) error {
	if !s.cfg.Verification || s.cfg.ResendAfter <= 0 {
		return nil
	}
	b, err := s.cache.Get(ctx, cooldownKey(userID, number))
	if err != nil {
		return nil
	}
	refused := s.coolingDown(b, s.clock.Now())
	if refused == nil {
		return nil
	}
	u, err := s.users.Get(ctx, userID)
	if err != nil || (u.Verified && u.PhoneNumber == number) {
		return nil
	}
	if held, err := s.holdsVerified(ctx, userID, number); err != nil || held {
		return nil
	}
	return refused
}
