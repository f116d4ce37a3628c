package store

import (
	"context"
	"errors"
)

// EventSetter is a Users that can write a user and the event of that
// change in one transaction: both are kept, or neither.
type EventSetter interface {
	// SetWithEvent is Set, with e added to the events outbox in the same
	// transaction. It fails with ErrNoOutbox, writing nothing, when the
	// store has no outbox table (none was opened with Outbox): the caller
	// then sets and emits apart.
	SetWithEvent(ctx context.Context, u User, e OutboxEvent) error
}

// ErrNoOutbox: the store cannot write an event with a user; nothing was
// written.
var ErrNoOutbox = errors.New("store: no events outbox in this store")

// SetWithEvent passes through to the store and drops the cached copy.
func (c *CachedUsers) SetWithEvent(ctx context.Context, u User, e OutboxEvent) error {
	es, ok := c.Users.(EventSetter)
	if !ok {
		return ErrNoOutbox
	}
	err := es.SetWithEvent(ctx, u, e)
	if errors.Is(err, ErrNoOutbox) {
		return err // nothing written
	}
	if derr := c.forget(ctx, u.ID); derr != nil && err == nil {
		err = derr
	}
	return err
}

var (
	_ EventSetter = (*SQLiteUsers)(nil)
	_ EventSetter = (*PostgresUsers)(nil)
	_ EventSetter = (*CachedUsers)(nil)
)
