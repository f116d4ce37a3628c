package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outbox holds the events not yet delivered, as encoded bodies: what an
// event says is its writer's business (caddymodule/events encodes and
// decodes it); an outbox keeps the bytes and hands them out in order.
// Implementations: SQLiteOutbox and PostgresOutbox here, and the
// dispatcher's memory outbox.
type Outbox interface {
	// Add stores e in this outbox's stream, due at once. Adding an id
	// already held is a no-op, so a caller may retry an Add whose outcome
	// it did not learn.
	Add(ctx context.Context, e OutboxEvent) error
	// Due claims up to limit events due at now, oldest first, and returns
	// them. Claiming leases an event: it is not due again until the
	// outbox's lease has passed, so two dispatchers over one outbox (two
	// Caddy configs overlapping during a reload, two instances on one
	// database) do not send it together, and an event claimed by a
	// process that died is sent again later. The dispatcher ends the lease
	// with Delivered or Retry.
	Due(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error)
	// Delivered forgets the event. An unknown id is not an error.
	Delivered(ctx context.Context, id string) error
	// Retry records the failed attempts so far and makes the event due
	// again at next. An unknown id is not an error.
	Retry(ctx context.Context, id string, attempts int, next time.Time) error
}

// OutboxEvent is an event as an outbox holds it. Given to Outbox.Add,
// Stream is left empty (the outbox's own stream is used); given to
// EventSetter.SetWithEvent, it names the stream whose dispatcher delivers
// the event, exactly as if that outbox's Add had stored it.
type OutboxEvent struct {
	ID     string // unique per event, stable across retries
	Stream string // the dispatcher's stream (see SQLiteUsers.Outbox)
	Body   []byte // what is posted, exactly
}

// OutboxRow is an event claimed from an outbox by Due.
type OutboxRow struct {
	ID string
	// Body is what Add stored: every retry posts the same bytes.
	Body []byte
	// Attempts counts the failed deliveries so far.
	Attempts int
}

// DefaultOutboxLease is how long Due hands an event to one dispatcher
// when the outbox sets no lease of its own: how long the events a killed
// instance had claimed wait before another sends them. A live dispatcher
// attempts an event only while its claim outlives the attempt
// (caddymodule/events), so the lease bounds one attempt, not a batch.
// Instances' clocks must agree to well within it.
const DefaultOutboxLease = 30 * time.Second

// CheckAdd reports whether e can be added to the outbox of stream: it
// needs an id and a body, and names no other stream.
func (e OutboxEvent) CheckAdd(stream string) error {
	switch {
	case e.ID == "" || len(e.Body) == 0:
		return errors.New("store: outbox event needs an id and a body")
	case e.Stream != "" && e.Stream != stream:
		return fmt.Errorf("store: outbox event of stream %q added to the outbox of stream %q", e.Stream, stream)
	}
	return nil
}

// check reports whether e can be written with a user (SetWithEvent).
func (e OutboxEvent) check() error {
	if e.ID == "" || e.Stream == "" || len(e.Body) == 0 {
		return errors.New("store: outbox event needs an id, a stream and a body")
	}
	return nil
}

// outboxLease is lease, or DefaultOutboxLease when it is not positive.
func outboxLease(lease time.Duration) time.Duration {
	if lease <= 0 {
		return DefaultOutboxLease
	}
	return lease
}
