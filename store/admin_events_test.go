package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
)

// An admin write and the event of the change it makes to the user's
// number go in one transaction (SPEC §9): both are kept, or neither.
func testChangeEventInTx(t *testing.T, b backend, outbox txOutbox) {
	ctx := pnCtx(t)
	pn := openNumbers(t, b)
	var made []store.User
	ce := &store.ChangeEvent{Make: func(before, after store.User) (store.OutboxEvent, error) {
		made = append(made, before, after)
		return outboxEvent(t, "s", "phone.verified", after.ID, after.PhoneNumber), nil
	}}
	wctx := store.WithChangeEvent(ctx, ce)
	n, err := pn.CreatePhoneNumber(wctx, store.NewPhoneNumber{UserID: "a", PhoneNumber: "+33600000011", Verified: true, Primary: true})
	if err != nil {
		t.Fatal(err)
	}
	if !ce.Written || len(made) != 2 || made[0].PhoneNumber != "" || made[1].PhoneNumber != "+33600000011" || !made[1].Verified {
		t.Fatalf("written %v, made from %+v", ce.Written, made)
	}
	if got, _ := outbox.Len(ctx); got != 1 {
		t.Fatalf("%d events in the outbox, want 1", got)
	}

	// A second, non-primary number changes nothing the user API shows:
	// no event.
	if _, err := pn.CreatePhoneNumber(wctx, store.NewPhoneNumber{UserID: "a", PhoneNumber: "+33600000012"}); err != nil {
		t.Fatal(err)
	}
	if ce.Written {
		t.Fatal("an event was written for a change the user API does not show")
	}
	// A refused write writes no event.
	if _, err := pn.CreatePhoneNumber(wctx, store.NewPhoneNumber{UserID: "b", PhoneNumber: "+33600000011", Verified: true, Primary: true}); !errors.Is(err, store.ErrPhoneInUse) {
		t.Fatalf("another user verifying a's number: %v", err)
	}
	if got, _ := outbox.Len(ctx); got != 1 {
		t.Fatalf("%d events in the outbox after a refused write, want 1", got)
	}
	// The delete of the primary tells of the removal, with it.
	if _, err := pn.DeletePhoneNumber(wctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := outbox.Len(ctx); !ce.Written || got != 2 {
		t.Fatalf("delete: written %v, %d events, want 2", ce.Written, got)
	}
}

func TestChangeEventInTxSQLite(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
	o, err := s.Outbox(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	testChangeEventInTx(t, s, o)
}

func TestChangeEventInTxPostgres(t *testing.T) {
	pgBaseDSN(t)
	e := newPgEnv(t, false)
	s := e.open(e.config(false))
	o, err := s.Outbox(pgCtx(t), e.schema, "s")
	if err != nil {
		t.Fatal(err)
	}
	testChangeEventInTx(t, s, o)
}

// A store without an outbox writes nothing and says so: the caller emits.
func TestChangeEventWithoutOutbox(t *testing.T) {
	m := store.NewMemoryUsers()
	pn := openNumbers(t, m)
	ce := &store.ChangeEvent{Make: func(before, after store.User) (store.OutboxEvent, error) {
		return outboxEvent(t, "s", "phone.verified", after.ID, after.PhoneNumber), nil
	}}
	if _, err := pn.CreatePhoneNumber(store.WithChangeEvent(pnCtx(t), ce),
		store.NewPhoneNumber{UserID: "a", PhoneNumber: "+33600000021", Verified: true, Primary: true}); err != nil {
		t.Fatal(err)
	}
	if ce.Written {
		t.Fatal("the memory store claims to have written an event")
	}
}
