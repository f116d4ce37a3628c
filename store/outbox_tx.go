package store

import (
	"context"
	"errors"
)

// OutboxEvent is an event as an outbox table holds it, ready to be written
// in the transaction of the change it tells of: the dispatcher of Stream
// later delivers it exactly as if its outbox's Add had stored it.
type OutboxEvent struct {
	ID     string // the event's id (events.Event.ID)
	Stream string // the dispatcher's stream (see SQLiteUsers.Outbox)
	Body   []byte // the JSON posted (events.Encode)
}

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

func (e OutboxEvent) check() error {
	if e.ID == "" || e.Stream == "" || len(e.Body) == 0 {
		return errors.New("store: outbox event needs an id, a stream and a body")
	}
	return nil
}

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
