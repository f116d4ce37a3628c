package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// sqliteNowMs is the current time in Unix milliseconds, in SQL.
const sqliteNowMs = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`

// sqliteNumbersSchema creates the admin API's table beside phone_users.
// It sits outside sqliteMigrations: it is created, with IF NOT EXISTS, by
// the first config that enables the admin endpoints.
//
// The triggers keep the primary number in step with phone_users whoever
// writes it (the user API through Set, another process, an older build):
// a new number replaces the old primary, which is gone (SPEC §4), an
// existing secondary number is promoted, and a number that stops being
// verified loses its reservation. A verified number that another user
// holds, even as a secondary number, makes Set fail on the unique index
// below, which Set reports as ErrPhoneInUse.
var sqliteNumbersSchema = strings.NewReplacer("{now}", sqliteNowMs).Replace(`
CREATE TABLE IF NOT EXISTS phone_numbers (
	id                    TEXT    NOT NULL PRIMARY KEY,
	user_id               TEXT    NOT NULL,
	phone_number          TEXT    NOT NULL CHECK (phone_number <> ''),
	verified              INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
	strategy              TEXT    NOT NULL DEFAULT '' CHECK (strategy IN ('', 'admin', 'phone_code')),
	is_primary            INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
	reserved              INTEGER NOT NULL DEFAULT 0 CHECK (reserved IN (0, 1)),
	default_second_factor INTEGER NOT NULL DEFAULT 0 CHECK (default_second_factor IN (0, 1)),
	created_at            INTEGER NOT NULL, -- unix milliseconds; rowid orders the numbers
	updated_at            INTEGER NOT NULL,
	CHECK (verified = 1 OR reserved = 0),
	CHECK (reserved = 1 OR default_second_factor = 0)
);
CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_user_number ON phone_numbers (user_id, phone_number);
CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_verified_number ON phone_numbers (phone_number) WHERE verified = 1;
CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_primary ON phone_numbers (user_id) WHERE is_primary = 1;
CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_default_second_factor ON phone_numbers (user_id) WHERE default_second_factor = 1;
-- The admin API's user list finds users by number (findUsers).
CREATE INDEX IF NOT EXISTS phone_numbers_number ON phone_numbers (phone_number);

DROP TRIGGER IF EXISTS phone_numbers_follow_insert;
CREATE TRIGGER phone_numbers_follow_insert AFTER INSERT ON phone_users
BEGIN` + sqliteFollow + `END;
DROP TRIGGER IF EXISTS phone_numbers_follow_update;
CREATE TRIGGER phone_numbers_follow_update AFTER UPDATE OF phone_number, verified ON phone_users
BEGIN` + sqliteFollow + `END;
CREATE TRIGGER IF NOT EXISTS phone_numbers_follow_delete AFTER DELETE ON phone_users
BEGIN
	DELETE FROM phone_numbers WHERE user_id = OLD.user_id AND is_primary = 1 AND phone_number = OLD.phone_number;
	` + strings.ReplaceAll(sqliteFixDefault, "{user}", "OLD.user_id") + `
END;`)

// sqliteFollow makes NEW, a phone_users row, the primary number. A
// number the user already holds verified as a secondary number is never
// lowered by an unverified write (the user API storing, under rule 2, a
// number it does not know is verified): phone_users is raised to verified
// instead, so the account keeps its second factor and no other user can
// verify the number. That raise fires the update trigger, which mirrors
// the raised row; the rest of this one then reads the row's verified
// value as it now is ({v}), not NEW.verified.
var sqliteFollow = strings.NewReplacer("{v}", `(SELECT verified FROM phone_users WHERE user_id = NEW.user_id)`).Replace(`
	UPDATE phone_users SET verified = 1
	WHERE user_id = NEW.user_id AND verified = 0 AND phone_number = NEW.phone_number
	  AND EXISTS (SELECT 1 FROM phone_numbers WHERE user_id = NEW.user_id AND phone_number = NEW.phone_number
	                                            AND verified = 1 AND is_primary = 0);
	DELETE FROM phone_numbers WHERE user_id = NEW.user_id AND is_primary = 1 AND phone_number <> NEW.phone_number;
	UPDATE phone_numbers SET
		is_primary            = 1,
		strategy              = CASE WHEN {v} = 0 THEN '' WHEN verified = 0 THEN 'phone_code' ELSE strategy END,
		reserved              = reserved * {v},
		default_second_factor = default_second_factor * {v},
		verified              = {v},
		updated_at            = {now}
	WHERE user_id = NEW.user_id AND phone_number = NEW.phone_number AND (is_primary = 0 OR verified <> {v});
	INSERT INTO phone_numbers (id, user_id, phone_number, verified, strategy, is_primary, created_at, updated_at)
	SELECT 'idn_' || lower(hex(randomblob(16))), NEW.user_id, NEW.phone_number, {v},
	       CASE WHEN {v} = 1 THEN 'phone_code' ELSE '' END, 1, {now}, {now}
	WHERE NOT EXISTS (SELECT 1 FROM phone_numbers WHERE user_id = NEW.user_id AND phone_number = NEW.phone_number);
	` + strings.ReplaceAll(sqliteFixDefault, "{user}", "NEW.user_id") + `
`)

// sqliteFixDefault: the oldest reserved number becomes the default second
// factor when the user has none (fixDefault's rule).
const sqliteFixDefault = `UPDATE phone_numbers SET default_second_factor = 1
	WHERE id = (SELECT id FROM phone_numbers WHERE user_id = {user} AND reserved = 1 ORDER BY rowid LIMIT 1)
	  AND NOT EXISTS (SELECT 1 FROM phone_numbers WHERE user_id = {user} AND default_second_factor = 1);`

// sqliteNumbersBackfill gives every user already in phone_users their
// primary number, when the table is new.
const sqliteNumbersBackfill = `INSERT INTO phone_numbers
	(id, user_id, phone_number, verified, strategy, is_primary, created_at, updated_at)
	SELECT 'idn_' || lower(hex(randomblob(16))), user_id, phone_number, verified,
	       CASE WHEN verified = 1 THEN 'phone_code' ELSE '' END, 1, updated_at, updated_at
	FROM phone_users`

// openNumbers creates the admin API's table and triggers when missing.
func (s *SQLiteUsers) openNumbers(ctx context.Context) (numbersBackend, error) {
	if err := s.lockWrites(ctx); err != nil {
		return nil, err
	}
	defer s.unlockWrites()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("phone numbers: create", err)
	}
	defer tx.Rollback()
	var existed bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'phone_numbers')`).
		Scan(&existed); err != nil {
		return nil, s.fail("phone numbers: create", err)
	}
	if _, err := tx.ExecContext(ctx, sqliteNumbersSchema); err != nil {
		return nil, s.fail("phone numbers: create", err)
	}
	if !existed {
		if _, err := tx.ExecContext(ctx, sqliteNumbersBackfill); err != nil {
			return nil, s.fail("phone numbers: backfill", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("phone numbers: create", err)
	}
	return sqliteNumbers{s}, nil
}

type sqliteNumbers struct{ s *SQLiteUsers }

func (b sqliteNumbers) ownerOf(ctx context.Context, id string) (string, string, error) {
	var owner, number string
	err := b.s.db.QueryRowContext(ctx, `SELECT user_id, phone_number FROM phone_numbers WHERE id = ?`, id).
		Scan(&owner, &number)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", "", ErrNotFound
	case err != nil:
		return "", "", b.s.fail("phone numbers: owner", err)
	}
	return owner, number, nil
}

// inUser runs a writer in an immediate transaction behind this process's
// writer lock, so reading the numbers and writing them is one step even
// against another process; a reader runs on the pool, where its single
// query sees one snapshot.
func (b sqliteNumbers) inUser(ctx context.Context, userID, _ string, write bool, fn func(numbersTx) error) error {
	if !write {
		return fn(&sqliteNumbersTx{s: b.s, q: b.s.db, userID: userID})
	}
	if err := b.s.lockWrites(ctx); err != nil {
		return err
	}
	defer b.s.unlockWrites()
	tx, err := b.s.db.BeginTx(ctx, nil)
	if err != nil {
		return b.s.fail("phone numbers: begin", err)
	}
	defer tx.Rollback()
	if err := fn(&sqliteNumbersTx{s: b.s, q: tx, userID: userID}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return b.s.fail("phone numbers: commit", err)
	}
	return nil
}

// sqlQuerier is what *sql.DB and *sql.Tx share.
type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqliteNumbersTx struct {
	s      *SQLiteUsers
	q      sqlQuerier
	userID string
}

func (tx *sqliteNumbersTx) list(ctx context.Context) ([]PhoneNumber, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT `+numberColumns+` FROM phone_numbers
		WHERE user_id = ? ORDER BY rowid`, tx.userID)
	if err != nil {
		return nil, tx.s.fail("phone numbers: list", err)
	}
	defer rows.Close()
	var out []PhoneNumber
	for rows.Next() {
		n, err := scanNumber(rows.Scan)
		if err != nil {
			return nil, tx.s.fail("phone numbers: list", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, tx.s.fail("phone numbers: list", err)
	}
	return out, nil
}

func (tx *sqliteNumbersTx) heldByOther(ctx context.Context, number string) (bool, error) {
	var held bool
	err := tx.q.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM phone_numbers WHERE phone_number = ?1 AND verified = 1 AND user_id <> ?2) OR
		EXISTS (SELECT 1 FROM phone_users WHERE phone_number = ?1 AND verified = 1 AND user_id <> ?2)`,
		number, tx.userID).Scan(&held)
	if err != nil {
		return false, tx.s.fail("phone numbers: holder", err)
	}
	return held, nil
}

func (tx *sqliteNumbersTx) put(ctx context.Context, n PhoneNumber) error {
	_, err := tx.q.ExecContext(ctx, `INSERT INTO phone_numbers (`+numberColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			verified              = excluded.verified,
			strategy              = excluded.strategy,
			is_primary            = excluded.is_primary,
			reserved              = excluded.reserved,
			default_second_factor = excluded.default_second_factor,
			updated_at            = excluded.updated_at`,
		numberArgs(n)...)
	return tx.result("phone numbers: put", err)
}

func (tx *sqliteNumbersTx) remove(ctx context.Context, id string) error {
	_, err := tx.q.ExecContext(ctx, `DELETE FROM phone_numbers WHERE id = ?`, id)
	return tx.result("phone numbers: delete", err)
}

// setUser writes phone_users as Set does, inside this transaction.
func (tx *sqliteNumbersTx) setUser(ctx context.Context, u User) error {
	return tx.result("phone numbers: set user", sqliteWriteUser(ctx, tx.q, u))
}

// result maps a write's error: a unique index refusing it means another
// user holds the number verified (every other index is checked first,
// under the write lock).
func (tx *sqliteNumbersTx) result(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return ErrPhoneInUse
	}
	return tx.s.fail(op, err)
}

// sqliteFindUsers selects the users holding any of the numbers ({in}: one
// placeholder per number) through phone_numbers_number, then orders them
// by their oldest number through phone_numbers_user_number; {order} is
// ASC or DESC.
const sqliteFindUsers = `SELECT user_id FROM phone_numbers
	WHERE user_id IN (SELECT user_id FROM phone_numbers WHERE phone_number IN ({in}))
	GROUP BY user_id ORDER BY min(created_at) {order}, user_id LIMIT ? OFFSET ?`

const sqliteCountUsers = `SELECT count(DISTINCT user_id) FROM phone_numbers WHERE phone_number IN ({in})`

// sqliteIn fills {in} with one placeholder per number and returns the
// numbers as arguments.
func sqliteIn(query string, numbers []string) (string, []any) {
	args := make([]any, len(numbers))
	for i, n := range numbers {
		args[i] = n
	}
	return strings.Replace(query, "{in}", strings.TrimSuffix(strings.Repeat("?, ", len(numbers)), ", "), 1), args
}

// findUsersQuery is findUsers' statement and arguments.
func (sqliteNumbers) findUsersQuery(q UserQuery) (string, []any) {
	order := "DESC"
	if q.Oldest {
		order = "ASC"
	}
	query, args := sqliteIn(strings.Replace(sqliteFindUsers, "{order}", order, 1), q.PhoneNumbers)
	return query, append(args, q.Limit, q.Offset)
}

func (b sqliteNumbers) findUsers(ctx context.Context, q UserQuery) ([]string, error) {
	query, args := b.findUsersQuery(q)
	rows, err := b.s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, b.s.fail("phone numbers: find users", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, b.s.fail("phone numbers: find users", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, b.s.fail("phone numbers: find users", err)
	}
	return out, nil
}

func (b sqliteNumbers) countUsers(ctx context.Context, numbers []string) (int, error) {
	query, args := sqliteIn(sqliteCountUsers, numbers)
	var n int
	if err := b.s.db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, b.s.fail("phone numbers: count users", err)
	}
	return n, nil
}
