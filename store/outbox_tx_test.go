package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// txOutbox is the part of a durable outbox the SetWithEvent tests read.
type txOutbox interface {
	store.Outbox
	Len(ctx context.Context) (int, error)
}

func outboxEvent(t *testing.T, stream, typ, user, number string) store.OutboxEvent {
	t.Helper()
	e := testOutboxEvent(stream, user)
	e.Body = fmt.Appendf(nil, `{"id":%q,"type":%q,"user_id":%q,"phone_number":%q}`, e.ID, typ, user, number)
	return e
}

// testSetWithEvent: the user and the event are written together or not at
// all. openOutbox opens the outbox of stream on s,
// breakOutbox makes every later outbox insert fail.
func testSetWithEvent(t *testing.T, s interface {
	store.Users
	store.EventSetter
}, openOutbox func(stream string) txOutbox, breakOutbox func()) {
	ctx := context.Background()
	const stream = "stream-a"
	wantUser := func(id, number string, verified bool) {
		t.Helper()
		u, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if u.PhoneNumber != number || u.Verified != verified {
			t.Fatalf("user %s = %+v, want %q verified=%v", id, u, number, verified)
		}
	}

	// No outbox table yet: nothing written, the caller falls back.
	if err := s.SetWithEvent(ctx, store.User{ID: "a", PhoneNumber: "+33600000001"},
		outboxEvent(t, stream, "phone.updated", "a", "+33600000001")); !errors.Is(err, store.ErrNoOutbox) {
		t.Fatalf("SetWithEvent without an outbox: %v, want ErrNoOutbox", err)
	}
	wantUser("a", "", false)

	o := openOutbox(stream)
	wantLen := func(n int) {
		t.Helper()
		got, err := o.Len(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("outbox holds %d events, want %d", got, n)
		}
	}

	// Both written; the dispatcher's Due hands out the event as stored.
	e1 := outboxEvent(t, stream, "phone.verified", "a", "+33600000001")
	if err := s.SetWithEvent(ctx, store.User{ID: "a", PhoneNumber: "+33600000001", Verified: true}, e1); err != nil {
		t.Fatal(err)
	}
	wantUser("a", "+33600000001", true)
	wantLen(1)
	ps, err := o.Due(ctx, time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ID != e1.ID || string(ps[0].Body) != string(e1.Body) || ps[0].Attempts != 0 {
		t.Fatalf("Due = %+v, want the event written with the user", ps)
	}
	if err := o.Delivered(ctx, e1.ID); err != nil {
		t.Fatal(err)
	}
	wantLen(0)

	// The users write fails (the number is verified by another user):
	// no event.
	mustSet(t, s, store.User{ID: "b", PhoneNumber: "+33600000002"})
	err = s.SetWithEvent(ctx, store.User{ID: "b", PhoneNumber: "+33600000001", Verified: true},
		outboxEvent(t, stream, "phone.verified", "b", "+33600000001"))
	if !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("SetWithEvent of a number in use: %v, want ErrPhoneInUse", err)
	}
	wantUser("b", "+33600000002", false)
	wantLen(0)

	// A removal and its event.
	if err := s.SetWithEvent(ctx, store.User{ID: "b"}, outboxEvent(t, stream, "phone.removed", "b", "")); err != nil {
		t.Fatal(err)
	}
	wantUser("b", "", false)
	wantLen(1)

	// The outbox insert fails: the user is left as it was.
	mustSet(t, s, store.User{ID: "c", PhoneNumber: "+33600000003"})
	breakOutbox()
	err = s.SetWithEvent(ctx, store.User{ID: "c", PhoneNumber: "+33600000004", Verified: true},
		outboxEvent(t, stream, "phone.verified", "c", "+33600000004"))
	if err == nil || !strings.Contains(err.Error(), "outbox down") {
		t.Fatalf("SetWithEvent with a failing outbox: %v, want a failure", err)
	}
	wantUser("c", "+33600000003", false)
	storetest.WantHolder(t, s, "+33600000004", "") // the failed write left no holder
}

func mustSet(t *testing.T, s store.Users, u store.User) {
	t.Helper()
	if err := s.Set(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteSetWithEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phone.db")
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	testSetWithEvent(t, s, func(stream string) txOutbox {
		o, err := s.Outbox(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}, func() {
		// Another connection to the file, as another process would have.
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TRIGGER phone_events_outbox_down BEFORE INSERT ON phone_events_outbox
			BEGIN SELECT RAISE(ABORT, 'outbox down'); END`); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPostgresSetWithEvent(t *testing.T) {
	e := newPgEnv(t, false)
	s := e.open(e.config(false))
	testSetWithEvent(t, s, func(stream string) txOutbox {
		o, err := s.Outbox(pgCtx(t), e.schema, stream)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}, func() {
		e.exec(`CREATE FUNCTION ` + e.q("outbox_down") + `() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'outbox down'; END $$`)
		e.exec(`CREATE TRIGGER outbox_down BEFORE INSERT ON ` + e.q("phone_events_outbox") +
			` FOR EACH ROW EXECUTE FUNCTION ` + e.q("outbox_down") + `()`)
	})
}

// The read cache passes SetWithEvent through and forgets the user; over a
// store without an outbox it answers ErrNoOutbox.
func TestCachedUsersSetWithEvent(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "phone.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.NewCachedUsers(s, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := s.Outbox(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, store.User{ID: "a", PhoneNumber: "+33600000001"})
	if _, err := c.Peek(ctx, "a"); err != nil { // cached
		t.Fatal(err)
	}
	if err := c.SetWithEvent(ctx, store.User{ID: "a", PhoneNumber: "+33600000002", Verified: true},
		outboxEvent(t, "s", "phone.verified", "a", "+33600000002")); err != nil {
		t.Fatal(err)
	}
	if u, err := c.Peek(ctx, "a"); err != nil || u.PhoneNumber != "+33600000002" || !u.Verified {
		t.Fatalf("Peek after SetWithEvent = %+v, %v: stale cache", u, err)
	}

	m, err := store.NewCachedUsers(store.NewMemoryUsers(), time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.SetWithEvent(ctx, store.User{ID: "a", PhoneNumber: "+33600000001"},
		outboxEvent(t, "s", "phone.updated", "a", "+33600000001")); !errors.Is(err, store.ErrNoOutbox) {
		t.Fatalf("memory store: %v, want ErrNoOutbox", err)
	}
}
