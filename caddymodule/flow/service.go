// Package flow holds the Caddy-free rules of SPEC §4: update, verify,
// resend, cancel and status of a user's phone number, and what an admin
// change of it entails (SPEC §7). It sees the user store, the challenge
// cache, the SMS sender and the clock only through small interfaces, so
// tests drive it with fakes and no HTTP.
//
// One file per operation: service.go (Config, Deps, New, Status),
// update.go, verify.go, resend.go, cancel.go, admin.go; beside them the
// challenge and its encoding (challenge.go, challenge_cache.go), the
// vendor attributes (attributes.go), the send budgets (budgets.go,
// limits.go), events (events.go), SMS and codes (sender.go), the
// per-user locks (locks.go), and the token-less index that finds a user by
// a number for calls without a user token (tokenless_index.go,
// tokenless_number.go).
package flow

import (
	"context"
	"crypto/rand"
	"errors"
	"hash/maphash"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
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

// HeldNumbers tells whether a user holds a number verified among their
// numbers (store.PhoneNumbers).
type HeldNumbers interface {
	HoldsVerified(ctx context.Context, userID, number string) (bool, error)
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
	// Templates are the `template` lines: SMS's, and those of any channel
	// without templates of its own.
	Templates sms.Templates
	// ChannelTemplates are the templates of whatsapp and voice, when they
	// have their own (`template voice fr "…"`).
	ChannelTemplates map[string]sms.Templates
	// Channels are what a caller may ask for (`channels`): sms, whatsapp,
	// voice; empty means sms alone. Every message counts against the
	// limits alike, whatever its channel.
	Channels []string
	// Secret keys the HMAC of codes at rest; at least 16 bytes.
	Secret []byte
	// NotifyPrevious sends an SMS (Purpose "notify", no code) to the old
	// number when a verified number is replaced by another: by a verify,
	// or by an update with verification off.
	NotifyPrevious bool
	// NotifyTemplate is that SMS, with {app}; DefaultNotifyTemplate when "".
	NotifyTemplate string
	// IndexNumbers keeps the token-less index by number
	// (tokenless_index.go) that VerifyByNumber and ResendByNumber read
	// (compat supabase): one more cache write per code sent.
	IndexNumbers bool
	// IndexLoginIDs: updates name their user by a login ID (Descope's
	// login_id_claim, login_ids.go); a resend then keeps the entry alive
	// with its code.
	IndexLoginIDs bool
	// NotifyChannel is how that message goes: sms when "" (the host picks
	// another enabled channel when no provider carries SMS).
	NotifyChannel string
}

// DefaultNotifyTemplate is the notify_previous SMS.
const DefaultNotifyTemplate = "Your {app} phone number was changed. If this wasn't you, contact support."

// Deps are the collaborators of a Service.
type Deps struct {
	Users   Users
	Cache   Cache
	Sender  Sender
	Numbers Numbers
	// Held, when the store keeps several numbers per user (the admin
	// API), tells which the user holds verified: an update to one of
	// them makes it the number at once, with no code.
	Held  HeldNumbers
	Clock Clock     // default SystemClock
	Rand  io.Reader // default crypto/rand
	// Events, when set, receives phone.updated, phone.pending,
	// phone.verified and phone.removed.
	Events Events
	// Logger gets what must not fail a request: a failed event or
	// notify_previous SMS. Default: none.
	Logger *zap.Logger
	// SharedCache: other processes (Caddy instances) share Cache, so a
	// user's calls are serialised by a lease in it too (locks.go).
	SharedCache bool
}

// Service applies the rules.
type Service struct {
	cfg     Config
	users   Users
	cache   Cache
	sender  Sender
	numbers Numbers
	held    HeldNumbers
	clock   Clock
	rand    io.Reader
	events  Events
	logger  *zap.Logger
	locks   userLocks
	memo    *refusalMemo // the early refusals' (refusal_memo.go)
	// sharedCache: serialise each user's calls across instances too.
	sharedCache bool

	// leaseWaiting, set by tests, runs each time a call finds another
	// instance's lease on its user and is about to wait.
	leaseWaiting func(userID string)
	// afterAdminWrite, set by tests, runs in AdminChange between the
	// write and what follows it, under the user's lock.
	afterAdminWrite func()
	// indexFound, set by tests, runs when a token-less call has read
	// the user a number's index entry points at, before it acts.
	indexFound func(userID string)
}

// MaxTTL is the longest code life: an entry lives 2×TTL in a cache whose
// life window is 24h.
const MaxTTL = 12 * time.Hour

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
	if err := cfg.checkChannelTemplates(); err != nil {
		return nil, err
	}
	if err := CheckChannels(cfg.Channels); err != nil {
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
	s := &Service{cfg: cfg, users: d.Users, cache: d.Cache, sender: d.Sender,
		numbers: d.Numbers, held: d.Held, clock: d.Clock, rand: d.Rand, events: d.Events, logger: d.Logger, sharedCache: d.SharedCache}
	s.locks.seed = maphash.MakeSeed()
	s.memo = newRefusalMemo()
	return s, nil
}

// Status is what GET /phone shows.
type Status struct {
	User             store.User
	PendingNumber    string    // "" unless a rule-3 change is waiting
	PendingExpiresAt time.Time // zero unless PendingNumber is set
	PendingSentAt    time.Time // when its current code was issued; zero unless PendingNumber is set
}

// Status returns the user's number and any pending change.
func (s *Service) Status(ctx context.Context, userID string) (Status, error) {
	u, err := s.users.Get(ctx, userID)
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
		st.PendingSentAt = c.ExpiresAt.Add(-s.cfg.TTL) // an update and a resend both give a code ttl to live
	}
	return st, nil
}
