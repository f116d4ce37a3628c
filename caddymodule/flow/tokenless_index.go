package flow

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// A token-less index finds the user a call without a user token acts on,
// by a name the call gives: Supabase's verify and resend give the phone
// number the code went to (numberIndexKey). An entry holds a user ID and
// lives as long as a challenge entry (2 × ttl); it is a pointer, never
// proof: the call then acts on that user's open challenge only if it is
// still for the name given, and re-reads the entry before it commits, so
// a stale or replaced entry reaches nothing.
//
// One entry per name, so when several users wait on one number the one
// whose update wrote last is the reachable one; the others stay
// verifiable through their token routes. An update writes the entry;
// a resend refreshes it when it is absent or still the user's own; a
// verify that consumes the challenge drops it if it is still the user's.
//
// The helpers take the whole key, so another kind of name (a Descope
// loginId) can keep its index the same way under a kind of its own.

// numberIndexKey is the entry of an E.164 number (Config.IndexNumbers).
// The number is the subject, so Redis Cluster hashes it like any key.
func numberIndexKey(number string) string { return "tn:" + number }

// pointIndex makes key point at userID for a challenge's life. With
// onlyRefresh it writes only when key is absent or already userID's, so
// a resend never takes a number over from a later update of another user.
func (s *Service) pointIndex(ctx context.Context, key, userID string, onlyRefresh bool) error {
	return s.cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if onlyRefresh && found && string(old) != userID {
			return nil, 0, errNotMine
		}
		return []byte(userID), s.entryTTL(), nil
	})
}

// indexedUser is the user key points at, or ErrNoPending.
func (s *Service) indexedUser(ctx context.Context, key string) (string, error) {
	b, err := s.cache.Get(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && len(b) == 0:
		return "", ErrNoPending
	case err != nil:
		return "", cacheErr(err)
	}
	return string(b), nil
}

// stillIndexed is true when key still points at userID: the check a
// token-less call makes after it claimed the user's challenge, so a newer
// update of another user, made meanwhile on any instance, wins.
func (s *Service) stillIndexed(ctx context.Context, key, userID string) (bool, error) {
	owner, err := s.indexedUser(ctx, key)
	if errors.Is(err, ErrNoPending) {
		return false, nil
	}
	return owner == userID, err
}

// dropIndex deletes key if it still points at userID (best effort: a
// left entry reaches nothing once the challenge is gone).
func (s *Service) dropIndex(ctx context.Context, key, userID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	_ = s.cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if !found || string(old) != userID {
			return nil, 0, errNotMine
		}
		return nil, 0, nil
	})
}
