package store_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
)

// pnSetKeepsVerifiedSecondary: the user API storing, unverified, a number
// the same user holds verified as a secondary number (an admin added it
// and reserved it) does not lower it; the user is raised to verified, the
// reservation stays, and no other user can verify the number.
func pnSetKeepsVerifiedSecondary(t *testing.T, s numbersStore) {
	a, b, n := pnUser(), pnUser(), pnNumbers(2)
	mustCreate(t, s, store.NewPhoneNumber{UserID: a, PhoneNumber: n[0], Verified: true})
	x := mustCreate(t, s, store.NewPhoneNumber{UserID: a, PhoneNumber: n[1], Verified: true, ReservedForSecondFactor: true})
	if x.Primary || !x.DefaultSecondFactor {
		t.Fatalf("admin-added secondary = %+v", x)
	}
	if err := s.users.Set(pnCtx(t), store.User{ID: a, PhoneNumber: n[1]}); err != nil {
		t.Fatal(err)
	}
	rows := wantNumbers(t, s, a, n[1]+":PVRD") // also checks Users.Get: verified
	if rows[0].ID != x.ID || rows[0].Strategy != store.StrategyAdmin {
		t.Fatalf("promoted number = %+v, want ID %s, strategy admin", rows[0], x.ID)
	}
	if got, err := s.users.Get(pnCtx(t), a); err != nil || got != (store.User{ID: a, PhoneNumber: n[1], Verified: true}) {
		t.Fatalf("Users.Get = %+v, %v", got, err)
	}
	err := s.users.Set(pnCtx(t), store.User{ID: b, PhoneNumber: n[1], Verified: true})
	wantErr(t, err, store.ErrPhoneInUse)
	wantNumbers(t, s, b)
	wantNumbers(t, s, a, n[1]+":PVRD")
}

func TestPhoneNumbersSetKeepsVerifiedSecondary(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		u := store.NewMemoryUsers()
		pnSetKeepsVerifiedSecondary(t, numbersStore{u, openNumbers(t, u)})
	})
	t.Run("sqlite", func(t *testing.T) {
		u := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
		pnSetKeepsVerifiedSecondary(t, numbersStore{u, openNumbers(t, u)})
	})
	t.Run("postgres", func(t *testing.T) {
		pgBaseDSN(t)
		e := newPgEnv(t, true)
		u := e.open(e.config(false))
		pnSetKeepsVerifiedSecondary(t, numbersStore{u, openNumbers(t, u)})
	})
}

// A database whose triggers an older build created gets the new ones on
// the next open (they were created with IF NOT EXISTS).
func TestPhoneNumbersSQLiteTriggersReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phone.db")
	u := openSQLite(t, path)
	openNumbers(t, u)
	openNumbers(t, u) // idempotent
	u.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// A stale trigger under the same name, as an older build left it.
	if _, err := db.Exec(`DROP TRIGGER phone_numbers_follow_update;
		CREATE TRIGGER phone_numbers_follow_update AFTER UPDATE OF phone_number, verified ON phone_users
		BEGIN SELECT 1; END;`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	u2 := openSQLite(t, path)
	pnSetKeepsVerifiedSecondary(t, numbersStore{u2, openNumbers(t, u2)})
}

// A read (List, Get) never adopts a legacy user into phone_users: the
// legacy row keeps speaking for the user, so a later change there shows;
// the read shows the legacy number under a deterministic ID, which a write
// (here DELETE) then reaches, adopting the user.
func TestPhoneNumbersPostgresLegacyReadDoesNotAdopt(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (email, phone, phone_verified) VALUES ('a@example.com', '+33612345678', true)`)
	u := e.open(e.config(true))
	pn := openNumbers(t, u)
	ctx := pnCtx(t)
	list := func(want string) store.PhoneNumber {
		t.Helper()
		rows, err := pn.ListPhoneNumbers(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].PhoneNumber != want || rows[0].ID != legacyNumberID("1", want) ||
			!rows[0].Primary || !rows[0].Verified || rows[0].ReservedForSecondFactor {
			t.Fatalf("ListPhoneNumbers(1) = %+v, want the legacy %s", rows, want)
		}
		if got, err := pn.GetPhoneNumber(ctx, rows[0].ID); err != nil || got.ID != rows[0].ID || got.PhoneNumber != want {
			t.Fatalf("GetPhoneNumber(%s) = %+v, %v", rows[0].ID, got, err)
		}
		return rows[0]
	}
	old := list("+33612345678")
	if _, ok := e.moduleRow("1"); ok {
		t.Fatal("a read wrote the legacy user into phone_users")
	}
	e.exec(`UPDATE ` + e.q("users") + ` SET phone = '+33612345679' WHERE id = 1`)
	got, err := u.Get(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got != (store.User{ID: "1", PhoneNumber: "+33612345679", Verified: true}) {
		t.Fatalf("Users.Get(1) = %+v; the read froze the legacy value", got)
	}
	n := list("+33612345679")
	if _, ok := e.moduleRow("1"); ok {
		t.Fatal("a read wrote the legacy user into phone_users")
	}
	// The ID of a number the legacy row no longer holds is gone.
	if _, err := pn.GetPhoneNumber(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPhoneNumber(old legacy ID) = %v, want ErrNotFound", err)
	}
	// DELETE through the listed ID adopts the user and removes the number:
	// the legacy columns are cleared, as for any number the module holds.
	del, err := pn.DeletePhoneNumber(ctx, n.ID)
	if err != nil || del.ID != n.ID || del.PhoneNumber != "+33612345679" {
		t.Fatalf("DeletePhoneNumber(%s) = %+v, %v", n.ID, del, err)
	}
	e.wantLegacy(1, "", "false")
	if rows, err := pn.ListPhoneNumbers(ctx, "1"); err != nil || len(rows) != 0 {
		t.Fatalf("ListPhoneNumbers(1) after DELETE = %+v, %v", rows, err)
	}
	if got, err := u.Get(ctx, "1"); err != nil || got != (store.User{ID: "1"}) {
		t.Fatalf("Users.Get(1) after DELETE = %+v, %v", got, err)
	}
}
