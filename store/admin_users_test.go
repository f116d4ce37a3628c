package store_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/jackc/pgx/v5"
)

// wantFind checks FindUsers(q) and CountUsers of q's numbers.
func wantFind(t *testing.T, s numbersStore, q store.UserQuery, total int, want ...string) {
	t.Helper()
	got, err := s.pn.FindUsers(pnCtx(t), q)
	if err != nil {
		t.Fatalf("FindUsers(%+v): %v", q, err)
	}
	if want == nil {
		want = []string{}
	}
	if got == nil || !slices.Equal(got, want) {
		t.Fatalf("FindUsers(%+v) = %q, want %q", q, got, want)
	}
	n, err := s.pn.CountUsers(pnCtx(t), q.PhoneNumbers)
	if err != nil || n != total {
		t.Fatalf("CountUsers(%q) = %d, %v; want %d", q.PhoneNumbers, n, err, total)
	}
}

// tick makes the next write a later millisecond, so users' ages differ.
func tick() { time.Sleep(3 * time.Millisecond) }

// Users are found by any of their numbers, verified or not, primary or
// not, newest first unless asked otherwise, one page at a time.
func pnFindUsers(t *testing.T, s numbersStore) {
	a, b, c := pnUser(), pnUser(), pnUser()
	n := pnNumbers(4)
	mustCreate(t, s, store.NewPhoneNumber{UserID: a, PhoneNumber: n[0]})
	tick()
	second := mustCreate(t, s, store.NewPhoneNumber{UserID: a, PhoneNumber: n[1], Verified: true})
	tick()
	mustCreate(t, s, store.NewPhoneNumber{UserID: b, PhoneNumber: n[0]}) // unverified: a number two users may hold
	tick()
	mustCreate(t, s, store.NewPhoneNumber{UserID: c, PhoneNumber: n[2], Verified: true})

	q := func(oldest bool, limit, offset int, numbers ...string) store.UserQuery {
		return store.UserQuery{PhoneNumbers: numbers, Oldest: oldest, Limit: limit, Offset: offset}
	}
	wantFind(t, s, q(false, 10, 0, n[0]), 2, b, a) // newest first by default
	wantFind(t, s, q(true, 10, 0, n[0]), 2, a, b)
	wantFind(t, s, q(false, 10, 0, n[1]), 1, a) // a secondary number
	wantFind(t, s, q(false, 10, 0, n[0], n[1], n[2], n[0]), 3, c, b, a)
	wantFind(t, s, q(false, 1, 1, n[0], n[1], n[2]), 3, b) // a page
	wantFind(t, s, q(false, 10, 3, n[0], n[1], n[2]), 3)   // past the end
	wantFind(t, s, q(false, 0, 0, n[0]), 2)                // an empty page still counts
	wantFind(t, s, q(false, 10, 0, n[3]), 0)               // nobody holds it
	wantFind(t, s, q(false, 10, 0), 0)                     // no number, no user

	// A deleted number no longer finds its user; a user's age is its
	// oldest number.
	if _, err := s.pn.DeletePhoneNumber(pnCtx(t), second.ID); err != nil {
		t.Fatal(err)
	}
	wantFind(t, s, q(false, 10, 0, n[1]), 0)
	wantFind(t, s, q(true, 10, 0, n[0], n[2]), 3, a, b, c)
}

// Numbers the user API stores (Users.Set) are found too, and a replaced
// number no longer finds its user.
func pnFindUsersFollowsSet(t *testing.T, s numbersStore) {
	ctx := pnCtx(t)
	u, n := pnUser(), pnNumbers(2)
	q := func(number string) store.UserQuery {
		return store.UserQuery{PhoneNumbers: []string{number}, Limit: 10}
	}
	if err := s.users.Set(ctx, store.User{ID: u, PhoneNumber: n[0]}); err != nil {
		t.Fatal(err)
	}
	wantFind(t, s, q(n[0]), 1, u)
	if err := s.users.Set(ctx, store.User{ID: u, PhoneNumber: n[1], Verified: true}); err != nil {
		t.Fatal(err)
	}
	wantFind(t, s, q(n[0]), 0)
	wantFind(t, s, q(n[1]), 1, u)
	if err := s.users.Set(ctx, store.User{ID: u}); err != nil {
		t.Fatal(err)
	}
	wantFind(t, s, q(n[1]), 0)
}

// What would reach the store unbounded is refused, not run.
func pnFindUsersBounds(t *testing.T, s numbersStore) {
	ctx := pnCtx(t)
	many := make([]string, store.MaxUserQueryNumbers+1)
	for i := range many {
		many[i] = pnNumber()
	}
	for _, q := range []store.UserQuery{
		{PhoneNumbers: many, Limit: 10},
		{PhoneNumbers: []string{pnNumber()}, Limit: -1},
		{PhoneNumbers: []string{pnNumber()}, Limit: 10, Offset: -1},
		{PhoneNumbers: []string{""}, Limit: 10},
	} {
		if got, err := s.pn.FindUsers(ctx, q); err == nil {
			t.Fatalf("FindUsers(%d numbers, limit %d, offset %d) = %q, want an error", len(q.PhoneNumbers), q.Limit, q.Offset, got)
		}
	}
	if _, err := s.pn.CountUsers(ctx, many); err == nil {
		t.Fatal("CountUsers of too many numbers: no error")
	}
}

// The user list is an index lookup in SQLite: no step scans phone_numbers.
func TestFindUsersIndexedSQLite(t *testing.T) {
	u := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
	pn := openNumbers(t, u)
	q := store.UserQuery{PhoneNumbers: []string{"+15550000001", "+15550000002"}, Limit: 10}
	find, findArgs, count, countArgs, ok := store.UserQueriesSQL(pn, q)
	if !ok {
		t.Fatal("no SQL for the sqlite store")
	}
	for _, c := range []struct {
		query string
		args  []any
	}{{find, findArgs}, {count, countArgs}} {
		plan, err := store.SQLitePlan(pnCtx(t), u, c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "USING INDEX phone_numbers_number") || strings.Contains(plan, "SCAN phone_numbers") {
			t.Fatalf("plan of %s:\n%s", c.query, plan)
		}
	}
}

// In PostgreSQL too, with sequential scans priced out (a small table
// would be scanned anyway): every step on phone_numbers uses an index.
func TestFindUsersIndexedPostgres(t *testing.T) {
	e := newPgEnv(t, true)
	u := e.open(e.config(false))
	pn := openNumbers(t, u)
	find, findArgs, count, countArgs, ok := store.UserQueriesSQL(pn, store.UserQuery{PhoneNumbers: []string{"+15550000001"}, Limit: 10})
	if !ok {
		t.Fatal("no SQL for the postgres store")
	}
	for _, c := range []struct {
		query string
		args  []any
	}{{find, findArgs}, {count, countArgs}} {
		tx, err := e.admin.Begin(pgCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(pgCtx(t), `SET LOCAL enable_seqscan = off`); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(pgCtx(t), `EXPLAIN `+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		tx.Rollback(pgCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, "phone_numbers_number") || strings.Contains(plan, "Seq Scan") {
			t.Fatalf("plan of %s:\n%s", c.query, plan)
		}
	}
}

// With a legacy users table, a user the module has never written is
// found by the legacy row's number (once, also after adoption), as old
// as the epoch, the age its number shows.
func TestFindUsersPostgresLegacy(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (email, phone, phone_verified) VALUES
		('a@example.com', '+33612345678', true), ('b@example.com', '+33612345670', false), ('c@example.com', NULL, NULL)`)
	u := e.open(e.config(true))
	s := numbersStore{u, openNumbers(t, u)}
	all := []string{"+33612345678", "+33612345670", "+33612345679"}
	wantFind(t, s, store.UserQuery{PhoneNumbers: all[:1], Limit: 10}, 1, "1")
	mustCreate(t, s, store.NewPhoneNumber{UserID: "carol", PhoneNumber: all[2]})
	wantFind(t, s, store.UserQuery{PhoneNumbers: all, Limit: 10}, 3, "carol", "1", "2")
	wantFind(t, s, store.UserQuery{PhoneNumbers: all, Limit: 10, Oldest: true}, 3, "1", "2", "carol")
	// Adopted by a write: found through the module's table, once.
	rows := mustList(t, s, "1")
	mustUpdate(t, s, rows[0].ID, store.PhoneNumberChange{ReservedForSecondFactor: ptr(true)})
	wantFind(t, s, store.UserQuery{PhoneNumbers: all[:1], Limit: 10}, 1, "1")
	// The module now speaks for user 1: its legacy row's later number
	// does not find it.
	e.exec(`UPDATE ` + e.q("users") + ` SET phone = '+33612345600' WHERE id = 1`)
	wantFind(t, s, store.UserQuery{PhoneNumbers: []string{"+33612345600"}, Limit: 10}, 0)
}
