package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL stops answering in the middle of a flow (its table is locked
// by another session past the store's timeout): verify is 503
// store_unavailable with Retry-After, nothing is written, and the same
// code verifies once the database answers again.
func TestPostgresOutageMidVerify(t *testing.T) {
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	e := newEnv(t, site{store: fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t\ttimeout 1s\n\t\t}", dsn, schema)})
	u := uniqueUser(t, "pg")
	tok := token(t, u)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+schema+".phone_users IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 503, "store_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["verified"] != false {
		t.Fatalf("half-written during the outage: %s", st.raw)
	}
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	e.do("GET", "/phone", tok, nil).want(t, 200, "")
}

// The legacy app's API answers 500: update sends no SMS, verify keeps the
// challenge, and both work once the app is back.
func TestHTTPStoreOutage(t *testing.T) {
	app := newUserAPI(t)
	e := newEnv(t, site{store: fmt.Sprintf("store http %s {\n\t\t\theader Authorization \"Bearer legacy-token\"\n\t\t\ttimeout 1s\n\t\t}", app.srv.URL)})
	u := uniqueUser(t, "api")
	tok := token(t, u)

	app.setDown(true)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 503, "store_unavailable")
	if e.sink.count(u) != 0 {
		t.Fatal("an SMS went out while the store was down")
	}
	app.setDown(false)
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	code := e.sink.last(u).Code
	app.setDown(true)
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 503, "store_unavailable")
	app.setDown(false)
	e.do("POST", "/phone/verify", tok, map[string]any{"code": code}).want(t, 200, "")
	app.mu.Lock()
	rec := app.users[u]
	app.mu.Unlock()
	if rec.Phone == nil || *rec.Phone != "+14155552671" || !rec.Verified {
		t.Fatalf("the app's record: %+v", rec)
	}
}

// A legacy users table with existing numbers: they show up without a
// migration, and a verified change is written back into its columns.
func TestPostgresLegacyUsersTable(t *testing.T) {
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE SCHEMA " + schema,
		"CREATE TABLE " + schema + ".users (id serial primary key, email text, phone text, phone_verified boolean not null default false)",
		"INSERT INTO " + schema + ".users (email, phone, phone_verified) VALUES ('a@x', '+33612345678', true), ('b@x', NULL, false)",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, site{store: fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t\tusers_table %s.users\n\t\t\tid_column id\n\t\t\tphone_column phone\n\t\t\tverified_column phone_verified\n\t\t}", dsn, schema, schema)})

	tok := token(t, "1")
	st := e.do("GET", "/phone", tok, nil).want(t, 200, "")
	if st.body["phone_number"] != "+33612345678" || st.body["verified"] != true {
		t.Fatalf("existing legacy number not served: %s", st.raw)
	}
	e.do("POST", "/phone/update", tok, map[string]any{"phone_number": "+14155552671"}).want(t, 202, "")
	e.do("POST", "/phone/verify", tok, map[string]any{"code": e.sink.last("1").Code}).want(t, 200, "")
	var phone string
	var verified bool
	if err := conn.QueryRow(ctx, "SELECT phone, phone_verified FROM "+schema+".users WHERE id = 1").Scan(&phone, &verified); err != nil {
		t.Fatal(err)
	}
	if phone != "+14155552671" || !verified {
		t.Fatalf("legacy row after verify: %q %v", phone, verified)
	}
	// User 2 cannot take user 1's verified number, even though it lives
	// only in the legacy table's view of things.
	tok2 := token(t, "2")
	e.do("POST", "/phone/update", tok2, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.do("POST", "/phone/verify", tok2, map[string]any{"code": e.sink.last("2").Code}).want(t, 409, "phone_number_in_use")
}
