package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteSchemaVersion is the schema this build writes and understands.
const sqliteSchemaVersion = 1

// sqliteBusyTimeout bounds how long a connection waits for another
// writer (another process on the same file) before failing.
const sqliteBusyTimeout = 5 * time.Second

// sqliteMigrations[i] brings the schema from version i to i+1. Each runs in
// the same transaction as the version bump, so a crash leaves either the
// old schema or the new one.
var sqliteMigrations = []string{
	`CREATE TABLE IF NOT EXISTS phone_users (
		user_id      TEXT    NOT NULL PRIMARY KEY,
		phone_number TEXT    NOT NULL,
		verified     INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
		updated_at   INTEGER NOT NULL -- unix milliseconds
	);
	-- The database itself refuses a second verified holder of a number.
	CREATE UNIQUE INDEX IF NOT EXISTS phone_users_verified_number
		ON phone_users (phone_number) WHERE verified = 1;`,
}

// SQLiteUsers is a Users in an embedded SQLite file (pure Go, no cgo).
// Several processes may open the same file: WAL mode lets readers run
// beside the writer, and writers queue on the busy timeout.
type SQLiteUsers struct {
	db   *sql.DB
	path string
	// wmu serialises this process's writers so they queue in Go, where
	// waiting honours ctx, instead of polling SQLite's lock.
	wmu chan struct{}
	// outbox is set once Outbox has created the outbox table.
	outbox atomic.Bool
	// namespace is the id in phone_meta (Backend.Namespace).
	namespace string
	// get is Get's query, prepared once: every update and every refusal
	// of one (a 429 flood) reads the user, and SQLite parsed the query
	// again each time.
	get *sql.Stmt
}

const getUserQuery = `SELECT phone_number, verified FROM phone_users WHERE user_id = ?`

// OpenSQLite opens (creating if needed) the database file at path and
// brings its schema up to date. The directory must exist: a typo in the
// path should fail loudly rather than scatter directories.
func OpenSQLite(ctx context.Context, path string) (*SQLiteUsers, error) {
	if path == "" {
		return nil, errors.New("store: sqlite: empty database path")
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%w: sqlite %q: %w", ErrUnavailable, path, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%w: sqlite %q: %q is not a directory", ErrUnavailable, path, dir)
	}
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite %q: open: %w", ErrUnavailable, path, err)
	}
	// Bounded so a burst cannot exhaust file descriptors; idle ones are
	// kept because opening a connection re-runs the pragmas.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	s := &SQLiteUsers{db: db, path: path, wmu: make(chan struct{}, 1)}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.get, err = db.PrepareContext(ctx, getUserQuery); err != nil {
		db.Close()
		return nil, s.fail("prepare", err)
	}
	return s, nil
}

// sqliteDSN builds a URI so that any path works, even one holding '?' or
// '#', and sets per-connection options: busy_timeout must be set on every
// connection, and _txlock=immediate takes the write lock at BEGIN, so a
// transaction never fails half-way with SQLITE_BUSY on lock upgrade.
func sqliteDSN(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	return fmt.Sprintf("file:%s?_txlock=immediate&_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)",
		esc, sqliteBusyTimeout.Milliseconds())
}

// setWAL switches the file to WAL, a property of the file, so setting it
// once is enough. Processes starting together on a new file may meet
// SQLITE_BUSY here without the busy timeout being waited (SQLite answers
// at once rather than risk a deadlock on the journal change): it tries
// again, for as long as the busy timeout.
func (s *SQLiteUsers) setWAL(ctx context.Context) (string, error) {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *SQLiteUsers) init(ctx context.Context) error {
	mode, err := s.setWAL(ctx)
	if err != nil {
		return s.fail("open", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("%w: sqlite %q: journal_mode is %q, want wal", ErrUnavailable, s.path, mode)
	}
	if err := s.lockWrites(ctx); err != nil {
		return err
	}
	defer s.unlockWrites()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("migrate", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS phone_schema_version (version INTEGER NOT NULL)`); err != nil {
		return s.fail("migrate", err)
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM phone_schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO phone_schema_version (version) VALUES (0)`); err != nil {
			return s.fail("migrate", err)
		}
	case err != nil:
		return s.fail("migrate", err)
	}
	if v > sqliteSchemaVersion {
		// Not ErrUnavailable: retrying will not help, an upgrade will.
		return fmt.Errorf("store: sqlite %q: schema version %d is newer than this build understands (%d)",
			s.path, v, sqliteSchemaVersion)
	}
	for ; v < sqliteSchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[v]); err != nil {
			return s.fail(fmt.Sprintf("migrate to version %d", v+1), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE phone_schema_version SET version = ?`, v); err != nil {
		return s.fail("migrate", err)
	}
	if s.namespace, err = sqliteNamespace(ctx, tx); err != nil {
		return s.fail("namespace", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("migrate", err)
	}
	return nil
}

// sqliteNamespace returns the file's id, writing a new one on first start.
// The table is outside the numbered migrations: any build may add it. The
// caller's transaction holds the write lock (BEGIN IMMEDIATE), and the
// insert keeps an id already there, so two processes starting together
// read one id.
func sqliteNamespace(ctx context.Context, tx *sql.Tx) (string, error) {
	id, err := newNamespaceID()
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS phone_meta (
		key   TEXT NOT NULL PRIMARY KEY,
		value TEXT NOT NULL
	)`); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO phone_meta (key, value) VALUES ('namespace', ?) ON CONFLICT (key) DO NOTHING`, id); err != nil {
		return "", err
	}
	err = tx.QueryRowContext(ctx, `SELECT value FROM phone_meta WHERE key = 'namespace'`).Scan(&id)
	return "sqlite:" + id, err
}

// Get returns the user's phone state; an unknown user has no number.
func (s *SQLiteUsers) Get(ctx context.Context, userID string) (User, error) {
	u := User{ID: userID}
	err := s.get.QueryRowContext(ctx, userID).Scan(&u.PhoneNumber, &u.Verified)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return User{}, s.fail("get", err)
	}
	return u, nil
}

// Set replaces the user's number in one transaction. The partial unique
// index is what refuses a second verified holder, so the rule holds even
// against another process writing the same file.
func (s *SQLiteUsers) Set(ctx context.Context, u User) error {
	return s.set(ctx, u, nil)
}

// SetWithEvent is Set with e added to the events outbox in the same
// transaction; ErrNoOutbox, writing nothing, before Outbox created the
// table.
func (s *SQLiteUsers) SetWithEvent(ctx context.Context, u User, e OutboxEvent) error {
	if !s.outbox.Load() {
		return ErrNoOutbox
	}
	if err := e.check(); err != nil {
		return err
	}
	return s.set(ctx, u, &e)
}

func (s *SQLiteUsers) set(ctx context.Context, u User, e *OutboxEvent) error {
	if u.ID == "" {
		return errEmptyUserID
	}
	if err := s.lockWrites(ctx); err != nil {
		return err
	}
	defer s.unlockWrites()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("set", err)
	}
	defer tx.Rollback()
	err = sqliteWriteUser(ctx, tx, u)
	if isUniqueViolation(err) {
		return ErrPhoneInUse
	}
	if err != nil {
		return s.fail("set", err)
	}
	if e != nil {
		if _, err := tx.ExecContext(ctx, sqliteOutboxAdd,
			e.ID, e.Stream, string(e.Body), time.Now().UnixMilli()); err != nil {
			return s.fail("set: outbox: add", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// sqliteWriteUser writes u to phone_users through q (a transaction): the
// row replaced, or deleted when u has no number. Set and the admin store
// both write a user with it; each maps the error its own way.
func sqliteWriteUser(ctx context.Context, q sqlQuerier, u User) error {
	if u.PhoneNumber == "" {
		_, err := q.ExecContext(ctx, `DELETE FROM phone_users WHERE user_id = ?`, u.ID)
		return err
	}
	_, err := q.ExecContext(ctx,
		`INSERT INTO phone_users (user_id, phone_number, verified, updated_at) VALUES (?, ?, ?, ?)
		 ON CONFLICT (user_id) DO UPDATE SET
			phone_number = excluded.phone_number,
			verified     = excluded.verified,
			updated_at   = excluded.updated_at`,
		u.ID, u.PhoneNumber, u.Verified, time.Now().UnixMilli())
	return err
}

// Close closes the database; later calls fail with ErrUnavailable.
func (s *SQLiteUsers) Close() error {
	if err := s.db.Close(); err != nil {
		return s.fail("close", err)
	}
	return nil
}

func (s *SQLiteUsers) lockWrites(ctx context.Context) error {
	select {
	case s.wmu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return s.fail("wait for writer", ctx.Err())
	}
}

func (s *SQLiteUsers) unlockWrites() { <-s.wmu }

// fail wraps a driver or I/O error as ErrUnavailable, keeping the cause
// for errors.Is/As (context.DeadlineExceeded, *sqlite.Error, …). No phone
// number goes into the message: errors end up in logs.
func (s *SQLiteUsers) fail(op string, err error) error {
	return fmt.Errorf("%w: sqlite %q: %s: %w", ErrUnavailable, s.path, op, err)
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

var _ Users = (*SQLiteUsers)(nil)
