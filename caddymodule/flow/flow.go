// Package flow holds the Caddy-free rules of SPEC §4: update, verify,
// resend, cancel and status of a user's phone number. It sees the user
// store, the challenge cache, the SMS sender and the clock only through
// small interfaces, so tests drive it with fakes and no HTTP.
package flow

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// Users is the part of the user store the rules need.
type Users interface {
	Get(ctx context.Context, userID string) (store.User, error)
	Set(ctx context.Context, u store.User) error
}

// Cache holds challenges and counters.
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Update(ctx context.Context, key string, fn store.UpdateFunc) error
	Delete(ctx context.Context, key string) error
}

// Sender delivers an SMS.
type Sender interface {
	Send(ctx context.Context, m sms.Message) error
}

// Numbers normalises user input to E.164 or refuses it.
type Numbers interface {
	Normalize(input string) (string, error)
}

// Events receives the phone events (SPEC §8). Emit is called before the
// user's request is answered and should return once the event is durable;
// its error never fails the request: the rules log it and go on.
type Events interface {
	Emit(ctx context.Context, e events.Event) error
}

// TxEvents is an Events whose events the user store can write in the
// transaction of the change they tell of (a store.EventSetter over the
// outbox the events are delivered from): then a change and its event are
// kept together or not at all, even if the process dies in between.
type TxEvents interface {
	Events
	// OutboxEvent encodes e as the outbox holds it, in the stream of the
	// dispatcher that delivers it.
	OutboxEvent(e events.Event) (store.OutboxEvent, error)
	// Poke wakes the dispatcher after the store wrote an event.
	Poke()
}

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Config holds the rule settings of SPEC §2 (`verification`, `otp`,
// `limits`, `template`, `app_name`).
type Config struct {
	Verification bool // false: updates apply at once, unverified
	CodeLength   int  // 4..10 digits
	TTL          time.Duration
	MaxAttempts  int
	ResendAfter  time.Duration
	Limits       Limits
	AppName      string
	Templates    sms.Templates
	// Secret keys the HMAC of codes at rest; at least 16 bytes.
	Secret []byte
	// NotifyPrevious sends an SMS (Purpose "notify", no code) to the old
	// number when a verified number is replaced by another: by a verify,
	// or by an update with verification off.
	NotifyPrevious bool
	// NotifyTemplate is that SMS, with {app}; DefaultNotifyTemplate when "".
	NotifyTemplate string
}

// DefaultNotifyTemplate is the notify_previous SMS.
const DefaultNotifyTemplate = "Your {app} phone number was changed. If this wasn't you, contact support."

// Deps are the collaborators of a Service.
type Deps struct {
	Users   Users
	Cache   Cache
	Sender  Sender
	Numbers Numbers
	Clock   Clock     // default SystemClock
	Rand    io.Reader // default crypto/rand
	// ReadUsers, when set, serves Status: a read-only view that may be a
	// few seconds stale (a read cache). The rules themselves always use Users.
	ReadUsers Users
	// Events, when set, receives phone.updated, phone.pending,
	// phone.verified and phone.removed.
	Events Events
	// Logger gets what must not fail a request: a failed event or
	// notify_previous SMS. Default: none.
	Logger *zap.Logger
}

// Service applies the rules.
type Service struct {
	cfg     Config
	users   Users
	read    Users
	cache   Cache
	sender  Sender
	numbers Numbers
	clock   Clock
	rand    io.Reader
	events  Events
	logger  *zap.Logger
	locks   userLocks
}

// MaxTTL is the longest code life: an entry lives 2×TTL in a cache whose
// life window is 24h.
const MaxTTL = 12 * time.Hour

// claimFor bounds how long a verify may hold a challenge while it writes
// to the store; a crashed instance's claim lapses after it.
const claimFor = 30 * time.Second

// New checks cfg and builds a Service.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	switch {
	case len(cfg.Secret) < 16:
		return nil, errors.New("secret: must be at least 16 bytes")
	case d.Users == nil || d.Cache == nil || d.Sender == nil || d.Numbers == nil:
		return nil, errors.New("flow: users, cache, sender and numbers are required")
	}
	if err := cfg.Templates.Validate(); err != nil {
		return nil, err
	}
	if cfg.NotifyTemplate == "" {
		cfg.NotifyTemplate = DefaultNotifyTemplate
	}
	if strings.Contains(cfg.NotifyTemplate, "{code}") {
		return nil, errors.New("notify template: must not contain {code}: no code is sent to the old number")
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.ReadUsers == nil {
		d.ReadUsers = d.Users
	}
	s := &Service{cfg: cfg, users: d.Users, read: d.ReadUsers, cache: d.Cache, sender: d.Sender,
		numbers: d.Numbers, clock: d.Clock, rand: d.Rand, events: d.Events, logger: d.Logger}
	s.locks.seed = maphash.MakeSeed()
	return s, nil
}

// Status is what GET /phone shows.
type Status struct {
	User             store.User
	PendingNumber    string    // "" unless a rule-3 change is waiting
	PendingExpiresAt time.Time // zero unless PendingNumber is set
}

// Status returns the user's number and any pending change.
func (s *Service) Status(ctx context.Context, userID string) (Status, error) {
	u, err := s.read.Get(ctx, userID)
	if err != nil {
		return Status{}, err
	}
	st := Status{User: u}
	c, err := s.loadChallenge(ctx, userID)
	if err != nil && !errors.Is(err, ErrNoPending) {
		return Status{}, err
	}
	if c != nil && c.Pending && s.clock.Now().Before(c.ExpiresAt) {
		st.PendingNumber, st.PendingExpiresAt = c.Number, c.ExpiresAt
	}
	return st, nil
}

// UpdateRequest asks to change a user's number.
type UpdateRequest struct {
	UserID          string
	PhoneNumber     string // as typed; normalised by the rules
	Locale          string
	TemplateOptions map[string]string
	ProviderID      string
	ClientIP        string
	// Descope's addToLoginIDs and onMergeUseExisting: nil unless the call
	// came through Descope. They are kept with the challenge and travel in
	// the events of this change (phone.verified included).
	AddToLoginIDs, OnMergeUseExisting *bool
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
	ExpiresIn     time.Duration
	ResendAfter   time.Duration
}

// Update applies the four rules of SPEC §4. A failed delivery returns the
// result so far together with an error wrapping ErrDeliveryFailed: under
// rule 2 the number stays stored and the challenge stays open.
func (s *Service) Update(ctx context.Context, r UpdateRequest) (UpdateResult, error) {
	number, err := s.numbers.Normalize(r.PhoneNumber)
	if err != nil {
		return UpdateResult{}, err
	}
	defer s.locks.lock(r.UserID)()
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
	flags := descopeFlags{AddToLoginIDs: r.AddToLoginIDs, OnMergeUseExisting: r.OnMergeUseExisting}
	if !s.cfg.Verification { // rule 1
		nu := store.User{ID: r.UserID, PhoneNumber: number}
		var ev *events.Event
		if u != nu {
			ev = s.event(events.TypeUpdated, r.UserID, number, u.PhoneNumber, flags)
		}
		if err := s.setAndEmit(ctx, nu, ev); err != nil {
			return UpdateResult{}, err
		}
		if u != nu {
			if u.Verified && u.PhoneNumber != "" {
				s.notifyPrevious(ctx, r.UserID, u.PhoneNumber)
			}
		}
		if err := s.cache.Delete(ctx, challengeKey(r.UserID)); err != nil {
			return UpdateResult{}, cacheErr(err)
		}
		return UpdateResult{Status: StatusUpdated, User: nu}, nil
	}
	now := s.clock.Now()
	if err := s.cooldown(ctx, r.UserID, number, now); err != nil {
		return UpdateResult{}, err
	}
	budgets := s.sendBudgets(r.UserID, number, r.ClientIP)
	if err := s.checkBudgets(ctx, budgets); err != nil {
		return UpdateResult{}, err
	}
	pending := u.Verified // rule 3; otherwise rule 2
	res := UpdateResult{Status: StatusUpdated, User: u, SentTo: number,
		ExpiresIn: s.cfg.TTL, ResendAfter: s.cfg.ResendAfter}
	if pending {
		res.Status, res.PendingNumber = StatusPending, number
	} else {
		nu := store.User{ID: r.UserID, PhoneNumber: number}
		if u != nu {
			ev := s.event(events.TypeUpdated, r.UserID, number, u.PhoneNumber, flags)
			if err := s.setAndEmit(ctx, nu, ev); err != nil {
				return UpdateResult{}, err
			}
		}
		res.User = nu
	}
	// Spent only now: a store failure above sent nothing, so it costs nothing.
	if err := s.spendBudgets(ctx, budgets); err != nil {
		return UpdateResult{}, err
	}
	code, err := s.newCode()
	if err != nil {
		return UpdateResult{}, err
	}
	c := &challenge{Number: number, Pending: pending, ExpiresAt: now.Add(s.cfg.TTL),
		SentAt: now, MAC: codeMAC(s.cfg.Secret, r.UserID, number, code), Locale: storedLocale(r.Locale),
		Flags: flags}
	// One open challenge per user: this replaces any other, attempts and all.
	if err := s.cache.Update(ctx, challengeKey(r.UserID), func([]byte, bool) ([]byte, time.Duration, error) {
		return c.encode(), s.entryTTL(), nil
	}); err != nil {
		return UpdateResult{}, cacheErr(err)
	}
	if pending {
		// The change waits for its code, whether or not the SMS goes out:
		// the challenge is open either way.
		s.emit(ctx, events.TypePending, r.UserID, number, u.PhoneNumber, flags)
	}
	if err := s.send(ctx, r.UserID, number, code, "update", r.Locale, r.TemplateOptions, r.ProviderID); err != nil {
		s.allowResendNow(ctx, r.UserID, c.MAC)
		res.ResendAfter = 0
		return res, err
	}
	return res, nil
}

// VerifyRequest carries a code typed by the user; PhoneNumber, when given,
// must be the number the code went to.
type VerifyRequest struct {
	UserID      string
	Code        string
	PhoneNumber string
	ClientIP    string // for verify_per_ip
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
	defer s.locks.lock(r.UserID)()
	failKey, ipFailKey := "vf:"+r.UserID, ""
	if r.ClientIP != "" {
		ipFailKey = "v" + ipKey(r.ClientIP)
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
	err := s.cache.Update(ctx, challengeKey(r.UserID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		won, wrongLeft = nil, -1
		c, err := s.openChallenge(old, found, now)
		if err != nil {
			return nil, 0, err
		}
		if number != "" && number != c.Number {
			return nil, 0, ErrNoPending
		}
		if c.Attempts >= s.cfg.MaxAttempts {
			return nil, 0, ErrTooManyAttempts
		}
		mac := codeMAC(s.cfg.Secret, r.UserID, c.Number, r.Code)
		if !hmac.Equal(mac[:], c.MAC[:]) {
			c.Attempts++
			wrongLeft = s.cfg.MaxAttempts - c.Attempts
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
	if err != nil {
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
	ev := s.event(events.TypeVerified, r.UserID, won.Number, previous, won.Flags)
	switch err := s.setAndEmit(ctx, u, ev); {
	case err == nil, errors.Is(err, ErrPhoneInUse):
		// Possession is proven either way: the challenge is spent. A failed
		// delete is left alone: the claim lapses, and the code can no
		// longer match a fresh update.
		_ = s.cache.Delete(ctx, challengeKey(r.UserID))
		if err != nil {
			return store.User{}, err
		}
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

// ResendRequest asks for a new code.
type ResendRequest struct {
	UserID   string
	Locale   string
	ClientIP string
	// OpenForUnverified lets a resend with no open challenge start one for
	// the user's unverified current number.
	OpenForUnverified bool
}

// ResendResult tells where the new code went.
type ResendResult struct {
	SentTo      string
	ExpiresIn   time.Duration
	ResendAfter time.Duration
}

// Resend sends a new code for the open challenge, voiding the old one and
// keeping its attempt count (NIST SP 800-63B). With no open challenge it
// answers ErrNoPending, unless r.OpenForUnverified asks it to open one for
// an unverified current number (ReachFive's first send).
func (s *Service) Resend(ctx context.Context, r ResendRequest) (ResendResult, error) {
	defer s.locks.lock(r.UserID)()
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
	if c.Attempts >= s.cfg.MaxAttempts {
		return ResendResult{}, ErrTooManyAttempts
	}
	if wait := c.SentAt.Add(s.cfg.ResendAfter).Sub(now); !c.SentAt.IsZero() && wait > 0 {
		return ResendResult{}, &RetryError{After: wait, Err: ErrRateLimited, Limit: "resend_after"}
	}
	budgets := s.sendBudgets(r.UserID, c.Number, r.ClientIP)
	if err := s.checkBudgets(ctx, budgets); err != nil {
		return ResendResult{}, err
	}
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
		c = cur
		return cur.encode(), s.entryTTL(), nil
	}); err != nil {
		return ResendResult{}, cacheErr(err)
	}
	res := ResendResult{SentTo: c.Number, ExpiresIn: s.cfg.TTL, ResendAfter: s.cfg.ResendAfter}
	if err := s.send(ctx, r.UserID, c.Number, code, "resend", locale, nil, ""); err != nil {
		s.allowResendNow(ctx, r.UserID, c.MAC)
		return res, err
	}
	return res, nil
}

// LockUser holds the user's lock until the returned func runs, for a
// writer outside the rules (the admin endpoints) that must not interleave
// with an update or verify of the same user. Call no Service method for
// that user while holding it.
func (s *Service) LockUser(userID string) func() { return s.locks.lock(userID) }

// Cancel drops the open challenge (and so any pending change).
func (s *Service) Cancel(ctx context.Context, userID string) error {
	defer s.locks.lock(userID)()
	now := s.clock.Now()
	return cacheErr(s.cache.Update(ctx, challengeKey(userID), func(old []byte, found bool) ([]byte, time.Duration, error) {
		if _, err := s.openChallenge(old, found, now); err != nil {
			if errors.Is(err, ErrExpired) {
				return nil, 0, ErrNoPending // an expired challenge is not open
			}
			return nil, 0, err
		}
		return nil, 0, nil
	}))
}

// Remove deletes the user's number, cancels any open challenge (a pending
// change must not bring a number back) and emits phone.removed. It returns
// the user as they were; removing no number is a no-op without an event.
func (s *Service) Remove(ctx context.Context, userID string) (store.User, error) {
	defer s.locks.lock(userID)()
	u, err := s.users.Get(ctx, userID)
	if err != nil {
		return store.User{}, err
	}
	if u.PhoneNumber != "" {
		ev := s.event(events.TypeRemoved, userID, "", u.PhoneNumber, descopeFlags{})
		if err := s.setAndEmit(ctx, store.User{ID: userID}, ev); err != nil {
			return store.User{}, err
		}
	}
	if err := s.cache.Delete(ctx, challengeKey(userID)); err != nil {
		return u, cacheErr(err)
	}
	return u, nil
}

// emit hands an event to Deps.Events. A failure is logged, never
// returned: the change it tells of is made already.
func (s *Service) emit(ctx context.Context, typ, userID, number, previous string, f descopeFlags) {
	if e := s.event(typ, userID, number, previous, f); e != nil {
		s.emitEvent(ctx, *e)
	}
}

// event builds an event for Deps.Events; nil without it.
func (s *Service) event(typ, userID, number, previous string, f descopeFlags) *events.Event {
	if s.events == nil {
		return nil
	}
	return &events.Event{ID: events.NewID(), Type: typ, UserID: userID, PhoneNumber: number,
		PreviousPhoneNumber: previous, OccurredAt: s.clock.Now().UTC(),
		AddToLoginIDs: f.AddToLoginIDs, OnMergeUseExisting: f.OnMergeUseExisting}
}

// setAndEmit writes u and, unless e is nil, records e. When Deps.Events is
// a TxEvents and the store a store.EventSetter with an outbox, both go in
// one store transaction: kept together or not at all. Otherwise u is set,
// then e emitted (a failed emit is logged: the change is made already).
// Either way an error means u was not written, and no event recorded.
func (s *Service) setAndEmit(ctx context.Context, u store.User, e *events.Event) error {
	if e != nil {
		if tx, ok := s.events.(TxEvents); ok {
			if es, ok := s.users.(store.EventSetter); ok {
				if oe, err := tx.OutboxEvent(*e); err == nil {
					err := es.SetWithEvent(ctx, u, oe)
					if !errors.Is(err, store.ErrNoOutbox) {
						if err == nil {
							tx.Poke()
						}
						return err
					}
				}
			}
		}
	}
	if err := s.users.Set(ctx, u); err != nil {
		return err
	}
	if e != nil {
		s.emitEvent(ctx, *e)
	}
	return nil
}

func (s *Service) emitEvent(ctx context.Context, e events.Event) {
	if err := s.events.Emit(ctx, e); err != nil {
		s.logger.Error("phone event not recorded", zap.String("id", e.ID), zap.String("type", e.Type),
			zap.String("user_id", e.UserID), zap.Error(err))
	}
}

// notifyPrevious tells the old number that a verified number was replaced
// (notify_previous). No code goes with it, no budget is spent (each change
// of a verified number already cost a verified code, or is an update with
// verification off), and a failure is logged, not returned. It runs on
// after the client hangs up: the change is made already.
func (s *Service) notifyPrevious(ctx context.Context, userID, number string) {
	if !s.cfg.NotifyPrevious {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	body, used := sms.Templates{Default: s.cfg.NotifyTemplate}.Render("", sms.Vars{App: s.cfg.AppName})
	id, err := s.randomID()
	if err == nil {
		err = s.sender.Send(ctx, sms.Message{ID: id, To: number, Body: body, Locale: used, Purpose: PurposeNotify,
			UserID: userID, TemplateOptions: map[string]string{}})
	}
	if err != nil {
		s.logger.Warn("notify_previous SMS failed", zap.String("user_id", userID),
			zap.String("to", numbers.Mask(number)), zap.Error(err))
	}
}

// PurposeNotify is the sms.Message Purpose of the notify_previous SMS.
const PurposeNotify = "notify"

// notifyTimeout bounds the notify_previous SMS (the chain may try several
// providers, 10 s each).
const notifyTimeout = 30 * time.Second

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

// cooldown refuses an update to the number of the open challenge before
// resend_after: repeating the update must not be a way around it.
func (s *Service) cooldown(ctx context.Context, userID, number string, now time.Time) error {
	c, err := s.loadChallenge(ctx, userID)
	if errors.Is(err, ErrNoPending) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Number != number || c.SentAt.IsZero() || !now.Before(c.ExpiresAt) {
		return nil
	}
	if wait := c.SentAt.Add(s.cfg.ResendAfter).Sub(now); wait > 0 {
		return &RetryError{After: wait, Err: ErrRateLimited, Limit: "resend_after"}
	}
	return nil
}

// budget is one send budget and the cache key of its counter.
type budget struct {
	name, key string
	lim       Limit
}

// sendBudgets lists the budgets one SMS to number spends.
func (s *Service) sendBudgets(userID, number, ip string) []budget {
	l := s.cfg.Limits
	return []budget{
		{"global", "lg", l.Global},
		{"per_number", "ln:" + number, l.PerNumber},
		{"per_user", "lu:" + userID, l.PerUser},
		{"per_ip", ipKey(ip), l.PerIP},
	}
}

// checkBudgets refuses if any budget is spent, spending nothing: a refusal
// by one budget must not eat into the others.
func (s *Service) checkBudgets(ctx context.Context, budgets []budget) error {
	for _, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.check(ctx, b.name, b.key, b.lim); err != nil {
			return cacheErr(err)
		}
	}
	return nil
}

// spendBudgets spends one unit of each budget.
func (s *Service) spendBudgets(ctx context.Context, budgets []budget) error {
	for _, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.take(ctx, b.name, b.key, b.lim); err != nil {
			return cacheErr(err)
		}
	}
	return nil
}

// ipKey is the per_ip counter of a client address. IPv6 clients are
// counted by their /64, the block one subscriber usually holds: counting
// single addresses would let anyone rotate through 2^64 of them.
func ipKey(ip string) string {
	if ip == "" {
		return ""
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "li:" + ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		return "li:" + netip.PrefixFrom(addr, 64).Masked().String()
	}
	return "li:" + addr.String()
}

func (s *Service) send(ctx context.Context, userID, number, code, purpose, locale string, opts map[string]string, provider string) error {
	body, used := s.cfg.Templates.Render(locale, sms.Vars{Code: code, App: s.cfg.AppName,
		Minutes: int((s.cfg.TTL + time.Minute - 1) / time.Minute), Options: opts})
	if opts == nil {
		opts = map[string]string{}
	}
	id, err := s.randomID()
	if err != nil {
		return err
	}
	return s.sender.Send(ctx, sms.Message{ID: id, To: number, Body: body, Code: code,
		Locale: used, Purpose: purpose, UserID: userID, TemplateOptions: opts, ProviderID: provider})
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

func (s *Service) newCode() (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s.cfg.CodeLength)), nil)
	n, err := rand.Int(s.rand, max)
	if err != nil {
		return "", fmt.Errorf("code generation: %w", err)
	}
	return fmt.Sprintf("%0*d", s.cfg.CodeLength, n), nil
}

func (s *Service) randomID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func challengeKey(userID string) string { return "c:" + userID }

// cacheErr passes the rules' own outcomes through and turns any other
// cache failure into ErrUnavailable.
func cacheErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ErrNoPending, ErrExpired, ErrTooManyAttempts, ErrRateLimited, ErrUnavailable, ErrInvalidCode} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: cache: %w", ErrUnavailable, err)
}

// userLocks serialises the calls of one user inside this process, so that
// concurrent updates of one user end in one consistent state, and the SMS
// a user receives last holds the code that works. Striped: a fixed set of
// mutexes, so memory does not grow with users; 4096 of them, because a
// send holds its stripe for as long as the provider takes to answer.
type userLocks struct {
	seed    maphash.Seed
	stripes [4096]sync.Mutex
}

func (l *userLocks) lock(userID string) func() {
	m := &l.stripes[maphash.String(l.seed, userID)%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}
