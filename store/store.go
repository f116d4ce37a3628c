// Package store keeps state behind two small interfaces: Users, the lasting
// truth of which number a user has (memory, sqlite, …), and Cache, the
// short-lived challenges and counters (bigcache, …). Backends are chosen by
// the Caddy glue; the rules in caddymodule/flow see only these interfaces.
package store

import (
	"context"
	"errors"
	"time"
)

// Domain outcomes shared by every backend. Backends wrap their causes with
// %w so callers match with errors.Is.
var (
	// ErrNotFound: a cache key is missing or past its own expiry.
	ErrNotFound = errors.New("store: not found")
	// ErrPhoneInUse: another user already holds this number verified.
	ErrPhoneInUse = errors.New("store: phone number verified by another user")
	// ErrUnavailable: the backend failed (I/O, timeout, closed); nothing was written.
	ErrUnavailable = errors.New("store: unavailable")
)

// User is one user's phone state. PhoneNumber is E.164, "" when none.
type User struct {
	ID          string
	PhoneNumber string
	Verified    bool
}

// Users is the upstream user store.
type Users interface {
	// Get returns the user's phone state. An unknown user is not an error:
	// it is a User with ID set and no number.
	Get(ctx context.Context, userID string) (User, error)
	// Set replaces the user's number. When u.Verified is true and another
	// user holds u.PhoneNumber verified, it writes nothing and returns
	// ErrPhoneInUse; the check and the write are one atomic step.
	// An empty PhoneNumber removes the number.
	Set(ctx context.Context, u User) error
	// Close releases connections.
	Close() error
}

// UpdateFunc computes an entry's next value from its current one (found is
// false when it is missing or expired). Returning a nil value deletes the
// entry, and so does a ttl <= 0 (the entry has no time left); returning an
// error leaves it as it was, whatever value comes with it, and Update
// returns that error.
type UpdateFunc func(old []byte, found bool) (value []byte, ttl time.Duration, err error)

// Cache holds short-lived entries, each with its own time to live.
type Cache interface {
	// Get returns the entry, or ErrNotFound when it is missing or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Update reads and rewrites one entry atomically: of two concurrent
	// Updates of one key, only one writes what fn computed from a given old
	// value. A shared backend (redis) may call fn again after losing a
	// race, so fn must be pure: no effects beyond its return values and
	// variables it resets on each call.
	Update(ctx context.Context, key string, fn UpdateFunc) error
	// Delete removes the entry; a missing entry is not an error.
	Delete(ctx context.Context, key string) error
}
