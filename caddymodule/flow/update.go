package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
	"go.uber.org/zap"
)

// UpdateRequest asks to change a user's number.
type UpdateRequest struct {
	UserID      string
	PhoneNumber string // as typed; normalised by the rules
	Locale      string
	// TemplateOptions reach the template and the webhook body; over the
	// bounds (MaxTemplateOptions, …): ErrInvalidRequest.
	TemplateOptions map[string]string
	ProviderID      string
	// Channel is how the code goes: sms ("" too), whatsapp or voice.
	Channel  string
	ClientIP string
	// Attributes are vendor-specific fields of the call (Descope's
	// add_to_login_ids and on_merge_use_existing), in order; none for most
	// calls. They are kept with the challenge and told in the events of
	// this change (phone.verified included). Over the bounds
	// (MaxAttributes, …), or not fit for an event: ErrInvalidRequest.
	Attributes []Attr
}

// Update outcomes.
const (
	StatusUpdated   = "updated"
	StatusPending   = "pending"
	StatusUnchanged = "unchanged"
)

// UpdateResult tells what an update did.
type UpdateResult struct {
	Status        string     // StatusUpdated, StatusPending or StatusUnchanged
	User          store.User // the number in force after the call
	PendingNumber string
	SentTo        string // the number the code went to; "" when none was sent
	Channel       string // how it went; "" when none was sent
	ExpiresIn     time.Duration
	ResendAfter   time.Duration
}

// Update applies the four rules of SPEC §4. A failed delivery returns the
// result so far together with an error wrapping ErrDeliveryFailed: under
// rule 2 the number stays stored and the challenge stays open.
func (s *Service) Update(ctx context.Context, r UpdateRequest) (UpdateResult, error) {
	channel, err := s.channel(r.Channel, sms.ChannelSMS)
	if err != nil {
		return UpdateResult{}, err
	}
	attrs, err := checkAttrs(r.Attributes)
	if err != nil {
		return UpdateResult{}, err
	}
	if err := CheckTemplateOptions("template_options", r.TemplateOptions); err != nil {
		return UpdateResult{}, err
	}
	now := s.clock.Now() // of the early refusals; the locked path reads the clock again
	if err := s.rememberedCooldown(ctx, r.UserID, r.PhoneNumber, now); err != nil {
		return UpdateResult{}, err
	}
	if err := s.rememberedCallerRefusal(ctx, r.UserID, r.ClientIP, now); err != nil {
		return UpdateResult{}, err
	}
	caller := s.callerBudgets(r.UserID, r.ClientIP)
	callerChecked, err := s.refuseBeforeNumber(ctx, r.UserID, r.ClientIP, caller[:], now)
	if err != nil {
		return UpdateResult{}, err
	}
	number, err := s.numbers.Normalize(r.PhoneNumber)
	if err != nil {
		return UpdateResult{}, err
	}
	budgets, err := s.refuseEarly(ctx, r.UserID, number, caller[:], callerChecked, now)
	if err != nil {
		s.rememberCooldown(r.UserID, r.PhoneNumber, number, err, now)
		return UpdateResult{}, err
	}
	unlock, err := s.lockUser(ctx, r.UserID)
	if err != nil {
		return UpdateResult{}, err
	}
	defer unlock()
	u, err := s.users.Get(ctx, r.UserID)
	if err != nil {
		return UpdateResult{}, err
	}
	// Rule 4 first: re-entering the verified number never downgrades it.
	if u.Verified && u.PhoneNumber == number {
		if err := s.cache.Delete(ctx, challengeKey(r.UserID)); err != nil {
			return UpdateResult{}, cacheErr(err)
		}
		return UpdateResult{Status: StatusUnchanged, User: u}, nil
	}
	if held, err := s.holdsVerified(ctx, r.UserID, number); err != nil || held {
		if err != nil {
			return UpdateResult{}, err
		}
		return s.switchToHeld(ctx, u, number, attrs)
	}
	if !s.cfg.Verification { // rule 1
		nu := store.User{ID: r.UserID, PhoneNumber: number}
		var ev *events.Event
		if u != nu {
			ev = s.event(events.TypeUpdated, r.UserID, number, u.PhoneNumber, attrs)
		}
		if err := s.setDroppingChallenge(ctx, nu, ev); err != nil {
			return UpdateResult{}, err
		}
		if u != nu && u.Verified && u.PhoneNumber != "" {
			s.notifyPrevious(ctx, r.UserID, u.PhoneNumber)
		}
		return UpdateResult{Status: StatusUpdated, User: nu}, nil
	}
	now = s.clock.Now()
	if err := s.startCooldown(ctx, r.UserID, number, now); err != nil {
		return UpdateResult{}, err
	}
	sent := false
	defer func() {
		if !sent { // no code went out: asking again need not wait
			s.endCooldown(ctx, r.UserID, number, now)
		}
	}()
	pending := u.Verified // rule 3; otherwise rule 2
	res := UpdateResult{Status: StatusUpdated, User: u, SentTo: number, Channel: channel,
		ExpiresIn: s.cfg.TTL, ResendAfter: s.cfg.ResendAfter}
	if pending {
		res.Status, res.PendingNumber = StatusPending, number
	}
	code, err := s.newCode()
	if err != nil {
		return UpdateResult{}, err
	}
	c := &challenge{Number: number, Pending: pending, ExpiresAt: now.Add(s.cfg.TTL),
		SentAt: now, MAC: codeMAC(s.cfg.Secret, r.UserID, number, code), Locale: storedLocale(r.Locale),
		Channel: channel, Attrs: attrs}
	// The writes go in the order that lets a failure at any step leave the
	// old state (issue 9, item 4): the challenge first (the one it replaces
	// kept aside), then the budgets, then, for rule 2, the number; a
	// failure puts the old challenge back, so it can neither be lost nor
	// later switch a number that was never stored. One open challenge per
	// user: this replaces any other, attempts and all.
	if pending {
		// phone.pending tells of the challenge, which lives in the cache,
		// not the store: it is recorded before the challenge is written,
		// and a change it told of may then fail (SPEC §9: advisory). An
		// event that cannot be recorded stops the change.
		if e := withChannel(s.event(events.TypePending, r.UserID, number, u.PhoneNumber, attrs), channel); e != nil {
			if err := s.events.Emit(ctx, *e); err != nil {
				return UpdateResult{}, fmt.Errorf("%w: phone.pending not recorded: %w", ErrUnavailable, err)
			}
		}
	}
	var replaced []byte
	if err := s.cache.Update(ctx, challengeKey(r.UserID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		replaced = nil
		if found {
			replaced = append([]byte(nil), old...)
		}
		return c.encode(), s.entryTTL(), nil
	}); err != nil {
		return UpdateResult{}, cacheErr(err)
	}
	// Budgets are spent before the store write, so a refused budget leaves
	// nothing changed; a store failure gives them back: it sent nothing.
	if err := s.spendBudgets(ctx, budgets); err != nil {
		s.restoreChallenge(ctx, r.UserID, c, replaced)
		return UpdateResult{}, err
	}
	// The latest update to a number is the one a token-less call by that
	// number reaches (tokenless_index.go); written before the store and
	// the SMS, so no code of this update can be typed before it points here.
	if s.cfg.IndexNumbers {
		if err := s.pointIndex(ctx, numberIndexKey(number), r.UserID, false); err != nil {
			s.restoreChallenge(ctx, r.UserID, c, replaced)
			s.refundBudgets(ctx, budgets)
			return UpdateResult{}, cacheErr(err)
		}
	}
	if !pending {
		nu := store.User{ID: r.UserID, PhoneNumber: number}
		if u != nu {
			ev := withChannel(s.event(events.TypeUpdated, r.UserID, number, u.PhoneNumber, attrs), channel)
			if err := s.setAndEmit(ctx, nu, ev); err != nil {
				s.restoreChallenge(ctx, r.UserID, c, replaced)
				s.refundBudgets(ctx, budgets)
				return UpdateResult{}, err
			}
		}
		res.User = nu
	}
	if err := s.send(ctx, r.UserID, number, code, "update", r.Locale, r.TemplateOptions, r.ProviderID, channel); err != nil {
		s.allowResendNow(ctx, r.UserID, c.MAC)
		res.ResendAfter = 0
		return res, err
	}
	sent = true
	return res, nil
}

// holdsVerified tells whether the user holds number verified among the
// numbers the admin API gave them; false when the store keeps one number.
func (s *Service) holdsVerified(ctx context.Context, userID, number string) (bool, error) {
	if s.held == nil {
		return false, nil
	}
	return s.held.HoldsVerified(ctx, userID, number)
}

// switchToHeld makes a number the user holds verified (an admin verified
// it) their number, verified, with no code: the store would keep it
// verified whatever the rules wrote (store.PhoneNumbers.HoldsVerified),
// and the answer must say what the store holds. Any open challenge goes.
func (s *Service) switchToHeld(ctx context.Context, u store.User, number string, attrs []Attr) (UpdateResult, error) {
	nu := store.User{ID: u.ID, PhoneNumber: number, Verified: true}
	ev := s.event(events.TypeUpdated, u.ID, number, u.PhoneNumber, attrs)
	if err := s.setDroppingChallenge(ctx, nu, ev); err != nil {
		return UpdateResult{}, err
	}
	s.liftCooldown(ctx, u.ID, number)
	if u.Verified && u.PhoneNumber != "" {
		s.notifyPrevious(ctx, u.ID, u.PhoneNumber)
	}
	return UpdateResult{Status: StatusUpdated, User: nu}, nil
}

// setDroppingChallenge stores nu (and its event) and ends the user's open
// challenge, in the order that lets a failure leave the old state: the
// challenge is taken out first (a cache failure then changed nothing),
// and put back if the store write fails. Dropped after the write
// instead, a cache failure would answer 503 for a change that stands.
func (s *Service) setDroppingChallenge(ctx context.Context, nu store.User, ev *events.Event) error {
	var dropped []byte
	err := s.cache.Update(ctx, challengeKey(nu.ID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		dropped = nil
		if found {
			dropped = append([]byte(nil), old...)
		}
		return nil, 0, nil
	})
	if err != nil {
		return cacheErr(err)
	}
	if err := s.setAndEmit(ctx, nu, ev); err != nil {
		if dropped != nil {
			s.restoreChallenge(ctx, nu.ID, nil, dropped)
		}
		return err
	}
	return nil
}

// restoreChallenge puts back the challenge an update replaced (old, nil
// when there was none), if the update's own c is still the one in place
// (c nil: if none is).
// It runs after a failure, even if the client has gone; failing, it logs:
// the update's challenge then stays, for a number no code was sent to.
func (s *Service) restoreChallenge(ctx context.Context, userID string, c *challenge, old []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	var mine []byte
	if c != nil {
		mine = c.encode()
	}
	err := s.cache.Update(ctx, challengeKey(userID), func(cur []byte, found bool) ([]byte, time.Duration, error) {
		if found != (c != nil) || !bytes.Equal(cur, mine) {
			return nil, 0, errNotMine
		}
		if old == nil {
			return nil, 0, nil
		}
		return old, s.entryTTL(), nil
	})
	if err != nil && !errors.Is(err, errNotMine) {
		s.logger.Warn("update failed and its challenge could not be withdrawn", zap.String("user_id", userID), zap.Error(err))
	}
}

// restoreTimeout bounds restoreChallenge.
const restoreTimeout = 5 * time.Second

// errNotMine keeps a challenge another call wrote since.
var errNotMine = errors.New("flow: challenge replaced since")
