package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"
)

// The events outbox lives in the store's own file, in a table of its own
// created on first use; the users schema and its version are untouched.
var sqliteOutboxSchema = []string{
	`CREATE TABLE IF NOT EXISTS phone_events_outbox (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order
		id           TEXT    NOT NULL UNIQUE,           -- the event's id
		stream       TEXT    NOT NULL,                  -- which receiver (see SQLiteUsers.Outbox)
		body         TEXT    NOT NULL,                  -- the JSON posted, exactly
		attempts     INTEGER NOT NULL DEFAULT 0,        -- failed deliveries so far
		next_attempt INTEGER NOT NULL DEFAULT 0,        -- unix milliseconds; a claim pushes it forward
		created_at   INTEGER NOT NULL                   -- unix milliseconds
	)`,
	`CREATE INDEX IF NOT EXISTS phone_events_outbox_due ON phone_events_outbox (stream, next_attempt)`,
}

// sqliteOutboxAdd stores an event (id, stream, body, created_at), due at
// once; an id already held is left as it is. Add and SetWithEvent share it.
const sqliteOutboxAdd = `INSERT INTO phone_events_outbox (id, stream, body, created_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`

// SQLiteOutbox is an Outbox in the sqlite store's file: events
// written before a request is answered survive a crash or a restart, and
// several processes (or Caddy configs) sharing the file share the outbox.
// A claim (Due) pushes the event's next attempt forward by Lease in the
// same statement that reads it, so two dispatchers never take one event
// together.
type SQLiteOutbox struct {
	s      *SQLiteUsers
	stream string
	// Lease is how long Due hands out an event; DefaultOutboxLease when 0.
	Lease time.Duration
}

// Outbox returns the events outbox of stream, creating its table if
// needed. stream names the receiver (a digest of its URL): events are
// delivered only by a dispatcher of the same stream, so two sites sharing
// the file with different receivers never get each other's events. The
// outbox shares the store's connections and is unusable once it is closed.
func (s *SQLiteUsers) Outbox(ctx context.Context, stream string) (*SQLiteOutbox, error) {
	if stream == "" {
		return nil, errors.New("store: sqlite: outbox: empty stream")
	}
	if err := s.lockWrites(ctx); err != nil {
		return nil, err
	}
	defer s.unlockWrites()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("outbox: create", err)
	}
	defer tx.Rollback()
	for _, stmt := range sqliteOutboxSchema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, s.fail("outbox: create", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("outbox: create", err)
	}
	s.outbox.Store(true)
	return &SQLiteOutbox{s: s, stream: stream}, nil
}

// Add stores e in the stream, due at once; an id already held is left as
// it is.
func (o *SQLiteOutbox) Add(ctx context.Context, e OutboxEvent) error {
	if err := e.CheckAdd(o.stream); err != nil {
		return err
	}
	return o.exec(ctx, "outbox: add", sqliteOutboxAdd, e.ID, o.stream, string(e.Body), time.Now().UnixMilli())
}

// Due claims up to limit events of the stream due at now, oldest first.
func (o *SQLiteOutbox) Due(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error) {
	if limit <= 0 {
		return nil, nil
	}
	lease := outboxLease(o.Lease)
	// A dispatcher asks every second: answer "nothing" with a read, so an
	// idle outbox never takes the write lock.
	var one int
	switch err := o.s.db.QueryRowContext(ctx,
		`SELECT 1 FROM phone_events_outbox WHERE stream = ? AND next_attempt <= ? LIMIT 1`,
		o.stream, now.UnixMilli()).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, o.s.fail("outbox: due", err)
	}
	if err := o.s.lockWrites(ctx); err != nil {
		return nil, err
	}
	defer o.s.unlockWrites()
	rows, err := o.s.db.QueryContext(ctx,
		`UPDATE phone_events_outbox SET next_attempt = ?
		 WHERE seq IN (SELECT seq FROM phone_events_outbox
		               WHERE stream = ? AND next_attempt <= ? ORDER BY seq LIMIT ?)
		 RETURNING seq, id, body, attempts`,
		now.Add(lease).UnixMilli(), o.stream, now.UnixMilli(), limit)
	if err != nil {
		return nil, o.s.fail("outbox: due", err)
	}
	defer rows.Close()
	type row struct {
		seq int64
		r   OutboxRow
	}
	var got []row
	for rows.Next() {
		var r row
		var body string
		if err := rows.Scan(&r.seq, &r.r.ID, &body, &r.r.Attempts); err != nil {
			return nil, o.s.fail("outbox: due", err)
		}
		r.r.Body = []byte(body)
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, o.s.fail("outbox: due", err)
	}
	// RETURNING gives no order.
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]OutboxRow, len(got))
	for i, r := range got {
		out[i] = r.r
	}
	return out, nil
}

// Delivered deletes the event.
func (o *SQLiteOutbox) Delivered(ctx context.Context, id string) error {
	return o.exec(ctx, "outbox: delivered",
		`DELETE FROM phone_events_outbox WHERE id = ? AND stream = ?`, id, o.stream)
}

// Retry records attempts and makes the event due at next.
func (o *SQLiteOutbox) Retry(ctx context.Context, id string, attempts int, next time.Time) error {
	return o.exec(ctx, "outbox: retry",
		`UPDATE phone_events_outbox SET attempts = ?, next_attempt = ? WHERE id = ? AND stream = ?`,
		attempts, next.UnixMilli(), id, o.stream)
}

// Len returns how many events of the stream wait, due or not.
func (o *SQLiteOutbox) Len(ctx context.Context) (int, error) {
	var n int
	if err := o.s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM phone_events_outbox WHERE stream = ?`, o.stream).Scan(&n); err != nil {
		return 0, o.s.fail("outbox: count", err)
	}
	return n, nil
}

// Others returns how many events wait for other streams (receivers no
// longer configured here, or another site's).
func (o *SQLiteOutbox) Others(ctx context.Context) (int, error) {
	var n int
	if err := o.s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM phone_events_outbox WHERE stream <> ?`, o.stream).Scan(&n); err != nil {
		return 0, o.s.fail("outbox: count", err)
	}
	return n, nil
}

func (o *SQLiteOutbox) exec(ctx context.Context, op, query string, args ...any) error {
	if err := o.s.lockWrites(ctx); err != nil {
		return err
	}
	defer o.s.unlockWrites()
	if _, err := o.s.db.ExecContext(ctx, query, args...); err != nil {
		return o.s.fail(op, err)
	}
	return nil
}

var _ Outbox = (*SQLiteOutbox)(nil)
