package flow

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// adminFinishTimeout bounds what AdminChange does after the write: the
// read-back, the challenge delete and the event.
const adminFinishTimeout = 5 * time.Second

// AdminChange runs write, a change of userID's numbers made outside the
// user API (the admin endpoints, SPEC §7), under the rules: it holds the
// user's lock, the one Update, Verify, Resend and Cancel take, so no
// call of the user interleaves with it. It reads the user's §4 number
// before the write and again after it; if the number or its verified
// state changed, it deletes the user's open challenge (it was for the
// number as it was: its code must not bring that back) and emits
// phone.updated, phone.verified or phone.removed. All of that happens
// before the lock is released, and goes on if ctx is cancelled once the
// write has succeeded.
//
// write's error is returned as it is, and then nothing else is done.
// When the user cannot be read back, the challenge is deleted anyway
// (fail safe), no event is emitted, and the failure is logged: the write
// is made already, so AdminChange still returns nil.
func (s *Service) AdminChange(ctx context.Context, userID string, write func(ctx context.Context) error) error {
	unlock, err := s.lockUser(ctx, userID)
	if err != nil {
		return err
	}
	defer unlock()
	before, err := s.users.Get(ctx, userID)
	if err != nil {
		before = store.User{ID: userID}
	}
	// With an outbox in the store, the store writes the event in the
	// write's own transaction (SPEC §9); otherwise it is emitted below.
	var inTx *store.ChangeEvent
	if tx, ok := s.events.(TxEvents); ok {
		inTx = &store.ChangeEvent{Make: func(before, after store.User) (store.OutboxEvent, error) {
			return tx.OutboxEvent(*s.event(adminEventType(after), userID, after.PhoneNumber, before.PhoneNumber, nil))
		}}
		ctx = store.WithChangeEvent(ctx, inTx)
	}
	if err := write(ctx); err != nil {
		return err
	}
	if inTx != nil && inTx.Written {
		if tx, ok := s.events.(TxEvents); ok {
			tx.Poke()
		}
	}
	if s.afterAdminWrite != nil {
		s.afterAdminWrite()
	}
	// The write is done: finish even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adminFinishTimeout)
	defer cancel()
	after, err := s.users.Get(ctx, userID)
	if err != nil {
		// Fail safe: the number may have changed under the challenge.
		s.dropChallenge(ctx, userID)
		s.logger.Error("admin change: the user's number could not be read back; no event emitted",
			zap.String("user_id", userID), zap.Error(err))
		return nil
	}
	if after.PhoneNumber == before.PhoneNumber && after.Verified == before.Verified {
		return nil
	}
	s.dropChallenge(ctx, userID)
	if after.Verified {
		s.liftCooldown(ctx, userID, after.PhoneNumber)
	}
	if inTx == nil || !inTx.Written {
		s.emit(ctx, adminEventType(after), userID, after.PhoneNumber, before.PhoneNumber, nil)
	}
	return nil
}

// adminEventType tells what an admin change made of the user's number.
func adminEventType(after store.User) string {
	switch {
	case after.PhoneNumber == "":
		return events.TypeRemoved
	case after.Verified:
		return events.TypeVerified
	}
	return events.TypeUpdated
}

// dropChallenge deletes the user's challenge, open or not, logging a
// failure: the caller's change is made already.
func (s *Service) dropChallenge(ctx context.Context, userID string) {
	if err := s.cache.Delete(ctx, challengeKey(userID)); err != nil {
		s.logger.Warn("open challenge not canceled after an admin change", zap.String("user_id", userID), zap.Error(err))
	}
}
