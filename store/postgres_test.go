package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// The PostgreSQL tests need a real server: PHONE_TEST_POSTGRES_DSN, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable (PostgreSQL 14+:
// the tests use pg_terminate_backend's timeout). Each test works in its own
// schema, named phone_test_<random>, and drops it when done; its sessions
// carry that name as application_name, so a test only ever terminates its
// own connections.
const pgDSNEnv = "PHONE_TEST_POSTGRES_DSN"

func pgBaseDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(pgDSNEnv)
	if dsn == "" {
		t.Skipf("%s is unset: set it to a PostgreSQL DSN (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the postgres store tests", pgDSNEnv)
	}
	return dsn
}

// pgEnv is one test's schema on the test server.
type pgEnv struct {
	t      *testing.T
	admin  *pgxpool.Pool // the test's own connections, for setup and checks
	schema string        // also the application_name of the store's sessions
	dsn    string        // the store's DSN
}

func pgRandomName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "phone_test_" + hex.EncodeToString(b)
}

// newPgEnv creates a fresh schema (unless create is false) and drops it,
// cascading, when the test ends.
func newPgEnv(t *testing.T, create bool) *pgEnv {
	t.Helper()
	base := pgBaseDSN(t)
	e := &pgEnv{t: t, schema: pgRandomName()}
	e.dsn = withDSNParam(t, base, "application_name", e.schema)
	admin, err := pgxpool.New(context.Background(), withDSNParam(t, base, "application_name", e.schema+"_admin"))
	if err != nil {
		t.Fatalf("admin pool: %v", err)
	}
	e.admin = admin
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{e.schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", e.schema, err)
		}
		admin.Close()
	})
	if create {
		e.exec(`CREATE SCHEMA ` + e.q(""))
	}
	return e
}

// withDSNParam sets a connection parameter in a URL or keyword/value DSN.
func withDSNParam(t *testing.T, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", pgDSNEnv, err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

func pgCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// q quotes name qualified by the test's schema ("" for the schema itself).
func (e *pgEnv) q(name string) string {
	if name == "" {
		return pgx.Identifier{e.schema}.Sanitize()
	}
	return pgx.Identifier{e.schema, name}.Sanitize()
}

func (e *pgEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(pgCtx(e.t), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// config is a PostgresConfig for this schema; mapping it to the legacy
// table "users" of the schema when legacy is true.
func (e *pgEnv) config(legacy bool) store.PostgresConfig {
	cfg := store.PostgresConfig{DSN: e.dsn, Schema: e.schema}
	if legacy {
		cfg.UsersTable = e.schema + ".users"
	}
	return cfg
}

func (e *pgEnv) open(cfg store.PostgresConfig) *store.PostgresUsers {
	e.t.Helper()
	s, err := store.OpenPostgres(pgCtx(e.t), cfg)
	if err != nil {
		e.t.Fatalf("OpenPostgres: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// terminate ends every session of the store's pools, waiting until they
// are gone, and returns how many there were.
func (e *pgEnv) terminate() int {
	e.t.Helper()
	var n int
	err := e.admin.QueryRow(pgCtx(e.t), `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`,
		e.schema).Scan(&n)
	if err != nil {
		e.t.Fatalf("terminate: %v", err)
	}
	return n
}

// legacyTable creates the legacy app's table in the schema.
func (e *pgEnv) legacyTable() {
	e.exec(`CREATE TABLE ` + e.q("users") + ` (
		id             serial PRIMARY KEY,
		email          text,
		phone          text,
		phone_verified boolean
	)`)
}

// legacyRow is a legacy users row as the legacy app sees it.
type legacyRow struct {
	phone    *string
	verified *bool
}

func (e *pgEnv) legacy(id int) legacyRow {
	e.t.Helper()
	var r legacyRow
	if err := e.admin.QueryRow(pgCtx(e.t), `SELECT phone, phone_verified FROM `+e.q("users")+` WHERE id = $1`, id).
		Scan(&r.phone, &r.verified); err != nil {
		e.t.Fatalf("legacy row %d: %v", id, err)
	}
	return r
}

// wantLegacy checks a legacy row; "" stands for NULL, and verified is
// "true", "false" or "".
func (e *pgEnv) wantLegacy(id int, phone, verified string) {
	e.t.Helper()
	r := e.legacy(id)
	gotPhone, gotVerified := "", ""
	if r.phone != nil {
		gotPhone = *r.phone
	}
	if r.verified != nil {
		gotVerified = strconv.FormatBool(*r.verified)
	}
	if gotPhone != phone || gotVerified != verified {
		e.t.Fatalf("legacy row %d = (%q, %q), want (%q, %q)", id, gotPhone, gotVerified, phone, verified)
	}
}

// moduleRow reads the module's own table directly; ok is false without a row.
func (e *pgEnv) moduleRow(id string) (u store.User, ok bool) {
	e.t.Helper()
	u.ID = id
	err := e.admin.QueryRow(pgCtx(e.t), `SELECT phone_number, verified FROM `+e.q("phone_users")+` WHERE user_id = $1`, id).
		Scan(&u.PhoneNumber, &u.Verified)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{ID: id}, false
	}
	if err != nil {
		e.t.Fatalf("module row %q: %v", id, err)
	}
	return u, true
}

func wantPgUser(t *testing.T, s store.Users, want store.User) {
	t.Helper()
	got, err := s.Get(pgCtx(t), want.ID)
	if err != nil {
		t.Fatalf("Get(%q): %v", want.ID, err)
	}
	if got != want {
		t.Fatalf("Get(%q) = %+v, want %+v", want.ID, got, want)
	}
}

func mustPgSet(t *testing.T, s store.Users, u store.User) {
	t.Helper()
	if err := s.Set(pgCtx(t), u); err != nil {
		t.Fatalf("Set(%+v): %v", u, err)
	}
}

// --- conformance ---------------------------------------------------------

func TestPostgresUsers(t *testing.T) {
	pgBaseDSN(t)
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		e := newPgEnv(t, true)
		return e.open(e.config(false))
	})
}

// The suite again with a (text-keyed, empty) legacy table mapped: every
// read and write goes through the legacy-aware statements.
func TestPostgresUsersWithLegacyTable(t *testing.T) {
	pgBaseDSN(t)
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		e := newPgEnv(t, true)
		e.exec(`CREATE TABLE ` + e.q("users") + ` (id text PRIMARY KEY, phone text, phone_verified boolean)`)
		return e.open(e.config(true))
	})
}

// --- schema and migrations ---------------------------------------------

func TestPostgresMigrateIdempotent(t *testing.T) {
	e := newPgEnv(t, true)
	a := store.User{ID: "alice", PhoneNumber: "+33612345678", Verified: true}
	s := e.open(e.config(false))
	mustPgSet(t, s, a)
	s.Close()

	for range 2 {
		s := e.open(e.config(false))
		wantPgUser(t, s, a)
		storetest.WantHolder(t, s, a.PhoneNumber, "alice")
		if err := s.Set(pgCtx(t), store.User{ID: "bob", PhoneNumber: a.PhoneNumber, Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
			t.Fatalf("after reopen the unique index must still hold: %v", err)
		}
		s.Close()
	}
	var rows, version int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*), max(version) FROM `+e.q("phone_schema_migrations")).
		Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != 1 {
		t.Fatalf("phone_schema_migrations: %d rows, version %d; want 1 row, version 1", rows, version)
	}
}

func TestPostgresConcurrentOpen(t *testing.T) {
	e := newPgEnv(t, false) // the schema does not exist yet: the opens create it
	const n = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := store.OpenPostgres(pgCtx(t), e.config(false))
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	var rows int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*) FROM `+e.q("phone_schema_migrations")).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("phone_schema_migrations has %d rows, want 1", rows)
	}
	wantPgUser(t, e.open(e.config(false)), store.User{ID: "nobody"})
}

func TestPostgresNewerSchemaRefused(t *testing.T) {
	e := newPgEnv(t, true)
	e.open(e.config(false)).Close()
	e.exec(`INSERT INTO ` + e.q("phone_schema_migrations") + ` (version) VALUES (99)`)
	_, err := store.OpenPostgres(pgCtx(t), e.config(false))
	if err == nil || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("open over a newer schema: err = %v, want a version error that is not ErrUnavailable", err)
	}
}

// Without Schema, the module's tables go where the connection's
// search_path says.
func TestPostgresSearchPathSchema(t *testing.T) {
	e := newPgEnv(t, true)
	cfg := e.config(false)
	cfg.Schema = ""
	cfg.DSN = withDSNParam(t, cfg.DSN, "search_path", e.schema)
	s := e.open(cfg)
	mustPgSet(t, s, store.User{ID: "u", PhoneNumber: "+15550001111"})
	if u, ok := e.moduleRow("u"); !ok || u.PhoneNumber != "+15550001111" {
		t.Fatalf("module row in %s = %+v, %v", e.schema, u, ok)
	}
}

// --- configuration ------------------------------------------------------

func TestPostgresConfigErrors(t *testing.T) {
	// Refused before any connection: the DSN points nowhere.
	const nowhere = "postgres://postgres@127.0.0.1:1/test?sslmode=disable"
	for _, tc := range []struct {
		name  string
		cfg   store.PostgresConfig
		field string
	}{
		{"empty dsn", store.PostgresConfig{}, "dsn"},
		{"negative timeout", store.PostgresConfig{DSN: nowhere, QueryTimeout: -time.Second}, "timeout"},
		{"table injection", store.PostgresConfig{DSN: nowhere, UsersTable: "users; drop table x"}, "users_table"},
		{"table quoted", store.PostgresConfig{DSN: nowhere, UsersTable: `"a"`}, "users_table"},
		{"table three parts", store.PostgresConfig{DSN: nowhere, UsersTable: "a.b.c"}, "users_table"},
		{"table empty part", store.PostgresConfig{DSN: nowhere, UsersTable: "app."}, "users_table"},
		{"table digit", store.PostgresConfig{DSN: nowhere, UsersTable: "1users"}, "users_table"},
		{"id injection", store.PostgresConfig{DSN: nowhere, UsersTable: "users", IDColumn: "id = id or 1"}, "id_column"},
		{"phone quoted", store.PostgresConfig{DSN: nowhere, UsersTable: "users", PhoneColumn: `"a"`}, "phone_column"},
		{"verified injection", store.PostgresConfig{DSN: nowhere, UsersTable: "users", VerifiedColumn: "v; drop table x"}, "verified_column"},
		{"schema quoted", store.PostgresConfig{DSN: nowhere, Schema: `"a"`}, "schema"},
		{"column without table", store.PostgresConfig{DSN: nowhere, PhoneColumn: "phone"}, "phone_column"},
		{"same column twice", store.PostgresConfig{DSN: nowhere, UsersTable: "users", PhoneColumn: "id"}, "column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := store.OpenPostgres(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want it to name %s", err, tc.field)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("err = %v: a config error is not ErrUnavailable", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("refusing a bad config took %v", d)
			}
		})
	}
}

func TestPostgresLegacyMappingChecked(t *testing.T) {
	e := newPgEnv(t, true)
	e.exec(`CREATE TABLE ` + e.q("users") + ` (id int PRIMARY KEY, phone text, phone_verified boolean, age int, ok text)`)
	table := e.schema + ".users"
	for _, tc := range []struct {
		name  string
		cfg   store.PostgresConfig
		field string
	}{
		{"no table", store.PostgresConfig{UsersTable: e.schema + ".nope"}, "users_table"},
		{"no id", store.PostgresConfig{UsersTable: table, IDColumn: "uid"}, "id_column"},
		{"no phone", store.PostgresConfig{UsersTable: table, PhoneColumn: "mobile"}, "phone_column"},
		{"phone not a string", store.PostgresConfig{UsersTable: table, PhoneColumn: "age"}, "phone_column"},
		{"no verified", store.PostgresConfig{UsersTable: table, VerifiedColumn: "confirmed"}, "verified_column"},
		{"verified not boolean", store.PostgresConfig{UsersTable: table, VerifiedColumn: "ok"}, "verified_column"},
		// Quoted names match exactly as written.
		{"case matters", store.PostgresConfig{UsersTable: e.schema + ".Users"}, "users_table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DSN, tc.cfg.Schema = e.dsn, e.schema
			s, err := store.OpenPostgres(pgCtx(t), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if !strings.Contains(err.Error(), tc.field) || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("err = %v, want a config error naming %s", err, tc.field)
			}
		})
	}
}

// --- legacy table -------------------------------------------------------

func TestPostgresLegacyRead(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, email, phone, phone_verified) VALUES
		(1, 'a@x', '+15550000001', true),
		(2, 'b@x', '+15550000002', false),
		(3, 'c@x', NULL, NULL),
		(4, 'd@x', '', true),
		(5, 'e@x', '+15550000005', NULL)`)
	s := e.open(e.config(true))

	wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true})
	wantPgUser(t, s, store.User{ID: "2", PhoneNumber: "+15550000002"})
	wantPgUser(t, s, store.User{ID: "3"})
	wantPgUser(t, s, store.User{ID: "4"})
	wantPgUser(t, s, store.User{ID: "5", PhoneNumber: "+15550000005"}) // NULL is not verified
	wantPgUser(t, s, store.User{ID: "99"})                             // no legacy row
	// The key is compared as text: only the ID's own text form matches.
	for _, id := range []string{"01", "+1", " 1", "1.0", "abc", "99999999999999999999", ""} {
		wantPgUser(t, s, store.User{ID: id})
	}
	storetest.WantHolder(t, s, "+15550000001", "1")
	storetest.WantHolder(t, s, "+15550000002", "") // unverified holds nothing
	storetest.WantHolder(t, s, "+15550000005", "")

	// Nothing from a request reaches SQL as text.
	for _, id := range []string{"1; DROP TABLE users", "1 OR 1=1", "' OR '1'='1", `1"; --`} {
		wantPgUser(t, s, store.User{ID: id})
		mustPgSet(t, s, store.User{ID: id, PhoneNumber: "+15550009999"})
		mustPgSet(t, s, store.User{ID: id})
	}
	storetest.WantHolder(t, s, "+15550000001' OR '1'='1", "")
	e.wantLegacy(1, "+15550000001", "true")
	e.wantLegacy(2, "+15550000002", "false")
	var n int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*) FROM `+e.q("users")).Scan(&n); err != nil || n != 5 {
		t.Fatalf("legacy table: %d rows, %v; want 5", n, err)
	}
}

func TestPostgresLegacyWrite(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, email, phone, phone_verified) VALUES
		(1, 'a@x', '+15550000001', true), (2, 'b@x', NULL, NULL)`)
	s := e.open(e.config(true))

	// Rule 2: an unverified number is the user's, but the legacy columns
	// only ever hold a verified one.
	mustPgSet(t, s, store.User{ID: "2", PhoneNumber: "+15550000020"})
	wantPgUser(t, s, store.User{ID: "2", PhoneNumber: "+15550000020"})
	e.wantLegacy(2, "", "false")

	// Verify: written into the legacy columns, in the same transaction.
	mustPgSet(t, s, store.User{ID: "2", PhoneNumber: "+15550000020", Verified: true})
	e.wantLegacy(2, "+15550000020", "true")
	storetest.WantHolder(t, s, "+15550000020", "2")

	// A verified change replaces it.
	mustPgSet(t, s, store.User{ID: "1", PhoneNumber: "+15550000010", Verified: true})
	e.wantLegacy(1, "+15550000010", "true")
	storetest.WantHolder(t, s, "+15550000001", "") // the old legacy number is free
	wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000010", Verified: true})

	// No longer verified (verification off, an admin): cleared, so the
	// legacy app never trusts it.
	mustPgSet(t, s, store.User{ID: "1", PhoneNumber: "+15550000010"})
	e.wantLegacy(1, "", "false")
	wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000010"})

	// Removal clears them too, and the user stays without a number.
	mustPgSet(t, s, store.User{ID: "2"})
	e.wantLegacy(2, "", "false")
	wantPgUser(t, s, store.User{ID: "2"})
	storetest.WantHolder(t, s, "+15550000020", "")

	// A user with no legacy row is kept in the module's table only.
	mustPgSet(t, s, store.User{ID: "7", PhoneNumber: "+15550000070", Verified: true})
	wantPgUser(t, s, store.User{ID: "7", PhoneNumber: "+15550000070", Verified: true})
	var n int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*) FROM `+e.q("users")).Scan(&n); err != nil || n != 2 {
		t.Fatalf("legacy table: %d rows, %v; want 2 (no row created)", n, err)
	}

	// Once written, the module's table is the truth for the user.
	e.exec(`UPDATE ` + e.q("users") + ` SET phone = '+15550000099', phone_verified = true WHERE id = 1`)
	wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000010"})
}

func TestPostgresLegacyPhoneInUse(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, phone, phone_verified) VALUES
		(1, '+15550000001', true), (2, '+15550000002', false), (3, NULL, NULL)`)
	s := e.open(e.config(true))

	err := s.Set(pgCtx(t), store.User{ID: "3", PhoneNumber: "+15550000001", Verified: true})
	if !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("verifying a number a legacy row holds verified: err = %v, want ErrPhoneInUse", err)
	}
	e.wantLegacy(3, "", "") // untouched
	if _, ok := e.moduleRow("3"); ok {
		t.Fatal("a refused Set wrote the module's table")
	}
	// Same with a user the legacy table does not know.
	if err := s.Set(pgCtx(t), store.User{ID: "ghost", PhoneNumber: "+15550000001", Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("err = %v, want ErrPhoneInUse", err)
	}
	// Storing it unverified is allowed (rule 2); the holder re-verifying is too.
	mustPgSet(t, s, store.User{ID: "3", PhoneNumber: "+15550000001"})
	mustPgSet(t, s, store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true})
	storetest.WantHolder(t, s, "+15550000001", "1")
	// A legacy number that is not verified blocks nobody.
	mustPgSet(t, s, store.User{ID: "3", PhoneNumber: "+15550000002", Verified: true})
	e.wantLegacy(3, "+15550000002", "true")
	storetest.WantHolder(t, s, "+15550000002", "3")
	// Once the holder moves on, its legacy number is free.
	mustPgSet(t, s, store.User{ID: "1", PhoneNumber: "+15550000011", Verified: true})
	mustPgSet(t, s, store.User{ID: "ghost", PhoneNumber: "+15550000001", Verified: true})
	storetest.WantHolder(t, s, "+15550000001", "ghost")
}

// The legacy table's own unique constraint on the phone column answers
// ErrPhoneInUse, and nothing is written.
func TestPostgresLegacyUniqueConstraint(t *testing.T) {
	e := newPgEnv(t, true)
	e.exec(`CREATE TABLE ` + e.q("users") + ` (id int PRIMARY KEY, phone text UNIQUE, phone_verified boolean)`)
	e.exec(`INSERT INTO ` + e.q("users") + ` VALUES (1, '+15550000001', false), (2, NULL, NULL)`)
	s := e.open(e.config(true))
	err := s.Set(pgCtx(t), store.User{ID: "2", PhoneNumber: "+15550000001", Verified: true})
	if !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("err = %v, want ErrPhoneInUse", err)
	}
	if _, ok := e.moduleRow("2"); ok {
		t.Fatal("module table written")
	}
	e.wantLegacy(2, "", "") // untouched
}

func TestPostgresLegacyColumns(t *testing.T) {
	t.Run("no verified column", func(t *testing.T) {
		e := newPgEnv(t, true)
		e.exec(`CREATE TABLE ` + e.q("users") + ` (id int PRIMARY KEY, phone text)`)
		e.exec(`INSERT INTO ` + e.q("users") + ` VALUES (1, '+15550000001'), (2, NULL)`)
		s := e.open(e.config(true)) // phone_verified is absent: no verified column
		wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true})
		storetest.WantHolder(t, s, "+15550000001", "1")
		mustPgSet(t, s, store.User{ID: "2", PhoneNumber: "+15550000002"})
		mustPgSet(t, s, store.User{ID: "2", PhoneNumber: "+15550000002", Verified: true})
		mustPgSet(t, s, store.User{ID: "1"})
		var p1, p2 *string
		if err := e.admin.QueryRow(pgCtx(t), `SELECT (SELECT phone FROM `+e.q("users")+` WHERE id = 1),
			(SELECT phone FROM `+e.q("users")+` WHERE id = 2)`).Scan(&p1, &p2); err != nil {
			t.Fatal(err)
		}
		if p1 != nil || p2 == nil || *p2 != "+15550000002" {
			t.Fatalf("legacy phones = %v, %v; want NULL, +15550000002", p1, p2)
		}
	})
	t.Run("named columns, not null phone", func(t *testing.T) {
		e := newPgEnv(t, true)
		e.exec(`CREATE TABLE ` + e.q("accounts") + ` (
			uid varchar(40) PRIMARY KEY, mobile text NOT NULL DEFAULT '', mobile_ok boolean NOT NULL DEFAULT false)`)
		e.exec(`INSERT INTO ` + e.q("accounts") + ` VALUES ('u1', '+15550000001', true), ('u2', '', false)`)
		cfg := e.config(false)
		cfg.UsersTable, cfg.IDColumn, cfg.PhoneColumn, cfg.VerifiedColumn = e.schema+".accounts", "uid", "mobile", "mobile_ok"
		s := e.open(cfg)
		wantPgUser(t, s, store.User{ID: "u1", PhoneNumber: "+15550000001", Verified: true})
		wantPgUser(t, s, store.User{ID: "u2"})
		mustPgSet(t, s, store.User{ID: "u1"}) // NOT NULL: cleared to ''
		mustPgSet(t, s, store.User{ID: "u2", PhoneNumber: "+15550000002", Verified: true})
		rows, err := e.admin.Query(pgCtx(t), `SELECT uid, mobile, mobile_ok FROM `+e.q("accounts")+` ORDER BY uid`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var id, m string
			var ok bool
			err := r.Scan(&id, &m, &ok)
			return id + "=" + m + "/" + map[bool]string{true: "t", false: "f"}[ok], err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := "u1=/f u2=+15550000002/t"; strings.Join(got, " ") != want {
			t.Fatalf("accounts = %s, want %s", strings.Join(got, " "), want)
		}
	})
}

// The key column's type decides how it is compared, always with the
// meaning id::text = user ID.
func TestPostgresLegacyIDTypes(t *testing.T) {
	pgBaseDSN(t)
	for i, tc := range []struct {
		typ, value, id string
		misses         []string
	}{
		{"serial", "42", "42", []string{"042", "+42", "4.2e1"}},
		{"smallint", "42", "42", []string{"99999", "042"}},
		{"bigint", "9007199254740993", "9007199254740993", []string{"9007199254740993.0"}},
		{"text", "'u-42'", "u-42", []string{"U-42", "u-42 "}},
		{"varchar(20)", "'u-42'", "u-42", []string{"U-42"}},
		{"uuid", "'6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5'", "6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5",
			[]string{"6F1C2D3E-4A5B-4C6D-8E7F-8091A2B3C4D5", "6f1c2d3e4a5b4c6d8e7f8091a2b3c4d5"}},
		{"numeric", "42", "42", []string{"42.0"}}, // compared as text
	} {
		t.Run(tc.typ, func(t *testing.T) {
			e := newPgEnv(t, true)
			table := "users_" + string(rune('a'+i))
			e.exec(`CREATE TABLE ` + e.q(table) + ` (id ` + tc.typ + ` PRIMARY KEY, phone text, phone_verified boolean)`)
			e.exec(`INSERT INTO ` + e.q(table) + ` VALUES (` + tc.value + `, '+1555000004` + string(rune('0'+i)) + `', true)`)
			cfg := e.config(false)
			cfg.UsersTable = e.schema + "." + table
			s := e.open(cfg)
			num := "+1555000004" + string(rune('0'+i))
			wantPgUser(t, s, store.User{ID: tc.id, PhoneNumber: num, Verified: true})
			storetest.WantHolder(t, s, num, tc.id)
			for _, id := range tc.misses {
				wantPgUser(t, s, store.User{ID: id})
			}
			next := "+1555000005" + string(rune('0'+i))
			mustPgSet(t, s, store.User{ID: tc.id, PhoneNumber: next, Verified: true})
			var got string
			if err := e.admin.QueryRow(pgCtx(t), `SELECT phone FROM `+e.q(table)+` WHERE id::text = $1`, tc.id).Scan(&got); err != nil || got != next {
				t.Fatalf("legacy phone = %q, %v; want %s", got, err, next)
			}
			for _, id := range tc.misses {
				mustPgSet(t, s, store.User{ID: id, PhoneNumber: "+15550000666"})
			}
		})
	}
}

// --- failures -----------------------------------------------------------

func TestPostgresClosedPort(t *testing.T) {
	start := time.Now()
	s, err := store.OpenPostgres(context.Background(), store.PostgresConfig{
		DSN:          "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
		QueryTimeout: 2 * time.Second,
	})
	if err == nil {
		s.Close()
		t.Fatal("open against a closed port succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %v", d)
	}
}

func TestPostgresClosedStore(t *testing.T) {
	e := newPgEnv(t, true)
	s := e.open(e.config(false))
	s.Close()
	if _, err := s.Get(pgCtx(t), "u"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Set(pgCtx(t), store.User{ID: "u", PhoneNumber: "+15550000001"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Set after Close: %v, want ErrUnavailable", err)
	}
}

func TestPostgresTerminatedBackends(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, phone, phone_verified) VALUES (1, NULL, NULL)`)
	s := e.open(e.config(true))
	u := store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true}
	mustPgSet(t, s, u)
	// Several connections in the pool.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { s.Get(pgCtx(t), "1") })
	}
	wg.Wait()

	if n := e.terminate(); n == 0 {
		t.Fatal("no session of the store to terminate")
	}
	// The next call either reconnects or says the store is unavailable.
	got, err := s.Get(pgCtx(t), "1")
	switch {
	case err == nil && got != u:
		t.Fatalf("Get after terminate = %+v, want %+v", got, u)
	case err != nil && !errors.Is(err, store.ErrUnavailable):
		t.Fatalf("Get after terminate: %v, want nil or ErrUnavailable", err)
	}
	e.terminate()
	next := store.User{ID: "1", PhoneNumber: "+15550000002", Verified: true}
	err = s.Set(pgCtx(t), next)
	switch {
	case err == nil:
		e.wantLegacy(1, next.PhoneNumber, "true")
		u = next
	case errors.Is(err, store.ErrUnavailable):
		e.wantLegacy(1, u.PhoneNumber, "true")
	default:
		t.Fatalf("Set after terminate: %v, want nil or ErrUnavailable", err)
	}
	if m, _ := e.moduleRow("1"); m != u {
		t.Fatalf("module row = %+v, want %+v", m, u)
	}
	// And the pool recovers.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.Get(pgCtx(t), "1")
		if err == nil {
			if got != u {
				t.Fatalf("Get = %+v, want %+v", got, u)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after terminate: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A legacy UPDATE that fails (a trigger raising, a CHECK constraint)
// leaves the module's table as it was: the two never disagree.
func TestPostgresLegacyFailureRollsBack(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`ALTER TABLE ` + e.q("users") + ` ADD CONSTRAINT no_666 CHECK (phone IS DISTINCT FROM '+15550000666')`)
	e.exec(`CREATE FUNCTION ` + e.q("refuse") + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.phone = '+15550000777' THEN RAISE EXCEPTION 'legacy app refuses'; END IF;
			RETURN NEW;
		END $$`)
	e.exec(`CREATE TRIGGER refuse BEFORE UPDATE ON ` + e.q("users") + ` FOR EACH ROW EXECUTE FUNCTION ` + e.q("refuse") + `()`)
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, phone, phone_verified) VALUES (1, '+15550000001', true), (2, NULL, NULL)`)
	s := e.open(e.config(true))
	before2 := store.User{ID: "2", PhoneNumber: "+15550000002"}
	mustPgSet(t, s, before2)

	for _, bad := range []string{"+15550000666", "+15550000777"} {
		// A user known only to the legacy table.
		err := s.Set(pgCtx(t), store.User{ID: "1", PhoneNumber: bad, Verified: true})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Set(%s): %v, want ErrUnavailable", bad, err)
		}
		if m, ok := e.moduleRow("1"); ok {
			t.Fatalf("module table written: %+v", m)
		}
		e.wantLegacy(1, "+15550000001", "true")
		wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true})

		// A user the module already holds.
		err = s.Set(pgCtx(t), store.User{ID: "2", PhoneNumber: bad, Verified: true})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Set(%s): %v, want ErrUnavailable", bad, err)
		}
		if m, _ := e.moduleRow("2"); m != before2 {
			t.Fatalf("module row = %+v, want %+v", m, before2)
		}
		e.wantLegacy(2, "", "false")
		storetest.WantHolder(t, s, bad, "")
	}
}

// installSlowTrigger makes the legacy UPDATE to number sleep for d.
func (e *pgEnv) installSlowTrigger(number string, d time.Duration) {
	e.exec(`CREATE FUNCTION ` + e.q("slow") + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.phone = '` + number + `' THEN PERFORM pg_sleep(` + strings.TrimSuffix(d.String(), "s") + `); END IF;
			RETURN NEW;
		END $$`)
	e.exec(`CREATE TRIGGER slow BEFORE UPDATE ON ` + e.q("users") + ` FOR EACH ROW EXECUTE FUNCTION ` + e.q("slow") + `()`)
}

func TestPostgresQueryTimeout(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.installSlowTrigger("+15550000002", 3*time.Second)
	e.exec(`INSERT INTO ` + e.q("users") + ` (id, phone, phone_verified) VALUES (1, '+15550000001', true)`)
	cfg := e.config(true)
	cfg.QueryTimeout = 500 * time.Millisecond
	s := e.open(cfg)

	start := time.Now()
	err := s.Set(pgCtx(t), store.User{ID: "1", PhoneNumber: "+15550000002", Verified: true})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set = %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Set returned after %v, the timeout is 500ms", d)
	}
	if m, ok := e.moduleRow("1"); ok {
		t.Fatalf("module table written: %+v", m)
	}
	e.wantLegacy(1, "+15550000001", "true")
	wantPgUser(t, s, store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true})
}

// The connection dies in the middle of a Set's transaction, between the
// module's write and the legacy one.
func TestPostgresKilledMidTransaction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every bool // terminate every try, not only the first
	}{{"once", false}, {"every try", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPgEnv(t, true)
			e.legacyTable()
			e.installSlowTrigger("+15550000002", 2*time.Second)
			e.exec(`INSERT INTO ` + e.q("users") + ` (id, phone, phone_verified) VALUES (1, '+15550000001', true)`)
			cfg := e.config(true)
			cfg.QueryTimeout = 20 * time.Second
			s := e.open(cfg)
			old := store.User{ID: "1", PhoneNumber: "+15550000001", Verified: true}
			mustPgSet(t, s, old)
			next := store.User{ID: "1", PhoneNumber: "+15550000002", Verified: true}

			done := make(chan error, 1)
			go func() { done <- s.Set(context.Background(), next) }()
			kills := 0
			var err error
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-time.After(50 * time.Millisecond):
				}
				if kills > 0 && !tc.every {
					continue
				}
				var n int
				if qerr := e.admin.QueryRow(pgCtx(t), `
					SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
					WHERE datname = current_database() AND application_name = $1 AND wait_event = 'PgSleep'`,
					e.schema).Scan(&n); qerr != nil {
					t.Fatal(qerr)
				}
				kills += n
			}
			if kills == 0 {
				t.Fatal("the Set was never caught in its transaction")
			}
			want := old
			switch {
			case err == nil && !tc.every:
				want = next // retried on a fresh connection
			case errors.Is(err, store.ErrUnavailable):
			default:
				t.Fatalf("Set after %d terminations: %v", kills, err)
			}
			t.Logf("%d terminations: %v", kills, err)
			if m, _ := e.moduleRow("1"); m != want {
				t.Fatalf("module row = %+v, want %+v", m, want)
			}
			e.wantLegacy(1, want.PhoneNumber, "true")
			wantPgUser(t, s, want)
		})
	}
}
