package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

func openSQLite(t *testing.T, path string) *store.SQLiteUsers {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteUsers(t *testing.T) {
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		return openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
	})
}

func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phone.db")
	a := store.User{ID: "alice", PhoneNumber: "+33612345678", Verified: true}
	b := store.User{ID: "bob", PhoneNumber: "+33612345679"}

	s := openSQLite(t, path)
	for _, u := range []store.User{a, b} {
		if err := s.Set(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the schema step again: it must be a no-op.
	for range 2 {
		s = openSQLite(t, path)
		for _, want := range []store.User{a, b} {
			got, err := s.Get(ctx, want.ID)
			if err != nil || got != want {
				t.Fatalf("after reopen Get(%q) = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		storetest.WantHolder(t, s, a.PhoneNumber, "alice")
		if err := s.Set(ctx, store.User{ID: "bob", PhoneNumber: a.PhoneNumber, Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
			t.Fatalf("after reopen the unique index must still hold: %v", err)
		}
		s.Close()
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, version int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM phone_schema_version`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != 1 {
		t.Fatalf("phone_schema_version: %d rows, version %d; want 1 row, version 1", rows, version)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phone.db")
	openSQLite(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE phone_schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := store.OpenSQLite(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "99") {
		t.Fatalf("error should name the version: %v", err)
	}
}

func TestSQLiteClosed(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get on closed db: %v, want ErrUnavailable", err)
	}
	if err := s.Set(ctx, store.User{ID: "alice", PhoneNumber: "+33612345678"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Set on closed db: %v, want ErrUnavailable", err)
	}
}

func TestSQLiteCanceledContext(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Get(ctx, "alice")
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with canceled ctx: %v, want ErrUnavailable and context.Canceled", err)
	}
	err = s.Set(ctx, store.User{ID: "alice", PhoneNumber: "+33612345678"})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with canceled ctx: %v, want ErrUnavailable and context.Canceled", err)
	}
}

func TestSQLiteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "phone.db")
	s, err := store.OpenSQLite(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("opened a database in a missing directory")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error should name the path %q: %v", path, err)
	}
	if _, serr := os.Stat(filepath.Dir(path)); !os.IsNotExist(serr) {
		t.Fatalf("the directory was created: %v", serr)
	}
}

func TestSQLiteOddPath(t *testing.T) {
	// '?' and '#' would end a SQLite URI's path if not escaped.
	path := filepath.Join(t.TempDir(), "a?b#c%d.db")
	s := openSQLite(t, path)
	if err := s.Set(context.Background(), store.User{ID: "u", PhoneNumber: "+33612345678"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}

func TestSQLiteTwoHandlesOneFile(t *testing.T) {
	// Two Caddy processes on one file: the database, not the process
	// lock, keeps a number verified by one user only.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phone.db")
	s1, s2 := openSQLite(t, path), openSQLite(t, path)
	if err := s1.Set(ctx, store.User{ID: "alice", PhoneNumber: "+33612345678", Verified: true}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Set(ctx, store.User{ID: "bob", PhoneNumber: "+33612345678", Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("second handle: %v, want ErrPhoneInUse", err)
	}
	if u, err := s2.Get(ctx, "alice"); err != nil || !u.Verified {
		t.Fatalf("second handle reads %+v, %v", u, err)
	}
}

func TestSQLiteTwoHandlesConcurrent(t *testing.T) {
	// Writers on two handles meet on SQLite's file lock, not our in-process
	// queue: busy_timeout and BEGIN IMMEDIATE must keep them from failing.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phone.db")
	handles := []*store.SQLiteUsers{openSQLite(t, path), openSQLite(t, path)}
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = handles[i%2].Set(ctx, store.User{ID: fmt.Sprint("user", i), PhoneNumber: "+33612345678", Verified: true})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrPhoneInUse):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers verified the number, want 1", won)
	}
}
