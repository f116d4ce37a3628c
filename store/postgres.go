package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
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

// pgSchemaVersion is the schema this build writes and understands.
const pgSchemaVersion = 1

// pgMigrateLockKey is the pg_advisory_xact_lock key that serialises
// schema migrations across every instance sharing the database ("phone_mg").
const pgMigrateLockKey int64 = 0x70686f6e655f6d67

// pgMaxAttempts bounds how often one call runs when the connection it got
// turns out dead (server restart, pg_terminate_backend, idle cut by a
// proxy). Every call is idempotent and ran in a transaction that the
// server rolled back, so running it again is safe.
const pgMaxAttempts = 3

// pgMigrations[i] brings the module's tables from version i to i+1. All of
// them run in one transaction together with the version rows, under the
// advisory lock. {users} is replaced by the quoted, qualified table name.
var pgMigrations = [][]string{
	{
		`CREATE TABLE IF NOT EXISTS {users} (
			user_id      text        NOT NULL PRIMARY KEY,
			phone_number text        NOT NULL CHECK (phone_number <> ''),
			verified     boolean     NOT NULL DEFAULT false,
			updated_at   timestamptz NOT NULL DEFAULT now()
		)`,
		// The database itself refuses a second verified holder of a number.
		`CREATE UNIQUE INDEX IF NOT EXISTS phone_users_verified_number
			ON {users} (phone_number) WHERE verified`,
	},
}

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
	// outboxAdd is the outbox's insert, set once Outbox created its table.
	outboxAdd atomic.Pointer[string]
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
	s := &PostgresUsers{pool: pool, timeout: cfg.QueryTimeout}
	octx, cancel := context.WithTimeout(ctx, 3*cfg.QueryTimeout)
	defer cancel()
	if err := s.migrate(octx, cfg.Schema); err != nil {
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

// migrate brings the module's tables up to pgSchemaVersion in one
// transaction under a transaction-scoped advisory lock, so instances
// starting together queue here and the later ones find the work done.
func (s *PostgresUsers) migrate(ctx context.Context, schema string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.fail("migrate", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrateLockKey); err != nil {
		return s.fail("migrate: advisory lock", err)
	}
	if schema != "" {
		// CREATE SCHEMA IF NOT EXISTS would still need CREATE on the
		// database; an existing schema needs nothing.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).
			Scan(&exists); err != nil {
			return s.fail("migrate", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgIdent("", schema)); err != nil {
				return s.fail("migrate: create schema", err)
			}
		}
	}
	versions := pgIdent(schema, "phone_schema_migrations")
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versions+` (
		version    integer     NOT NULL PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return s.fail("migrate", err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM `+versions).Scan(&v); err != nil {
		return s.fail("migrate", err)
	}
	if v > pgSchemaVersion {
		// Not ErrUnavailable: retrying will not help, an upgrade will.
		return fmt.Errorf("store: postgres: schema version %d is newer than this build understands (%d)",
			v, pgSchemaVersion)
	}
	if v == pgSchemaVersion {
		return nil // nothing to commit; the deferred rollback frees the lock
	}
	r := strings.NewReplacer("{users}", pgIdent(schema, "phone_users"))
	for ; v < pgSchemaVersion; v++ {
		for _, stmt := range pgMigrations[v] {
			if _, err := tx.Exec(ctx, r.Replace(stmt)); err != nil {
				return s.fail(fmt.Sprintf("migrate to version %d", v+1), err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+versions+` (version) VALUES ($1)`, v+1); err != nil {
			return s.fail("migrate", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail("migrate", err)
	}
	return nil
}

// pgIDKind is how a legacy key column is compared with a user ID. The
// meaning is always "id_column::text = user ID"; the typed forms give the
// same answer while letting PostgreSQL use the column's index.
type pgIDKind int

const (
	pgIDAsText pgIDKind = iota // any type: id::text = $1 (no index)
	pgIDText                   // text, varchar: id = $1
	pgIDInt2
	pgIDInt4
	pgIDInt8
	pgIDUUID
)

// Type OIDs of the key columns compared natively.
const (
	pgOIDInt8    = 20
	pgOIDInt2    = 21
	pgOIDInt4    = 23
	pgOIDText    = 25
	pgOIDVarchar = 1043
	pgOIDUUID    = 2950
)

// expr returns the SQL matching column (quoted, alias l) against $n.
func (k pgIDKind) expr(column string, n int) string {
	p := "$" + strconv.Itoa(n) + "::text"
	switch k {
	case pgIDText:
		return "l." + column + " = " + p
	case pgIDInt2:
		return "l." + column + " = " + p + "::smallint"
	case pgIDInt4:
		return "l." + column + " = " + p + "::integer"
	case pgIDInt8:
		return "l." + column + " = " + p + "::bigint"
	case pgIDUUID:
		return "l." + column + " = " + p + "::uuid"
	}
	return "l." + column + "::text = " + p
}

// canMatch reports whether id can equal the text form of a key of this
// kind. Only the canonical text form can (7::text is "7", never "07"), so
// the typed casts in expr never fail on what passes here.
func (k pgIDKind) canMatch(id string) bool {
	bits := 0
	switch k {
	case pgIDInt2:
		bits = 16
	case pgIDInt4:
		bits = 32
	case pgIDInt8:
		bits = 64
	case pgIDUUID:
		return pgUUIDRe.MatchString(id)
	default:
		return true
	}
	n, err := strconv.ParseInt(id, 10, bits)
	return err == nil && strconv.FormatInt(n, 10) == id
}

// pgUUIDRe is the text form PostgreSQL gives a uuid.
var pgUUIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// inspectLegacy checks the users table mapping against the database: the
// table and columns exist, have usable types, and we may read them and
// write the phone columns. It picks how keys are compared.
func (s *PostgresUsers) inspectLegacy(ctx context.Context, cfg PostgresConfig) (*pgLegacy, error) {
	table := pgx.Identifier(strings.Split(cfg.UsersTable, ".")).Sanitize()
	var found bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&found); err != nil {
		return nil, s.fail("inspect users_table", err)
	}
	if !found {
		return nil, fmt.Errorf("store: postgres: users_table: no table %q (looked up in the connection's search_path unless qualified)",
			cfg.UsersTable)
	}
	type column struct {
		oid          uint32
		typ, cat     string
		notNull      bool
		read, update bool
	}
	cols := map[string]column{}
	rows, err := s.pool.Query(ctx, `
		SELECT a.attname::text, a.atttypid::oid, format_type(a.atttypid, a.atttypmod), t.typcategory::text,
		       a.attnotnull,
		       has_column_privilege(a.attrelid, a.attnum, 'SELECT'),
		       has_column_privilege(a.attrelid, a.attnum, 'UPDATE')
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return nil, s.fail("inspect users_table", err)
	}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.oid, &c.typ, &c.cat, &c.notNull, &c.read, &c.update); err != nil {
			rows.Close()
			return nil, s.fail("inspect users_table", err)
		}
		cols[name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("inspect users_table", err)
	}

	lookup := func(field, name string, write bool, category, want string) (column, error) {
		c, ok := cols[name]
		switch {
		case !ok:
			return c, fmt.Errorf("store: postgres: %s: table %q has no column %q", field, cfg.UsersTable, name)
		case category != "" && c.cat != category:
			return c, fmt.Errorf("store: postgres: %s: column %q is %s, want %s", field, name, c.typ, want)
		case !c.read:
			return c, fmt.Errorf("store: postgres: %s: permission denied: cannot SELECT column %q", field, name)
		case write && !c.update:
			return c, fmt.Errorf("store: postgres: %s: permission denied: cannot UPDATE column %q", field, name)
		}
		return c, nil
	}
	l := &pgLegacy{table: table}
	id, err := lookup("id_column", cfg.IDColumn, false, "", "")
	if err != nil {
		return nil, err
	}
	l.id = pgIdent("", cfg.IDColumn)
	switch id.oid {
	case pgOIDText, pgOIDVarchar:
		l.idKind = pgIDText
	case pgOIDInt2:
		l.idKind = pgIDInt2
	case pgOIDInt4:
		l.idKind = pgIDInt4
	case pgOIDInt8:
		l.idKind = pgIDInt8
	case pgOIDUUID:
		l.idKind = pgIDUUID
	}
	phone, err := lookup("phone_column", cfg.PhoneColumn, true, "S", "a string type (text, varchar)")
	if err != nil {
		return nil, err
	}
	l.phone = pgIdent("", cfg.PhoneColumn)
	if phone.notNull {
		l.clearPhone = ""
	}
	verified := cfg.VerifiedColumn
	if verified == "" {
		if _, ok := cols["phone_verified"]; ok && cfg.PhoneColumn != "phone_verified" && cfg.IDColumn != "phone_verified" {
			verified = "phone_verified"
		}
	}
	if verified != "" {
		if _, err := lookup("verified_column", verified, true, "B", "boolean"); err != nil {
			return nil, err
		}
		l.verified = pgIdent("", verified)
	}
	return l, nil
}

func buildPgQueries(users string, l *pgLegacy) pgQueries {
	q := pgQueries{
		getModule: `SELECT phone_number, verified FROM ` + users + ` WHERE user_id = $1::text`,
		remove:    `DELETE FROM ` + users + ` WHERE user_id = $1::text`,
		upsert: `INSERT INTO ` + users + ` (user_id, phone_number, verified, updated_at)
			VALUES ($1::text, $2::text, $3::boolean, now())
			ON CONFLICT (user_id) DO UPDATE SET
				phone_number = EXCLUDED.phone_number,
				verified     = EXCLUDED.verified,
				updated_at   = EXCLUDED.updated_at`,
	}
	q.get = q.getModule
	if l == nil {
		return q
	}
	// A legacy row speaks for its user only while the module's table has
	// no row for that user.
	unmanaged := `NOT EXISTS (SELECT 1 FROM ` + users + ` AS p WHERE p.user_id = l.` + l.id + `::text)`
	isVerified, verifiedValue := "TRUE", "true"
	if l.verified != "" {
		isVerified = "l." + l.verified + " IS TRUE"
		verifiedValue = "COALESCE(l." + l.verified + ", false)"
	}
	// One statement, so both sides are read from one snapshot.
	q.get = `SELECT phone_number, verified FROM ` + users + ` WHERE user_id = $1::text
		UNION ALL
		(SELECT l.` + l.phone + `::text, ` + verifiedValue + ` FROM ` + l.table + ` AS l
		 WHERE ` + l.idKind.expr(l.id, 1) + `
		   AND l.` + l.phone + ` IS NOT NULL AND l.` + l.phone + `::text <> ''
		   AND NOT EXISTS (SELECT 1 FROM ` + users + ` AS p WHERE p.user_id = $1::text)
		 LIMIT 1)`
	q.legacyHolder = `SELECT EXISTS (SELECT 1 FROM ` + l.table + ` AS l
		WHERE l.` + l.phone + ` = $1::text AND ` + isVerified + `
		  AND l.` + l.id + `::text <> $2::text AND ` + unmanaged + `)`
	if l.verified != "" {
		q.legacyUpdate = `UPDATE ` + l.table + ` AS l SET ` + l.phone + ` = $2::text, ` + l.verified + ` = $3::boolean
			WHERE ` + l.idKind.expr(l.id, 1) + `
			  AND (l.` + l.phone + ` IS DISTINCT FROM $2::text OR l.` + l.verified + ` IS DISTINCT FROM $3::boolean)`
	} else {
		q.legacyUpdate = `UPDATE ` + l.table + ` AS l SET ` + l.phone + ` = $2::text
			WHERE ` + l.idKind.expr(l.id, 1) + ` AND l.` + l.phone + ` IS DISTINCT FROM $2::text`
	}
	return q
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
