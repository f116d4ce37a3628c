package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// numbersStore is one backend under test: its Users and its PhoneNumbers.
type numbersStore struct {
	users store.Users
	pn    store.PhoneNumbers
}

// testPhoneNumbers is the PhoneNumbers conformance suite; open returns a
// fresh store (or one whose other users cannot collide: names are random).
func testPhoneNumbers(t *testing.T, open func(t *testing.T) numbersStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s numbersStore)
	}{
		{"FirstNumberIsPrimary", pnFirstIsPrimary},
		{"SecondNumberIsNot", pnSecondIsNot},
		{"CreatePrimaryUnprimariesOthers", pnCreatePrimary},
		{"UpdatePrimary", pnUpdatePrimary},
		{"KeepPrimary", pnKeepPrimary},
		{"ReserveNeedsVerified", pnReserveNeedsVerified},
		{"FirstReservedIsDefault", pnFirstReservedIsDefault},
		{"UnverifyDropsReservation", pnUnverify},
		{"VerifiedUniqueAcrossUsers", pnVerifiedUnique},
		{"SameNumberTwiceForOneUser", pnSameUserTwice},
		{"DeletePrimaryRemovesUserNumber", pnDeletePrimary},
		{"DeleteSecondary", pnDeleteSecondary},
		{"UnknownID", pnUnknownID},
		{"FollowsUsersSet", pnFollowsSet},
		{"SetRefusesAnotherUsersVerifiedNumber", pnSetRefusesSecondary},
		{"Times", pnTimes},
		{"ConcurrentCreates", pnConcurrentCreates},
		{"ConcurrentVerifiedSameNumber", pnConcurrentSameNumber},
		{"FindUsersByNumber", pnFindUsers},
		{"FindUsersFollowsSet", pnFindUsersFollowsSet},
		{"FindUsersRefusesUnbounded", pnFindUsersBounds},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func pnCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pnUser() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "user-" + hex.EncodeToString(b)
}

func pnNumber() string { return fmt.Sprintf("+1555%07d", mrand.IntN(10_000_000)) }

func pnNumbers(n int) []string {
	var out []string
	for len(out) < n {
		if x := pnNumber(); !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func mustCreate(t *testing.T, s numbersStore, n store.NewPhoneNumber) store.PhoneNumber {
	t.Helper()
	got, err := s.pn.CreatePhoneNumber(pnCtx(t), n)
	if err != nil {
		t.Fatalf("CreatePhoneNumber(%+v): %v", n, err)
	}
	if got.UserID != n.UserID || got.PhoneNumber != n.PhoneNumber || got.Verified != n.Verified {
		t.Fatalf("CreatePhoneNumber(%+v) = %+v", n, got)
	}
	return got
}

func mustUpdate(t *testing.T, s numbersStore, id string, c store.PhoneNumberChange) store.PhoneNumber {
	t.Helper()
	got, err := s.pn.UpdatePhoneNumber(pnCtx(t), id, c)
	if err != nil {
		t.Fatalf("UpdatePhoneNumber(%s): %v", id, err)
	}
	return got
}

func mustList(t *testing.T, s numbersStore, user string) []store.PhoneNumber {
	t.Helper()
	got, err := s.pn.ListPhoneNumbers(pnCtx(t), user)
	if err != nil {
		t.Fatalf("ListPhoneNumbers(%s): %v", user, err)
	}
	return got
}

func ptr[T any](v T) *T { return &v }

// flags is what the suite checks of one number: "+1555…:PVRD" with the
// letters present for primary, verified, reserved and default.
func flags(n store.PhoneNumber) string {
	f := n.PhoneNumber + ":"
	for _, x := range []struct {
		on bool
		c  string
	}{{n.Primary, "P"}, {n.Verified, "V"}, {n.ReservedForSecondFactor, "R"}, {n.DefaultSecondFactor, "D"}} {
		if x.on {
			f += x.c
		}
	}
	return f
}

// wantNumbers checks the user's numbers, oldest first, and that Users.Get
// returns the primary one (or none).
func wantNumbers(t *testing.T, s numbersStore, user string, want ...string) []store.PhoneNumber {
	t.Helper()
	rows := mustList(t, s, user)
	got := make([]string, len(rows))
	wantUser := store.User{ID: user}
	for i, r := range rows {
		got[i] = flags(r)
		if r.UserID != user {
			t.Fatalf("number %s has user %q, want %q", r.ID, r.UserID, user)
		}
		if r.Primary {
			wantUser.PhoneNumber, wantUser.Verified = r.PhoneNumber, r.Verified
		}
		if byID, err := s.pn.GetPhoneNumber(pnCtx(t), r.ID); err != nil || byID != r {
			t.Fatalf("GetPhoneNumber(%s) = %+v, %v; the list says %+v", r.ID, byID, err, r)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("numbers of %s = %q, want %q", user, got, want)
	}
	u, err := s.users.Get(pnCtx(t), user)
	if err != nil {
		t.Fatal(err)
	}
	if u != wantUser {
		t.Fatalf("Users.Get(%s) = %+v, want %+v (the primary number)", user, u, wantUser)
	}
	return rows
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

func pnFirstIsPrimary(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumber()
	got := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n})
	if !got.Primary || got.Strategy != "" || len(got.ID) != 36 || got.ID[:4] != "idn_" {
		t.Fatalf("first number = %+v; want primary, no verification, an idn_ ID", got)
	}
	wantNumbers(t, s, u, n+":P")
	if other := mustList(t, s, pnUser()); len(other) != 0 {
		t.Fatalf("an unknown user has numbers: %+v", other)
	}
}

func pnSecondIsNot(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(2)
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true})
	got := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true})
	if got.Primary || got.Strategy != store.StrategyAdmin {
		t.Fatalf("second number = %+v; want not primary, strategy admin", got)
	}
	wantNumbers(t, s, u, n[0]+":PV", n[1]+":V")
}

func pnCreatePrimary(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(3)
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1]})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[2], Primary: true})
	wantNumbers(t, s, u, n[0]+":V", n[1]+":", n[2]+":P")
}

func pnUpdatePrimary(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(2)
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0]})
	b := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true})
	got := mustUpdate(t, s, b.ID, store.PhoneNumberChange{Primary: ptr(true)})
	if !got.Primary || got.ID != b.ID {
		t.Fatalf("after primary: %+v", got)
	}
	wantNumbers(t, s, u, n[0]+":", n[1]+":PV")
	// Primary again is a no-op; so is an empty change.
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{Primary: ptr(true)})
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{})
	mustUpdate(t, s, a.ID, store.PhoneNumberChange{Primary: ptr(true)})
	wantNumbers(t, s, u, n[0]+":P", n[1]+":V")
}

func pnKeepPrimary(t *testing.T, s numbersStore) {
	u := pnUser()
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: pnNumber()})
	_, err := s.pn.UpdatePhoneNumber(pnCtx(t), a.ID, store.PhoneNumberChange{Primary: ptr(false)})
	wantErr(t, err, store.ErrKeepPrimary)
	wantNumbers(t, s, u, a.PhoneNumber+":P")
}

func pnReserveNeedsVerified(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(2)
	_, err := s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], ReservedForSecondFactor: true})
	wantErr(t, err, store.ErrNotVerified)
	wantNumbers(t, s, u)
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0]})
	_, err = s.pn.UpdatePhoneNumber(pnCtx(t), a.ID, store.PhoneNumberChange{ReservedForSecondFactor: ptr(true)})
	wantErr(t, err, store.ErrNotVerified)
	wantNumbers(t, s, u, n[0]+":P")
	// Verifying and reserving in one change is fine.
	got := mustUpdate(t, s, a.ID, store.PhoneNumberChange{Verified: ptr(true), ReservedForSecondFactor: ptr(true)})
	if got.Strategy != store.StrategyAdmin {
		t.Fatalf("strategy %q, want admin", got.Strategy)
	}
	wantNumbers(t, s, u, n[0]+":PVRD")
}

func pnFirstReservedIsDefault(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(3)
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true})
	b := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true, ReservedForSecondFactor: true})
	if !b.DefaultSecondFactor {
		t.Fatalf("the first reserved number is not the default: %+v", b)
	}
	mustUpdate(t, s, a.ID, store.PhoneNumberChange{ReservedForSecondFactor: ptr(true)})
	c := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[2], Verified: true, ReservedForSecondFactor: true})
	if c.DefaultSecondFactor {
		t.Fatalf("a second reserved number became the default: %+v", c)
	}
	wantNumbers(t, s, u, n[0]+":PVR", n[1]+":VRD", n[2]+":VR")
	// The default unreserved: the oldest other reserved number takes over.
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{ReservedForSecondFactor: ptr(false)})
	wantNumbers(t, s, u, n[0]+":PVRD", n[1]+":V", n[2]+":VR")
	// The default deleted: likewise.
	if _, err := s.pn.DeletePhoneNumber(pnCtx(t), a.ID); err != nil {
		t.Fatal(err)
	}
	wantNumbers(t, s, u, n[1]+":V", n[2]+":VRD")
}

func pnUnverify(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(2)
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true, ReservedForSecondFactor: true})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true, ReservedForSecondFactor: true})
	got := mustUpdate(t, s, a.ID, store.PhoneNumberChange{Verified: ptr(false)})
	if got.Strategy != "" || got.ReservedForSecondFactor || got.DefaultSecondFactor {
		t.Fatalf("unverified number = %+v", got)
	}
	wantNumbers(t, s, u, n[0]+":P", n[1]+":VRD")
}

func pnVerifiedUnique(t *testing.T, s numbersStore) {
	u, v, n := pnUser(), pnUser(), pnNumbers(2)
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0]})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true}) // secondary
	_, err := s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: v, PhoneNumber: n[1], Verified: true})
	wantErr(t, err, store.ErrPhoneInUse)
	// Unverified, another user may hold it too; verifying it is refused.
	b := mustCreate(t, s, store.NewPhoneNumber{UserID: v, PhoneNumber: n[1]})
	_, err = s.pn.UpdatePhoneNumber(pnCtx(t), b.ID, store.PhoneNumberChange{Verified: ptr(true)})
	wantErr(t, err, store.ErrPhoneInUse)
	wantNumbers(t, s, v, n[1]+":P")
	// Once the first user lets it go, it is free.
	for _, r := range mustList(t, s, u) {
		if r.PhoneNumber == n[1] {
			mustUpdate(t, s, r.ID, store.PhoneNumberChange{Verified: ptr(false)})
		}
	}
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{Verified: ptr(true)})
	wantNumbers(t, s, v, n[1]+":PV")
	// And a verified primary through Users.Set counts the same.
	w := pnUser()
	if err := s.users.Set(pnCtx(t), store.User{ID: w, PhoneNumber: n[0], Verified: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: v, PhoneNumber: n[0], Verified: true})
	wantErr(t, err, store.ErrPhoneInUse)
}

func pnSameUserTwice(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumber()
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n})
	_, err := s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: u, PhoneNumber: n, Verified: true})
	wantErr(t, err, store.ErrPhoneExists)
	wantNumbers(t, s, u, n+":P")
}

func pnDeletePrimary(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(3)
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true})
	del, err := s.pn.DeletePhoneNumber(pnCtx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if del.ID != a.ID || del.PhoneNumber != n[0] || del.UserID != u {
		t.Fatalf("DeletePhoneNumber returned %+v", del)
	}
	wantNumbers(t, s, u, n[1]+":V") // no number promoted; Users.Get has none
	_, err = s.pn.GetPhoneNumber(pnCtx(t), a.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.pn.DeletePhoneNumber(pnCtx(t), a.ID)
	wantErr(t, err, store.ErrNotFound)
	// The deleted number is free for another user.
	mustCreate(t, s, store.NewPhoneNumber{UserID: pnUser(), PhoneNumber: n[0], Verified: true})
	// The next number created is primary again.
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[2]})
	wantNumbers(t, s, u, n[1]+":V", n[2]+":P")
}

func pnDeleteSecondary(t *testing.T, s numbersStore) {
	u, n := pnUser(), pnNumbers(2)
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0], Verified: true})
	b := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1]})
	if _, err := s.pn.DeletePhoneNumber(pnCtx(t), b.ID); err != nil {
		t.Fatal(err)
	}
	wantNumbers(t, s, u, n[0]+":PV")
}

func pnUnknownID(t *testing.T, s numbersStore) {
	for _, id := range []string{"idn_00000000000000000000000000000000", "", "idn_x", "'; DROP TABLE phone_numbers; --"} {
		_, err := s.pn.GetPhoneNumber(pnCtx(t), id)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.pn.UpdatePhoneNumber(pnCtx(t), id, store.PhoneNumberChange{Verified: ptr(true)})
		wantErr(t, err, store.ErrNotFound)
		_, err = s.pn.DeletePhoneNumber(pnCtx(t), id)
		wantErr(t, err, store.ErrNotFound)
	}
}

// The user API writes through Users.Set; the numbers follow.
func pnFollowsSet(t *testing.T, s numbersStore) {
	ctx := pnCtx(t)
	u, n := pnUser(), pnNumbers(4)
	set := func(num string, verified bool) {
		t.Helper()
		if err := s.users.Set(ctx, store.User{ID: u, PhoneNumber: num, Verified: verified}); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	set(n[0], false) // rule 2: stored unverified
	rows := wantNumbers(t, s, u, n[0]+":P")
	if rows[0].Strategy != "" {
		t.Fatalf("strategy %q, want none", rows[0].Strategy)
	}
	id0 := rows[0].ID
	set(n[0], true) // verified with a code: same number, same ID
	rows = wantNumbers(t, s, u, n[0]+":PV")
	if rows[0].ID != id0 || rows[0].Strategy != store.StrategyPhoneCode {
		t.Fatalf("after verify: %+v (ID was %s)", rows[0], id0)
	}
	// An admin-added secondary, reserved.
	c := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[2], Verified: true, ReservedForSecondFactor: true})
	set(n[1], true) // a pending change verified: the old primary is gone
	wantNumbers(t, s, u, n[2]+":VRD", n[1]+":PV")
	set(n[2], true) // the secondary becomes primary, keeping its ID and reservation
	rows = wantNumbers(t, s, u, n[2]+":PVRD")
	if rows[0].ID != c.ID {
		t.Fatalf("promoted number has ID %s, want %s", rows[0].ID, c.ID)
	}
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[3], Verified: true})
	set(n[3], false) // a verified secondary stays verified: the user is raised instead
	wantNumbers(t, s, u, n[3]+":PV")
	set(n[3], false) // the primary stored unverified: its verification goes
	wantNumbers(t, s, u, n[3]+":P")
	set("", false) // removed
	wantNumbers(t, s, u)
}

func pnSetRefusesSecondary(t *testing.T, s numbersStore) {
	u, v, n := pnUser(), pnUser(), pnNumbers(2)
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[0]})
	mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: n[1], Verified: true})
	err := s.users.Set(pnCtx(t), store.User{ID: v, PhoneNumber: n[1], Verified: true})
	wantErr(t, err, store.ErrPhoneInUse)
	wantNumbers(t, s, v)
	wantNumbers(t, s, u, n[0]+":P", n[1]+":V")
}

func pnTimes(t *testing.T, s numbersStore) {
	before := time.Now().Add(-time.Second)
	u := pnUser()
	a := mustCreate(t, s, store.NewPhoneNumber{UserID: u, PhoneNumber: pnNumber()})
	if a.CreatedAt.Before(before) || a.CreatedAt.After(time.Now().Add(time.Second)) || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Fatalf("times of a new number: %v, %v", a.CreatedAt, a.UpdatedAt)
	}
	time.Sleep(5 * time.Millisecond)
	b := mustUpdate(t, s, a.ID, store.PhoneNumberChange{Verified: ptr(true)})
	if !b.CreatedAt.Equal(a.CreatedAt) || !b.UpdatedAt.After(a.UpdatedAt) {
		t.Fatalf("times after an update: %v, %v (were %v, %v)", b.CreatedAt, b.UpdatedAt, a.CreatedAt, a.UpdatedAt)
	}
	got, err := s.pn.GetPhoneNumber(pnCtx(t), a.ID)
	if err != nil || got.UpdatedAt.UnixMilli() != b.UpdatedAt.UnixMilli() {
		t.Fatalf("GetPhoneNumber = %+v, %v; want the update's time", got, err)
	}
}

func pnConcurrentCreates(t *testing.T, s numbersStore) {
	u := pnUser()
	n := pnNumbers(8)
	var wg sync.WaitGroup
	errs := make([]error, len(n))
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: u, PhoneNumber: n[i], Verified: true})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rows := mustList(t, s, u)
	primaries := 0
	for _, r := range rows {
		if r.Primary {
			primaries++
		}
	}
	if len(rows) != len(n) || primaries != 1 {
		t.Fatalf("%d numbers, %d primary; want %d and 1", len(rows), primaries, len(n))
	}
	wantPrimary := rows[slices.IndexFunc(rows, func(r store.PhoneNumber) bool { return r.Primary })]
	if got, _ := s.users.Get(pnCtx(t), u); got.PhoneNumber != wantPrimary.PhoneNumber {
		t.Fatalf("Users.Get = %+v, primary is %s", got, wantPrimary.PhoneNumber)
	}
}

func pnConcurrentSameNumber(t *testing.T, s numbersStore) {
	n := pnNumber()
	const k = 6
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: pnUser(), PhoneNumber: n, Verified: true})
			} else {
				errs[i] = s.users.Set(pnCtx(t), store.User{ID: pnUser(), PhoneNumber: n, Verified: true})
			}
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrPhoneInUse):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won number %s, want exactly 1", won, n)
	}
}

// --- backends -----------------------------------------------------------

// backend is a store that tells what it can do.
type backend interface {
	store.Users
	Backend() store.Backend
}

func openNumbers(t *testing.T, u backend) store.PhoneNumbers {
	t.Helper()
	open := u.Backend().Numbers
	if open == nil {
		t.Fatalf("%T offers no phone numbers", u)
	}
	pn, err := open(pnCtx(t))
	if err != nil {
		t.Fatalf("open phone numbers of %T: %v", u, err)
	}
	return pn
}

func TestPhoneNumbersMemory(t *testing.T) {
	testPhoneNumbers(t, func(t *testing.T) numbersStore {
		u := store.NewMemoryUsers()
		return numbersStore{u, openNumbers(t, u)}
	})
}

func TestPhoneNumbersSQLite(t *testing.T) {
	testPhoneNumbers(t, func(t *testing.T) numbersStore {
		u := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
		return numbersStore{u, openNumbers(t, u)}
	})
}

// Through the read cache, as Caddy opens it: a write drops the cached
// copy, so Peek never shows a primary number the admin API replaced.
func TestPhoneNumbersSQLiteCached(t *testing.T) {
	testPhoneNumbers(t, func(t *testing.T) numbersStore {
		u := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
		c, err := store.NewCachedUsers(u, time.Minute, 1)
		if err != nil {
			t.Fatal(err)
		}
		return numbersStore{peekUsers{c}, c.ForgetOnWrite(openNumbers(t, u))}
	})
}

// peekUsers reads through the cache, as the hot paths do.
type peekUsers struct{ *store.CachedUsers }

func (p peekUsers) Get(ctx context.Context, id string) (store.User, error) { return p.Peek(ctx, id) }

func TestPhoneNumbersPostgres(t *testing.T) {
	pgBaseDSN(t)
	testPhoneNumbers(t, func(t *testing.T) numbersStore {
		e := newPgEnv(t, true)
		u := e.open(e.config(false))
		return numbersStore{u, openNumbers(t, u)}
	})
}

// The Users suite holds unchanged once the numbers' triggers are in place.
func TestUsersWithPhoneNumbers(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.TestUsers(t, func(t *testing.T) store.Users {
			u := store.NewMemoryUsers()
			openNumbers(t, u)
			return u
		})
	})
	t.Run("sqlite", func(t *testing.T) {
		storetest.TestUsers(t, func(t *testing.T) store.Users {
			u := openSQLite(t, filepath.Join(t.TempDir(), "phone.db"))
			openNumbers(t, u)
			return u
		})
	})
	t.Run("postgres", func(t *testing.T) {
		pgBaseDSN(t)
		storetest.TestUsers(t, func(t *testing.T) store.Users {
			e := newPgEnv(t, true)
			u := e.open(e.config(false))
			openNumbers(t, u)
			return u
		})
	})
}

func TestPhoneNumbersNotSupported(t *testing.T) {
	h, err := store.NewHTTPUsers(store.HTTPConfig{BaseURL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Backend().Numbers != nil {
		t.Fatal("the http store offers phone numbers; it keeps one number per user")
	}
}

// Numbers stored before the admin API was enabled show up as primaries,
// and reopening keeps IDs.
func TestPhoneNumbersBackfillSQLite(t *testing.T) {
	ctx := pnCtx(t)
	path := filepath.Join(t.TempDir(), "phone.db")
	u := openSQLite(t, path)
	a := store.User{ID: "alice", PhoneNumber: "+33612345678", Verified: true}
	b := store.User{ID: "bob", PhoneNumber: "+33612345679"}
	for _, x := range []store.User{a, b} {
		if err := u.Set(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	s := numbersStore{u, openNumbers(t, u)}
	rows := wantNumbers(t, s, "alice", a.PhoneNumber+":PV")
	if rows[0].Strategy != store.StrategyPhoneCode {
		t.Fatalf("backfilled verified number: strategy %q", rows[0].Strategy)
	}
	wantNumbers(t, s, "bob", b.PhoneNumber+":P")
	u.Close()
	u2 := openSQLite(t, path)
	s2 := numbersStore{u2, openNumbers(t, u2)}
	if again := wantNumbers(t, s2, "alice", a.PhoneNumber+":PV"); again[0].ID != rows[0].ID {
		t.Fatalf("ID changed on reopen: %s, was %s", again[0].ID, rows[0].ID)
	}
}

// One memory store keeps one set of numbers, whoever opens it.
func TestPhoneNumbersMemoryShared(t *testing.T) {
	u := store.NewMemoryUsers()
	a, b := openNumbers(t, u), openNumbers(t, u)
	n := mustCreate(t, numbersStore{u, a}, store.NewPhoneNumber{UserID: "alice", PhoneNumber: "+33612345678"})
	if got, err := b.GetPhoneNumber(pnCtx(t), n.ID); err != nil || got != n {
		t.Fatalf("second view: %+v, %v", got, err)
	}
	if got, err := openNumbers(t, store.NewMemoryUsers()).GetPhoneNumber(pnCtx(t), n.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another memory store sees the number: %+v, %v", got, err)
	}
}

// legacyNumberID is the ID the admin API gives the number of a legacy
// user the module has never written (as store does it).
func legacyNumberID(userID, number string) string {
	h := sha256.Sum256([]byte("legacy\x00" + userID + "\x00" + number))
	return "idn_" + hex.EncodeToString(h[:16])
}

// A legacy users table holds one number per user: the admin API shows the
// legacy number of a user it has never written without writing it, adopts
// it under the same ID on the first write, keeps the legacy columns in
// step, and refuses a second number.
func TestPhoneNumbersPostgresLegacy(t *testing.T) {
	e := newPgEnv(t, true)
	e.legacyTable()
	e.exec(`INSERT INTO ` + e.q("users") + ` (email, phone, phone_verified) VALUES
		('a@example.com', '+33612345678', true), ('b@example.com', NULL, NULL)`)
	u := e.open(e.config(true))
	s := numbersStore{u, openNumbers(t, u)}

	// User 1's legacy number shows, with a deterministic ID, and a read
	// writes nothing: Users.Get still reads the legacy row.
	id := legacyNumberID("1", "+33612345678")
	rows := wantNumbers(t, s, "1", "+33612345678:PV")
	if rows[0].ID != id || rows[0].Strategy != store.StrategyPhoneCode || rows[0].CreatedAt.UnixMilli() != 0 {
		t.Fatalf("legacy number = %+v, want ID %s, strategy phone_code", rows[0], id)
	}
	if again := mustList(t, s, "1"); again[0].ID != id {
		t.Fatalf("ID changed between reads: %s, was %s", again[0].ID, id)
	}
	if got, err := s.pn.GetPhoneNumber(pnCtx(t), id); err != nil || got.ID != id || flags(got) != "+33612345678:PV" {
		t.Fatalf("GetPhoneNumber(%s) = %+v, %v", id, got, err)
	}
	if _, ok := e.moduleRow("1"); ok {
		t.Fatal("a read wrote the legacy user into phone_users")
	}
	// Failed writes leave it as it was.
	_, err := s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: "1", PhoneNumber: "+33612345678"})
	wantErr(t, err, store.ErrPhoneExists)
	_, err = s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: "1", PhoneNumber: "+33612345679"})
	wantErr(t, err, store.ErrNotSupported)
	_, err = s.pn.UpdatePhoneNumber(pnCtx(t), id, store.PhoneNumberChange{Primary: ptr(false)})
	wantErr(t, err, store.ErrKeepPrimary)
	if _, ok := e.moduleRow("1"); ok {
		t.Fatal("a failed write adopted the legacy user")
	}
	e.wantLegacy(1, "+33612345678", "true")
	// A write through the ID List showed adopts it, as it is, under that
	// ID, before applying its rules.
	if got := mustUpdate(t, s, id, store.PhoneNumberChange{ReservedForSecondFactor: ptr(true)}); got.ID != id || flags(got) != "+33612345678:PVRD" {
		t.Fatalf("UpdatePhoneNumber(%s) = %+v", id, got)
	}
	if got, ok := e.moduleRow("1"); !ok || got != (store.User{ID: "1", PhoneNumber: "+33612345678", Verified: true}) {
		t.Fatalf("module row after the write = %+v, %v", got, ok)
	}
	if rows := wantNumbers(t, s, "1", "+33612345678:PVRD"); rows[0].ID != id || rows[0].CreatedAt.UnixMilli() != 0 {
		t.Fatalf("adopted %+v, want ID %s, created at the epoch", rows[0], id)
	}
	e.wantLegacy(1, "+33612345678", "true")
	// The module now speaks for user 1: a legacy change no longer shows.
	e.exec(`UPDATE ` + e.q("users") + ` SET phone = '+33612345600' WHERE id = 1`)
	wantNumbers(t, s, "1", "+33612345678:PVRD")
	// An ID nobody holds is still not found.
	_, err = s.pn.GetPhoneNumber(pnCtx(t), legacyNumberID("2", "+33612345678"))
	wantErr(t, err, store.ErrNotFound)

	// User 2 gets a first number: it reaches the legacy columns.
	b := mustCreate(t, s, store.NewPhoneNumber{UserID: "2", PhoneNumber: "+33612345670", Verified: true})
	e.wantLegacy(2, "+33612345670", "true")
	// A legacy holder counts for the in-use rule.
	_, err = s.pn.CreatePhoneNumber(pnCtx(t), store.NewPhoneNumber{UserID: "3", PhoneNumber: "+33612345678", Verified: true})
	wantErr(t, err, store.ErrPhoneInUse)
	// Unverified, then deleted: the legacy columns are cleared.
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{Verified: ptr(false)})
	e.wantLegacy(2, "", "false")
	mustUpdate(t, s, b.ID, store.PhoneNumberChange{Verified: ptr(true)})
	e.wantLegacy(2, "+33612345670", "true")
	if _, err := s.pn.DeletePhoneNumber(pnCtx(t), b.ID); err != nil {
		t.Fatal(err)
	}
	e.wantLegacy(2, "", "false")
	wantNumbers(t, s, "2")
	// A user ID no legacy key can match works as without the mapping.
	mustCreate(t, s, store.NewPhoneNumber{UserID: "carol", PhoneNumber: "+33612345677"})
	wantNumbers(t, s, "carol", "+33612345677:P")
}

// Opening again (every config load does) keeps the table, the triggers
// and the IDs, and adds no second trigger.
func TestPhoneNumbersPostgresReopen(t *testing.T) {
	e := newPgEnv(t, true)
	u := e.open(e.config(false))
	if err := u.Set(pnCtx(t), store.User{ID: "alice", PhoneNumber: "+33612345678", Verified: true}); err != nil {
		t.Fatal(err)
	}
	s := numbersStore{u, openNumbers(t, u)}
	rows := wantNumbers(t, s, "alice", "+33612345678:PV") // backfilled
	for range 2 {
		u2 := e.open(e.config(false))
		s2 := numbersStore{u2, openNumbers(t, u2)}
		if again := wantNumbers(t, s2, "alice", "+33612345678:PV"); again[0].ID != rows[0].ID {
			t.Fatalf("ID changed: %s, was %s", again[0].ID, rows[0].ID)
		}
	}
	var n int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1)`,
		e.q("phone_users")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d triggers on phone_users, want 2", n)
	}
}
