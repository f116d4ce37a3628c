package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPgSibling(t *testing.T) {
	for _, schema := range []string{"", "phone", "Odd_Schema"} {
		users := pgIdent(schema, "phone_users")
		s := &PostgresUsers{sql: buildPgQueries(users, nil)}
		if got := s.usersTable(); got != users {
			t.Fatalf("usersTable() = %q, want %q", got, users)
		}
		if got, want := pgSibling(users, "phone_numbers"), pgIdent(schema, "phone_numbers"); got != want {
			t.Fatalf("pgSibling(%q) = %q, want %q", users, got, want)
		}
	}
	if got := pgSibling(pgx.Identifier{"a", "phone_users"}.Sanitize(), "x"); got != `"a"."x"` {
		t.Fatalf("pgSibling = %q", got)
	}
}

func TestNumberIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := newNumberID()
		if err != nil {
			t.Fatal(err)
		}
		if !validNumberID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for _, id := range []string{"", "idn_", "idn_0123456789abcdef0123456789ABCDEF", "usr_0123456789abcdef0123456789abcdef",
		"idn_0123456789abcdef0123456789abcdef0"} {
		if validNumberID(id) {
			t.Fatalf("validNumberID(%q) = true", id)
		}
	}
}

// commitNumbers writes flags that are lost before flags that are gained,
// so a unique index never sees two primaries or two defaults.
func TestCommitOrder(t *testing.T) {
	before := []PhoneNumber{
		{ID: "a", PhoneNumber: "+1", Primary: true, Verified: true, ReservedForSecondFactor: true, DefaultSecondFactor: true},
		{ID: "b", PhoneNumber: "+2", Verified: true, ReservedForSecondFactor: true},
		{ID: "c", PhoneNumber: "+3"},
	}
	after := []PhoneNumber{
		{ID: "b", PhoneNumber: "+2", Primary: true, Verified: true, ReservedForSecondFactor: true, DefaultSecondFactor: true},
		{ID: "a", PhoneNumber: "+1", Verified: true},
		{ID: "d", PhoneNumber: "+4"},
	}
	rec := &recordTx{}
	if err := commitNumbers(t.Context(), rec, "u", before, after, before[0].CreatedAt); err != nil {
		t.Fatal(err)
	}
	want := []string{"remove c", "put a", "put b", "put d", "user +2"}
	if len(rec.ops) != len(want) {
		t.Fatalf("ops %q, want %q", rec.ops, want)
	}
	for i := range want {
		if rec.ops[i] != want[i] {
			t.Fatalf("ops %q, want %q", rec.ops, want)
		}
	}
}

type recordTx struct {
	numbersTx
	ops []string
}

func (r *recordTx) put(_ context.Context, n PhoneNumber) error {
	r.ops = append(r.ops, "put "+n.ID)
	return nil
}

func (r *recordTx) remove(_ context.Context, id string) error {
	r.ops = append(r.ops, "remove "+id)
	return nil
}

func (r *recordTx) setUser(_ context.Context, u User) error {
	r.ops = append(r.ops, "user "+u.PhoneNumber)
	return nil
}
