package flow

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// Cancel drops the open challenge (and so any pending change).
func (s *Service) Cancel(ctx context.Context, userID string) error {
	unlock, err := s.lockUser(ctx, userID)
	if err != nil {
		return err
	}
	defer unlock()
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
	unlock, err := s.lockUser(ctx, userID)
	if err != nil {
		return store.User{}, err
	}
	defer unlock()
	u, err := s.users.Get(ctx, userID)
	if err != nil {
		return store.User{}, err
	}
	if u.PhoneNumber != "" {
		ev := s.event(events.TypeRemoved, userID, "", u.PhoneNumber, nil)
		if err := s.setAndEmit(ctx, store.User{ID: userID}, ev); err != nil {
			return store.User{}, err
		}
	}
	if err := s.cache.Delete(ctx, challengeKey(userID)); err != nil {
		return u, cacheErr(err)
	}
	return u, nil
}
