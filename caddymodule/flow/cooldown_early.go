package flow

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// PeekUsers is a Users that can answer from a short read cache
// (store.CachedUsers): at most a few seconds behind another instance's
// write, never behind this instance's own.
type PeekUsers interface {
	Peek(ctx context.Context, userID string) (store.User, error)
}

// refuseEarly refuses, before the user's lock is taken and without
// reading the user from the store, an update that a running resend
// cooldown or a spent send budget refuses (issue 13: the cost of saying
// no). An SMS-pumping flood sends updates that are all refused; each used to wait for the user's
// lock and read the user from the store to learn it, which cost a
// refusal several times plain Caddy's answer. A refusal changes nothing,
// so it needs no lock, and the cooldown and the budgets are cache reads.
//
// It refuses only if neither rule 4 (the verified number typed again,
// answered "unchanged") nor a number the user holds verified among their
// others (made theirs with no code) applies: both come before the limits.
// Rule 4 is asked of the read cache when the store has one (PeekUsers):
// the module's own verifies and admin changes lift the cooldown of the
// number they verify (liftCooldown), on any instance, so what the read
// cache may miss is a number verified outside the module in its last
// seconds; such an update is answered 429 until the read cache or the
// cooldown catches up (README, API and errors). The held numbers (with
// admin) are read fresh.
//
// These checks are the only ones before the writes: inside the lock,
// startCooldown and spendBudgets enforce the same limits atomically, so
// an update that another overtook between here and there is still
// refused, and gives back what it took.
//
// It returns the send budgets of the update: caller (callerBudgets) and
// the number's. callerChecked says refuseBeforeNumber read caller's and
// they had room: only per_number is read here.
func (s *Service) refuseEarly(ctx context.Context, userID, number string, caller []budget, callerChecked bool, now time.Time) ([]budget, error) {
	if !s.cfg.Verification {
		return nil, nil // rule 1 sends nothing: no cooldown, no send budget
	}
	var budgets []budget
	refused := s.cooldownRefusal(ctx, userID, number, now)
	if refused == nil {
		budgets = s.withNumber(caller, number)
		check := budgets
		if callerChecked {
			check = budgets[1:2] // per_number (withNumber)
		}
		refused = s.checkBudgetsAt(ctx, check, now)
	}
	if errors.Is(refused, ErrRateLimited) {
		u, err := s.peekUser(ctx, userID)
		ruled := err != nil || (u.Verified && u.PhoneNumber == number)
		if !ruled {
			held, err := s.holdsVerified(ctx, userID, number)
			ruled = err != nil || held
		}
		if !ruled {
			return nil, refused
		}
		refused = nil // rule 4 or a held number may apply: the locked path reads the store and decides
	}
	if budgets == nil { // built once, and only for an update that goes on
		budgets = s.withNumber(caller, number)
	}
	return budgets, refused // refused: nil, or the cache is unavailable
}

// refuseBeforeNumber refuses, before the number is parsed, an update that
// a spent budget of the caller refuses whatever the number: global,
// per_user and per_ip do not depend on it. SMS pumping sends a new number
// each time, and parsing one (libphonenumber) costs several times the
// rest of a refusal. Rule 4 and a held number are the only answers that
// come before the budgets, and they need a user who holds a verified
// number, or admin on: then the decision waits for the parse
// (refuseEarly). So does a cache that fails (an unparsable number is
// still 400 first). It reports whether the budgets were read and had
// room, so that refuseEarly need not read them again.
func (s *Service) refuseBeforeNumber(ctx context.Context, userID, ip string, caller []budget, now time.Time) (checked bool, err error) {
	if !s.cfg.Verification {
		return false, nil
	}
	refused := s.checkBudgetsAt(ctx, caller, now)
	switch {
	case refused == nil:
		return true, nil
	case !errors.Is(refused, ErrRateLimited) || s.held != nil:
		return false, nil
	}
	if u, err := s.peekUser(ctx, userID); err != nil || u.Verified {
		return false, nil
	}
	s.memo.put(memoKey{user: userID, ip: ip}, "", refused, now)
	return false, refused
}

// cooldownRefusal is the RetryError of a running cooldown of userID's
// sends to number, nil when none runs, or the cache's failure.
func (s *Service) cooldownRefusal(ctx context.Context, userID, number string, now time.Time) error {
	if s.cfg.ResendAfter <= 0 {
		return nil
	}
	b, err := s.cache.Get(ctx, cooldownKey(userID, number))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return cacheErr(err)
	}
	return s.coolingDown(b, now)
}

func (s *Service) peekUser(ctx context.Context, userID string) (store.User, error) {
	if p, ok := s.users.(PeekUsers); ok {
		return p.Peek(ctx, userID)
	}
	return s.users.Get(ctx, userID)
}
