package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// adminAPI is what `admin { }` provisions: the Clerk-shaped admin
// endpoints of SPEC §7, under <prefix>/v1/, so that @clerk/backend's
// createClerkClient({secretKey, apiUrl: "<site><prefix>"}) drives them
// unmodified.
type adminAPI struct {
	// keyHash is the SHA-256 of the API key: comparing hashes in constant
	// time leaks neither the key nor its length.
	keyHash [sha256.Size]byte
	// numbers is nil when the user store keeps one number per user (http).
	numbers store.PhoneNumbers
	norm    interface{ Normalize(string) (string, error) }
	logger  *zap.Logger
	// escapedRoot is <prefix>/v1/ as it appears in an escaped path.
	escapedRoot string
	// users reads a user's §4 number fresh (and refreshes the read cache);
	// emit posts a phone event. Together they tell the app when an admin
	// call changed the number GET /phone shows.
	users store.Users
	emit  func(ctx context.Context, e events.Event)
	// cancelChallenge drops the user's open challenge, if any; lockUser
	// takes the user's lock in the rules until the returned func runs.
	cancelChallenge func(ctx context.Context, userID string)
	lockUser        func(userID string) func()
	// hasKey is false when only admin tokens open the endpoints.
	hasKey bool
	// claim, when set, lets a valid JWT carrying it open the endpoints:
	// true, or claimValue (a string, or one item of an array).
	claim, claimValue string
	verifier          *bearer.Verifier
}

// adminClaim reports whether a verified token carries the admin claim.
func (a *adminAPI) adminClaim(id *bearer.Identity) bool {
	v, ok := id.Claims[a.claim]
	if !ok {
		return false
	}
	if a.claimValue == "" {
		b, isBool := v.(bool)
		return isBool && b
	}
	switch v := v.(type) {
	case string:
		return v == a.claimValue
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok && s == a.claimValue {
				return true
			}
		}
	}
	return false
}

// watch holds the user's lock in the rules (so an update or verify of the
// same user cannot interleave with the admin write) and reads the user's
// §4 number before the write. The returned func, called right after the
// write, releases the lock and, if the write succeeded and changed that
// number, cancels the user's open challenge and emits the event.
func (a *adminAPI) watch(ctx context.Context, userID string) func(written bool) {
	unlock := a.lockUser(userID)
	before, err := a.users.Get(ctx, userID)
	if err != nil {
		before = store.User{ID: userID}
	}
	return func(written bool) {
		unlock()
		if !written {
			return
		}
		// The write is done: finish even if the client has gone.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		after, err := a.users.Get(ctx, userID)
		if err != nil {
			// Fail safe: the number may have changed under the challenge.
			a.cancelChallenge(ctx, userID)
			a.logger.Error("admin change: the user's number could not be read back; no event emitted",
				zap.String("user_id", userID), zap.Error(err))
			return
		}
		if after.PhoneNumber == before.PhoneNumber && after.Verified == before.Verified {
			return
		}
		// The user's open challenge was for the number as it was: left
		// open, its code could bring back what the admin just changed.
		a.cancelChallenge(ctx, userID)
		typ := events.TypeUpdated
		switch {
		case after.PhoneNumber == "":
			typ = events.TypeRemoved
		case after.Verified:
			typ = events.TypeVerified
		}
		a.emit(ctx, events.Event{ID: events.NewID(), Type: typ, UserID: userID, PhoneNumber: after.PhoneNumber,
			PreviousPhoneNumber: before.PhoneNumber, OccurredAt: time.Now().UTC()})
	}
}

// minAdminKeyLength keeps the key out of guessing range.
const minAdminKeyLength = 16

// provisionAdmin checks the API key and opens the store's phone numbers.
// It runs after the user store is open.
func (p *Phone) provisionAdmin(ctx context.Context, repl *caddy.Replacer, norm *numbers.Checker) error {
	if p.Admin == nil {
		return nil
	}
	key := repl.ReplaceKnown(p.Admin.APIKey, "")
	switch {
	case key == "" && p.Admin.Claim == "":
		return errors.New("admin: api_key is required (or a claim that marks admin tokens)")
	case key == "":
		// Claim only: no key can match (the hash of "" is never compared
		// against an empty bearer, which authenticate refuses first).
	case len(key) < minAdminKeyLength:
		return fmt.Errorf("admin: api_key must be at least %d characters", minAdminKeyLength)
	case strings.ContainsAny(key, ". \t\r\n"):
		// No dot: a bearer value without one can never pass for a JWT on
		// the user routes, whatever keys the jwt block trusts.
		return errors.New("admin: api_key must not contain dots or white space")
	case p.JWT != nil && key == repl.ReplaceKnown(p.JWT.ProjectID, ""):
		return errors.New("admin: api_key must differ from jwt.project_id")
	}
	a := &adminAPI{keyHash: sha256.Sum256([]byte(key)), hasKey: key != "", norm: norm, logger: p.logger.Named("admin"),
		escapedRoot: (&url.URL{Path: p.routeAdmin}).EscapedPath(), users: p.users, emit: p.emitEvent,
		claim: p.Admin.Claim, claimValue: p.Admin.ClaimValue, verifier: p.verifier,
		lockUser: func(userID string) func() {
			if p.service == nil {
				return func() {}
			}
			return p.service.LockUser(userID)
		},
		cancelChallenge: func(ctx context.Context, userID string) {
			if p.service == nil {
				return
			}
			if err := p.service.Cancel(ctx, userID); err != nil && !errors.Is(err, flow.ErrNoPending) {
				p.logger.Warn("open challenge not canceled after an admin change", zap.String("user_id", userID), zap.Error(err))
			}
		}}
	pn, err := store.OpenPhoneNumbers(ctx, p.users)
	switch {
	case errors.Is(err, store.ErrNotSupported):
		a.logger.Info("the user store keeps one number per user: the phone number endpoints answer 501 not_supported")
	case err != nil:
		return fmt.Errorf("admin: %w", err)
	default:
		a.numbers = pn
	}
	p.admin = a
	return nil
}

// Unwrap lets store.OpenPhoneNumbers reach the store beneath the timing
// layer. The admin calls go to the store directly: they are not timed.
func (m meteredUsers) Unwrap() store.Users { return m.Users }
