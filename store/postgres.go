package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of PostgresConfig.
const (
	// DefaultPostgresQueryTimeout bounds each call when QueryTimeout is 0.
	DefaultPostgresQueryTimeout = 5 * time.Second
	// DefaultPostgresApplicationName is set as application_name when the
	// DSN names none, so an operator can tell our sessions apart in
	// pg_stat_activity.
	DefaultPostgresApplicationName = "caddy-phone"
)

// pgMaxAttempts bounds how often one call runs when the connection it got
// turns out dead (server restart, pg_terminate_backend, idle cut by a
// proxy). Every call is idempotent and ran in a transaction that the
// server rolled back, so running it again is safe.
const pgMaxAttempts = 3

// PostgresConfig configures OpenPostgres. Only DSN is required.
type PostgresConfig struct {
	// DSN is a libpq connection string or URL. Pool settings
	// (pool_max_conns, …) and runtime parameters (application_name,
	// search_path, …) may be given in it.
	DSN string
	// Schema holds the module's tables; it is created when missing.
	// Empty means the connection's search_path (usually public).
	Schema string
	// UsersTable names the legacy app's users table ("users" or
	// "app.users"). When set, the user's verified primary number is also
	// written into its columns in the same transaction, and numbers that
	// table already holds are read from it (see PostgresUsers).
	UsersTable string
	// IDColumn is the users table's key, compared as text with the user
	// ID of the token. Default "id".
	IDColumn string
	// PhoneColumn receives the verified number. Default "phone".
	PhoneColumn string
	// VerifiedColumn is a boolean column set with PhoneColumn. Empty
	// means "phone_verified" when the table has such a column, and no
	// verified column otherwise (every number in PhoneColumn then counts
	// as verified).
	VerifiedColumn string
	// QueryTimeout bounds each call (a Set's whole transaction).
	// Default DefaultPostgresQueryTimeout.
	QueryTimeout time.Duration
}

// PostgresUsers is a Users in PostgreSQL, for several Caddy instances
// sharing one truth. A partial unique index on verified numbers is what
// refuses a second verified holder, so the rule holds across instances.
//
// With a legacy users table mapped (PostgresConfig.UsersTable), the
// module's table stays the truth of every user it has written, and the
// legacy columns are kept as its projection, in the same transaction:
//
//   - a verified number is written to PhoneColumn, with VerifiedColumn
//     true;
//   - an unverified number or a removal clears them (PhoneColumn NULL, or
//     the empty string when it is NOT NULL; VerifiedColumn false): the
//     legacy columns only ever hold a number the module holds verified for
//     that user, so the legacy app never trusts a number that is no longer
//     verified or no longer the user's, and two legacy rows never share a
//     verified number written by the module;
//   - a legacy row is never created: a user without one is kept in the
//     module's table only.
//
// A user the module has never written (or whose number it removed) is
// read from the legacy row: a non-empty PhoneColumn is the number,
// verified when VerifiedColumn is true (or when there is no such column).
// Such a number also counts for the in-use check of Set. Existing data
// thus shows up without a migration step. Legacy values are returned
// verbatim; they should already be E.164. The key is looked up through its
// index when its type is text, varchar, an integer or uuid; a verified Set
// scans PhoneColumn, so an index on it helps large tables.
//
// Any failure rolls the whole transaction back. The one case PostgreSQL
// cannot settle is a connection lost while COMMIT is in flight: the call
// then returns ErrUnavailable although the write may have landed, in both
// tables alike. Every call is idempotent, so a retry converges.
type PostgresUsers struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	sql     pgQueries
	legacy  *pgLegacy // nil without a users table mapping
	schema  string    // PostgresConfig.Schema, for the outbox's table
	// outboxAdd is the outbox's insert, set once Outbox created its table.
	outboxAdd atomic.Pointer[string]
	// namespace is the id in phone_meta (Backend.Namespace).
	namespace string
}

// pgQueries is every statement the store runs, built once at open from
// validated, quoted identifiers. Request data only ever travels as
// parameters.
type pgQueries struct {
	get, getModule string // getModule: when the ID cannot be a legacy key
	remove, upsert string
	legacyHolder   string // Set's in-use check against legacy rows
	legacyUpdate   string
}

// pgLegacy is the resolved legacy mapping.
type pgLegacy struct {
	table, id, phone, verified string // quoted; verified "" when none
	idKind                     pgIDKind
	clearPhone                 any // nil, or "" when the column is NOT NULL
}

// OpenPostgres connects, creates or migrates the module's tables and, with
// a users table mapping, checks that table, its columns and our
// privileges on them. Invalid configuration is an error naming the field;
// a database that cannot be reached is ErrUnavailable. The work is bounded
// by ctx and by three times the query timeout.
func OpenPostgres(ctx context.Context, cfg PostgresConfig) (*PostgresUsers, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgconn redacts the password from its parse errors.
		return nil, fmt.Errorf("store: postgres: dsn: %w", err)
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = DefaultPostgresApplicationName
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > cfg.QueryTimeout {
		pcfg.ConnConfig.ConnectTimeout = cfg.QueryTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: open: %w", ErrUnavailable, err)
	}
	s := &PostgresUsers{pool: pool, timeout: cfg.QueryTimeout, schema: cfg.Schema}
	octx, cancel := context.WithTimeout(ctx, 3*cfg.QueryTimeout)
	defer cancel()
	if err := s.migrate(octx, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	if s.namespace, err = s.readNamespace(octx, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.UsersTable != "" {
		if s.legacy, err = s.inspectLegacy(octx, cfg); err != nil {
			pool.Close()
			return nil, err
		}
	}
	s.sql = buildPgQueries(pgIdent(cfg.Schema, "phone_users"), s.legacy)
	return s, nil
}

// normalize fills defaults and validates everything that needs no
// database. Identifiers are quoted when used, and checked here so that a
// typo fails at load rather than at the first request.
func (cfg *PostgresConfig) normalize() error {
	if strings.TrimSpace(cfg.DSN) == "" {
		// An empty DSN would silently fall back to PG* environment defaults.
		return errors.New("store: postgres: dsn: empty")
	}
	switch {
	case cfg.QueryTimeout < 0:
		return fmt.Errorf("store: postgres: timeout: %v is negative", cfg.QueryTimeout)
	case cfg.QueryTimeout == 0:
		cfg.QueryTimeout = DefaultPostgresQueryTimeout
	}
	if cfg.Schema != "" && !pgIdentRe.MatchString(cfg.Schema) {
		return pgIdentError("schema", cfg.Schema)
	}
	if cfg.UsersTable == "" {
		for _, f := range []struct{ field, v string }{
			{"id_column", cfg.IDColumn}, {"phone_column", cfg.PhoneColumn}, {"verified_column", cfg.VerifiedColumn},
		} {
			if f.v != "" {
				return fmt.Errorf("store: postgres: %s is set without users_table", f.field)
			}
		}
		return nil
	}
	if parts := strings.Split(cfg.UsersTable, "."); len(parts) > 2 || !allIdents(parts) {
		return pgIdentError("users_table", cfg.UsersTable)
	}
	if cfg.IDColumn == "" {
		cfg.IDColumn = "id"
	}
	if cfg.PhoneColumn == "" {
		cfg.PhoneColumn = "phone"
	}
	for _, f := range []struct{ field, v string }{
		{"id_column", cfg.IDColumn}, {"phone_column", cfg.PhoneColumn}, {"verified_column", cfg.VerifiedColumn},
	} {
		if f.v != "" && !pgIdentRe.MatchString(f.v) {
			return pgIdentError(f.field, f.v)
		}
	}
	if cfg.IDColumn == cfg.PhoneColumn || cfg.PhoneColumn == cfg.VerifiedColumn || cfg.IDColumn == cfg.VerifiedColumn {
		return fmt.Errorf("store: postgres: id_column, phone_column and verified_column must be distinct columns")
	}
	return nil
}

// pgIdentRe is a plain SQL identifier. Stricter than PostgreSQL (no $, no
// non-ASCII): what a users table mapping needs, and nothing to escape.
// Names are quoted when used, so they match exactly as written.
var pgIdentRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func allIdents(parts []string) bool {
	for _, p := range parts {
		if !pgIdentRe.MatchString(p) {
			return false
		}
	}
	return true
}

func pgIdentError(field, v string) error {
	what := "a name"
	if field == "users_table" {
		what = "a table name, optionally schema-qualified (schema.table)"
	}
	return fmt.Errorf("store: postgres: %s: %q is not %s of letters, digits and _ not starting with a digit",
		field, v, what)
}

// pgIdent quotes name, qualified by schema when one is given.
func pgIdent(schema, name string) string {
	if schema == "" {
		return pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

// Get returns the user's phone state; an unknown user has no number.
func (s *PostgresUsers) Get(ctx context.Context, userID string) (User, error) {
	u := User{ID: userID}
	query := s.sql.get
	if s.legacy != nil && !s.legacy.idKind.canMatch(userID) {
		query = s.sql.getModule // no legacy key can equal this ID
	}
	err := s.run(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, query, userID).Scan(&u.PhoneNumber, &u.Verified)
		if errors.Is(err, pgx.ErrNoRows) {
			u.PhoneNumber, u.Verified = "", false
			return nil
		}
		return err
	})
	if err != nil {
		return User{}, s.fail("get", err)
	}
	return u, nil
}

// Set replaces the user's number, and the legacy columns with it, in one
// transaction: on any failure neither is changed.
func (s *PostgresUsers) Set(ctx context.Context, u User) error {
	if u.ID == "" {
		return errEmptyUserID
	}
	if u.PhoneNumber == "" {
		u.Verified = false
	}
	err := s.run(ctx, func(ctx context.Context) error { return s.set(ctx, u, nil) })
	if errors.Is(err, ErrPhoneInUse) {
		return err
	}
	if err != nil {
		return s.fail("set", err)
	}
	return nil
}

// SetWithEvent is Set with e added to the events outbox in the same
// transaction; ErrNoOutbox, writing nothing, before Outbox created the
// table.
func (s *PostgresUsers) SetWithEvent(ctx context.Context, u User, e OutboxEvent) error {
	if u.ID == "" {
		return errEmptyUserID
	}
	add := s.outboxAdd.Load()
	if add == nil {
		return ErrNoOutbox
	}
	if err := e.check(); err != nil {
		return err
	}
	if u.PhoneNumber == "" {
		u.Verified = false
	}
	err := s.run(ctx, func(ctx context.Context) error {
		return s.set(ctx, u, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, *add, e.ID, e.Stream, string(e.Body))
			if err != nil {
				return fmt.Errorf("outbox: add: %w", err)
			}
			return nil
		})
	})
	if errors.Is(err, ErrPhoneInUse) {
		return err
	}
	if err != nil {
		return s.fail("set", err)
	}
	return nil
}

// set writes u and, when also is not nil, what also writes, in one
// transaction.
func (s *PostgresUsers) set(ctx context.Context, u User, also func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// After a failure the server has aborted the transaction; when ctx is
	// done pgx closes the connection instead, which aborts it too.
	defer tx.Rollback(ctx)
	err = s.writeUser(ctx, tx, u, func(err error) error {
		if isPgUniqueViolation(err) {
			return ErrPhoneInUse
		}
		return err
	})
	if err != nil {
		return err
	}
	if also != nil {
		if err := also(tx); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// writeUser writes u to phone_users in tx and projects it onto the legacy
// columns (see PostgresUsers): the one user write of Set and of the admin
// store. result maps the error of the phone_users write; a legacy holder
// of a verified number, or the legacy table's own unique constraint, is
// ErrPhoneInUse.
func (s *PostgresUsers) writeUser(ctx context.Context, tx pgx.Tx, u User, result func(error) error) error {
	if u.Verified && s.legacy != nil {
		var held bool
		if err := tx.QueryRow(ctx, s.sql.legacyHolder, u.PhoneNumber, u.ID).Scan(&held); err != nil {
			return err
		}
		if held {
			return ErrPhoneInUse
		}
	}
	var err error
	if u.PhoneNumber == "" {
		_, err = tx.Exec(ctx, s.sql.remove, u.ID)
	} else {
		_, err = tx.Exec(ctx, s.sql.upsert, u.ID, u.PhoneNumber, u.Verified)
	}
	if err := result(err); err != nil {
		return err
	}
	if s.legacy == nil || !s.legacy.idKind.canMatch(u.ID) {
		return nil
	}
	var phone any = s.legacy.clearPhone
	if u.Verified {
		phone = u.PhoneNumber
	}
	args := []any{u.ID, phone}
	if s.legacy.verified != "" {
		args = append(args, u.Verified)
	}
	_, err = tx.Exec(ctx, s.sql.legacyUpdate, args...)
	if isPgUniqueViolation(err) {
		// The legacy table's own unique constraint: another of its users
		// has this number.
		return fmt.Errorf("%w: users_table: %w", ErrPhoneInUse, err)
	}
	if err != nil {
		return fmt.Errorf("users_table: %w", err)
	}
	return nil
}

// Close waits for calls in flight and closes every connection; later
// calls fail with ErrUnavailable.
func (s *PostgresUsers) Close() error {
	s.pool.Close()
	return nil
}

// run calls fn under the query timeout, again when it failed on a
// connection that turned out dead and time is left.
func (s *PostgresUsers) run(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var err error
	for range pgMaxAttempts {
		if err = fn(ctx); err == nil || !pgRetryable(ctx, err) {
			break
		}
	}
	return err
}

// pgRetryable reports whether err means "this connection or transaction
// is gone, nothing was kept", as opposed to an answer (a constraint, a
// timeout, a closed pool) that another try would only repeat.
func pgRetryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || pgconn.Timeout(err) || errors.Is(err, ErrPhoneInUse) {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", // admin_shutdown (pg_terminate_backend), crash_shutdown
			"40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func isPgUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// fail wraps a driver or network error as ErrUnavailable, keeping the
// cause for errors.Is/As (context.DeadlineExceeded, *pgconn.PgError, …).
// Neither the DSN nor a phone number goes into the message: errors end up
// in logs.
func (s *PostgresUsers) fail(op string, err error) error {
	return fmt.Errorf("%w: postgres: %s: %w", ErrUnavailable, op, err)
}

var _ Users = (*PostgresUsers)(nil)
