package store

import (
	"context"
	"fmt"
	"strings"
)

// The module's own tables in PostgreSQL and their migrations.

// pgSchemaVersion is the schema this build writes and understands.
const pgSchemaVersion = 1

// pgMigrateLockKey is the pg_advisory_xact_lock key that serialises
// schema migrations across every instance sharing the database ("phone_mg").
const pgMigrateLockKey int64 = 0x70686f6e655f6d67

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

// readNamespace returns the id of the module's tables (Backend.Namespace):
// one per database and schema, written by the first instance to start and
// read by every other, whatever DSN reached it. Outside the numbered
// migrations, so any build may add the table; under the migration lock,
// and the insert keeps an id already there, so instances starting
// together read one id.
func (s *PostgresUsers) readNamespace(ctx context.Context, schema string) (string, error) {
	id, err := newNamespaceID()
	if err != nil {
		return "", err
	}
	meta := pgIdent(schema, "phone_meta")
	err = s.run(ctx, func(ctx context.Context) error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrateLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+meta+` (
			key   text NOT NULL PRIMARY KEY,
			value text NOT NULL
		)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+meta+` (key, value) VALUES ('namespace', $1)
			ON CONFLICT (key) DO NOTHING`, id); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT value FROM `+meta+` WHERE key = 'namespace'`).Scan(&id); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return "", s.fail("namespace", err)
	}
	return "postgres:" + id, nil
}
