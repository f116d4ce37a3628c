package store

import (
	"context"
	"errors"
	"time"
)

// ChangeEvent lets the caller of a PhoneNumbers write have the store record
// the event of the change in the write's own transaction (SPEC §9: every
// committed change has its event, admin ones included). Make gets the
// user's number as the user API sees it (the primary) before and after
// the write, only when they differ, and returns the event to write; after
// the write returned, Written says whether it went in with it. It is false
// when nothing the user API shows changed, or when the store keeps no
// outbox: the caller then tells of the change itself.
type ChangeEvent struct {
	Make    func(before, after User) (OutboxEvent, error)
	Written bool
}

type changeEventKey struct{}

// WithChangeEvent asks the PhoneNumbers writes made with ctx to record ce.
func WithChangeEvent(ctx context.Context, ce *ChangeEvent) context.Context {
	return context.WithValue(ctx, changeEventKey{}, ce)
}

// startAttempt forgets what an earlier, failed attempt of a retried
// transaction wrote.
func startAttempt(ctx context.Context) {
	if ce, _ := ctx.Value(changeEventKey{}).(*ChangeEvent); ce != nil {
		ce.Written = false
	}
}

// addChangeEvent writes ctx's ChangeEvent, if any, when the user's number
// went from before to after in tx.
func addChangeEvent(ctx context.Context, tx numbersTx, before, after User) error {
	ce, _ := ctx.Value(changeEventKey{}).(*ChangeEvent)
	if ce == nil || before == after {
		return nil
	}
	e, err := ce.Make(before, after)
	if err != nil {
		return err
	}
	if err := e.check(); err != nil {
		return err
	}
	switch err := tx.addEvent(ctx, e); {
	case errors.Is(err, ErrNoOutbox):
		return nil
	case err != nil:
		return err
	}
	ce.Written = true
	return nil
}

func (tx *memoryNumbersTx) addEvent(context.Context, OutboxEvent) error { return ErrNoOutbox }

func (tx *sqliteNumbersTx) addEvent(ctx context.Context, e OutboxEvent) error {
	if !tx.s.outbox.Load() {
		return ErrNoOutbox
	}
	_, err := tx.q.ExecContext(ctx, sqliteOutboxAdd, e.ID, e.Stream, string(e.Body), time.Now().UnixMilli())
	return tx.result("phone numbers: outbox: add", err)
}

func (tx *pgNumbersTx) addEvent(ctx context.Context, e OutboxEvent) error {
	add := tx.b.s.outboxAdd.Load()
	if add == nil {
		return ErrNoOutbox
	}
	_, err := tx.tx.Exec(ctx, *add, e.ID, e.Stream, string(e.Body))
	return pgNumbersResult(err)
}
