package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// pgOutboxLockKey is the pg_advisory_xact_lock key under which the events
// outbox table is created ("phone_ev"), apart from the users migrations.
const pgOutboxLockKey int64 = 0x70686f6e655f6576

// pgOutboxSchema creates the outbox table; {outbox} is its quoted,
// qualified name. The users schema and its version are untouched.
var pgOutboxSchema = []string{
	`CREATE TABLE IF NOT EXISTS {outbox} (
		seq          bigserial   PRIMARY KEY,        -- delivery order
		id           text        NOT NULL UNIQUE,    -- the event's id
		stream       text        NOT NULL,           -- which receiver (see PostgresUsers.Outbox)
		body         text        NOT NULL,           -- the JSON posted, exactly
		attempts     integer     NOT NULL DEFAULT 0, -- failed deliveries so far
		next_attempt timestamptz NOT NULL DEFAULT '-infinity', -- a claim pushes it forward
		created_at   timestamptz NOT NULL DEFAULT now()
	)`,
	`CREATE INDEX IF NOT EXISTS phone_events_outbox_due ON {outbox} (stream, next_attempt)`,
}

// PostgresOutbox is an Outbox in the postgres store's database,
// shared by every Caddy instance using it: an event written before a
// request is answered survives a crash, and any instance delivers it. A
// claim (Due) pushes the next attempt forward by Lease in the statement
// that reads the rows, and skips rows another instance is claiming, so two
// dispatchers never take one event together.
type PostgresOutbox struct {
	s      *PostgresUsers
	stream string
	// Lease is how long Due hands out an event; DefaultOutboxLease when 0.
	Lease time.Duration

	add, due, delivered, retry, count, others string
}

// Outbox returns the events outbox of stream, creating its table in
// schema (PostgresConfig.Schema: "" for the search_path) if needed.
// stream names the receiver (a digest of its URL): events are delivered
// only by a dispatcher of the same stream. The outbox shares the store's
// pool and is unusable once it is closed.
func (s *PostgresUsers) Outbox(ctx context.Context, schema, stream string) (*PostgresOutbox, error) {
	if stream == "" {
		return nil, errors.New("store: postgres: outbox: empty stream")
	}
	if schema != "" && !pgIdentRe.MatchString(schema) {
		return nil, pgIdentError("schema", schema)
	}
	table := pgIdent(schema, "phone_events_outbox")
	err := s.run(ctx, func(ctx context.Context) error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgOutboxLockKey); err != nil {
			return err
		}
		for _, stmt := range pgOutboxSchema {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(stmt, "{outbox}", table)); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, s.fail("outbox: create", err)
	}
	add := `INSERT INTO ` + table + ` (id, stream, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`
	s.outboxAdd.Store(&add)
	return &PostgresOutbox{s: s, stream: stream,
		add: add,
		due: `UPDATE ` + table + ` SET next_attempt = $3
			WHERE seq IN (SELECT seq FROM ` + table + `
			              WHERE stream = $1 AND next_attempt <= $2
			              ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
			RETURNING seq, id, body, attempts`,
		delivered: `DELETE FROM ` + table + ` WHERE id = $1 AND stream = $2`,
		retry:     `UPDATE ` + table + ` SET attempts = $3, next_attempt = $4 WHERE id = $1 AND stream = $2`,
		count:     `SELECT count(*) FROM ` + table + ` WHERE stream = $1`,
		others:    `SELECT count(*) FROM ` + table + ` WHERE stream <> $1`,
	}, nil
}

// Add stores e in the stream, due at once; an id already held is left as
// it is.
func (o *PostgresOutbox) Add(ctx context.Context, e OutboxEvent) error {
	if err := e.CheckAdd(o.stream); err != nil {
		return err
	}
	return o.exec(ctx, "outbox: add", o.add, e.ID, o.stream, string(e.Body))
}

// Due claims up to limit events of the stream due at now, oldest first.
func (o *PostgresOutbox) Due(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error) {
	if limit <= 0 {
		return nil, nil
	}
	lease := outboxLease(o.Lease)
	var out []OutboxRow
	err := o.s.run(ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := o.s.pool.Query(ctx, o.due, o.stream, now, now.Add(lease), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		var seqs []int64
		for rows.Next() {
			var seq int64
			var r OutboxRow
			var body string
			if err := rows.Scan(&seq, &r.ID, &body, &r.Attempts); err != nil {
				return err
			}
			r.Body = []byte(body)
			seqs = append(seqs, seq)
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		sortBySeq(seqs, out) // RETURNING gives no order
		return nil
	})
	if err != nil {
		return nil, o.s.fail("outbox: due", err)
	}
	return out, nil
}

// Delivered deletes the event.
func (o *PostgresOutbox) Delivered(ctx context.Context, id string) error {
	return o.exec(ctx, "outbox: delivered", o.delivered, id, o.stream)
}

// Retry records attempts and makes the event due at next.
func (o *PostgresOutbox) Retry(ctx context.Context, id string, attempts int, next time.Time) error {
	return o.exec(ctx, "outbox: retry", o.retry, id, o.stream, attempts, next)
}

// Len returns how many events of the stream wait, due or not.
func (o *PostgresOutbox) Len(ctx context.Context) (int, error) {
	var n int
	err := o.s.run(ctx, func(ctx context.Context) error {
		return o.s.pool.QueryRow(ctx, o.count, o.stream).Scan(&n)
	})
	if err != nil {
		return 0, o.s.fail("outbox: count", err)
	}
	return n, nil
}

// Others returns how many events wait for other streams: a receiver URL
// that changed leaves its events behind, and the glue warns about them.
func (o *PostgresOutbox) Others(ctx context.Context) (int, error) {
	var n int
	err := o.s.run(ctx, func(ctx context.Context) error {
		return o.s.pool.QueryRow(ctx, o.others, o.stream).Scan(&n)
	})
	if err != nil {
		return 0, o.s.fail("outbox: count", err)
	}
	return n, nil
}

func (o *PostgresOutbox) exec(ctx context.Context, op, query string, args ...any) error {
	err := o.s.run(ctx, func(ctx context.Context) error {
		_, err := o.s.pool.Exec(ctx, query, args...)
		return err
	})
	if err != nil {
		return o.s.fail(op, err)
	}
	return nil
}

// sortBySeq orders ps by seqs (insertion sort: a batch is small).
func sortBySeq(seqs []int64, ps []OutboxRow) {
	for i := 1; i < len(seqs); i++ {
		for j := i; j > 0 && seqs[j] < seqs[j-1]; j-- {
			seqs[j], seqs[j-1] = seqs[j-1], seqs[j]
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

var _ Outbox = (*PostgresOutbox)(nil)
