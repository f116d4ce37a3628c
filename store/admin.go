package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Outcomes of the PhoneNumbers calls, besides ErrNotFound (no number has
// that ID), ErrPhoneInUse (another user holds the number verified) and
// ErrUnavailable.
var (
	// ErrNotSupported: the backend holds one number per user (the http
	// store, a postgres store mapped to a legacy users table) and the call
	// would need a second one, or it cannot list numbers at all.
	ErrNotSupported = errors.New("store: not supported by this user store")
	// ErrNotVerified: a number must be verified to be reserved for second
	// factor authentication.
	ErrNotVerified = errors.New("store: phone number not verified")
	// ErrPhoneExists: the user already has this number.
	ErrPhoneExists = errors.New("store: the user already has this phone number")
	// ErrKeepPrimary: a primary number stops being primary only when another
	// number of the user becomes primary (or when it is deleted).
	ErrKeepPrimary = errors.New("store: make another number primary instead")
)

// Verification strategies of a PhoneNumber.
const (
	// StrategyAdmin: marked verified through the admin API.
	StrategyAdmin = "admin"
	// StrategyPhoneCode: verified with a one-time code (SPEC §4).
	StrategyPhoneCode = "phone_code"
)

// PhoneNumber is one of a user's numbers in the Clerk-shaped admin API
// (SPEC §7). A user may hold several; the primary one is the number of the
// user API, the one Users.Get returns.
type PhoneNumber struct {
	// ID is "idn_" and 32 hex digits.
	ID     string
	UserID string
	// PhoneNumber is E.164.
	PhoneNumber string
	Verified    bool
	// Strategy is how the number was last verified: StrategyAdmin,
	// StrategyPhoneCode, or "" when it is not verified through either.
	Strategy                string
	Primary                 bool
	ReservedForSecondFactor bool
	// DefaultSecondFactor: the reserved number second factor codes go to;
	// at most one per user.
	DefaultSecondFactor bool
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// NewPhoneNumber is what CreatePhoneNumber adds.
type NewPhoneNumber struct {
	UserID string
	// PhoneNumber must already be normalised to E.164.
	PhoneNumber             string
	Verified                bool
	Primary                 bool
	ReservedForSecondFactor bool
}

// PhoneNumberChange is what UpdatePhoneNumber changes; nil fields are kept.
type PhoneNumberChange struct {
	Primary                 *bool
	Verified                *bool
	ReservedForSecondFactor *bool
}

// PhoneNumbers is the store side of the admin endpoints: every number of a
// user, with the rules of SPEC §7 applied in one transaction together with
// the user's primary number (Users.Get), so the two never disagree.
//
//   - The first number of a user, or the first after the primary was
//     deleted, becomes primary; making a number primary un-primaries the
//     others (they stay, as secondary numbers).
//   - A verified number belongs to one user at most (ErrPhoneInUse).
//   - Reserving needs a verified number (ErrNotVerified); the first
//     reserved number becomes the default second factor, and when the
//     default is deleted, unverified or unreserved, the oldest other
//     reserved number takes over.
//   - Deleting the primary number removes the user's number (Users.Get
//     then has none); no other number is promoted.
//
// Numbers written through Users.Set (the user API) show up as the
// primary number: a new number replaces the old primary, which is gone,
// as SPEC §4 says.
type PhoneNumbers interface {
	// ListPhoneNumbers returns the user's numbers, oldest first; an
	// unknown user has none.
	ListPhoneNumbers(ctx context.Context, userID string) ([]PhoneNumber, error)
	// GetPhoneNumber returns the number with this ID, or ErrNotFound.
	GetPhoneNumber(ctx context.Context, id string) (PhoneNumber, error)
	// CreatePhoneNumber adds a number to a user.
	CreatePhoneNumber(ctx context.Context, n NewPhoneNumber) (PhoneNumber, error)
	// UpdatePhoneNumber applies a change and returns the number as it now is.
	UpdatePhoneNumber(ctx context.Context, id string, c PhoneNumberChange) (PhoneNumber, error)
	// DeletePhoneNumber removes a number and returns it as it was.
	DeletePhoneNumber(ctx context.Context, id string) (PhoneNumber, error)
	// FindUsers returns the IDs of the users holding any of q's numbers,
	// in q's order and page, through an index on the number.
	FindUsers(ctx context.Context, q UserQuery) ([]string, error)
	// CountUsers returns how many users hold any of numbers.
	CountUsers(ctx context.Context, numbers []string) (int, error)
	// HoldsVerified tells whether the user holds number verified, as
	// their primary number or another: Users.Set of such a number
	// unverified stores it verified (an admin's verification is never
	// lowered), so the rules treat it as verified already.
	HoldsVerified(ctx context.Context, userID, number string) (bool, error)
}

// numbersBackend is what a backend provides: finding the owner of an ID
// and running a function over one user's numbers in a transaction.
type numbersBackend interface {
	// ownerOf returns the user holding the number id and the number
	// itself (which never changes), or ErrNotFound.
	ownerOf(ctx context.Context, id string) (userID, number string, err error)
	// inUser runs fn in a transaction over userID's numbers; write says
	// whether fn may write, and number is the one it may verify or make
	// primary ("" when none), which a shared backend locks first. fn may
	// run again when the backend retries.
	inUser(ctx context.Context, userID, number string, write bool, fn func(numbersTx) error) error
	// findUsers and countUsers serve FindUsers and CountUsers; numbers
	// is non-empty, without duplicates, and q's page is checked.
	findUsers(ctx context.Context, q UserQuery) ([]string, error)
	countUsers(ctx context.Context, numbers []string) (int, error)
}

// numbersTx is one user's numbers inside a transaction.
type numbersTx interface {
	// list returns the user's numbers, oldest first.
	list(ctx context.Context) ([]PhoneNumber, error)
	// heldByOther reports whether a user other than this one holds
	// number verified, as a primary or any other number.
	heldByOther(ctx context.Context, number string) (bool, error)
	// put inserts or updates n, by ID.
	put(ctx context.Context, n PhoneNumber) error
	// remove deletes the number with this ID.
	remove(ctx context.Context, id string) error
	// setUser replaces the user's primary number; "" removes it.
	setUser(ctx context.Context, u User) error
	// addEvent adds e to the events outbox; ErrNoOutbox when the store
	// keeps none.
	addEvent(ctx context.Context, e OutboxEvent) error
}

// numbersService applies the rules of PhoneNumbers over a backend.
type numbersService struct {
	b numbersBackend
	// single: the backend keeps one number per user.
	single bool
	// now is the clock; time.Now when nil.
	now func() time.Time
}

// clock is the time of a write, to the millisecond the API shows and the
// SQL backends keep.
func (s *numbersService) clock() time.Time {
	now := time.Now()
	if s.now != nil {
		now = s.now()
	}
	return time.UnixMilli(now.UnixMilli())
}

func (s *numbersService) ListPhoneNumbers(ctx context.Context, userID string) ([]PhoneNumber, error) {
	var out []PhoneNumber
	err := s.b.inUser(ctx, userID, "", false, func(tx numbersTx) error {
		rows, err := tx.list(ctx)
		out = rows
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *numbersService) HoldsVerified(ctx context.Context, userID, number string) (bool, error) {
	rows, err := s.ListPhoneNumbers(ctx, userID)
	if err != nil {
		return false, err
	}
	for _, n := range rows {
		if n.PhoneNumber == number && n.Verified {
			return true, nil
		}
	}
	return false, nil
}

func (s *numbersService) GetPhoneNumber(ctx context.Context, id string) (PhoneNumber, error) {
	var out PhoneNumber
	err := s.byID(ctx, id, false, func(tx numbersTx, rows []PhoneNumber, i int) error {
		out = rows[i]
		return nil
	})
	return out, err
}

func (s *numbersService) CreatePhoneNumber(ctx context.Context, n NewPhoneNumber) (PhoneNumber, error) {
	if n.UserID == "" {
		return PhoneNumber{}, errEmptyUserID
	}
	if n.PhoneNumber == "" {
		return PhoneNumber{}, errors.New("store: empty phone number")
	}
	if n.ReservedForSecondFactor && !n.Verified {
		return PhoneNumber{}, ErrNotVerified
	}
	var out PhoneNumber
	err := s.b.inUser(ctx, n.UserID, n.PhoneNumber, true, func(tx numbersTx) error {
		startAttempt(ctx)
		before, err := tx.list(ctx)
		if err != nil {
			return err
		}
		for _, r := range before {
			if r.PhoneNumber == n.PhoneNumber {
				return ErrPhoneExists
			}
		}
		if s.single && len(before) > 0 {
			return fmt.Errorf("%w: this store keeps one number per user", ErrNotSupported)
		}
		if n.Verified {
			if held, err := tx.heldByOther(ctx, n.PhoneNumber); err != nil {
				return err
			} else if held {
				return ErrPhoneInUse
			}
		}
		now := s.clock()
		id, err := newNumberID()
		if err != nil {
			return err
		}
		nn := PhoneNumber{ID: id, UserID: n.UserID, PhoneNumber: n.PhoneNumber, Verified: n.Verified,
			ReservedForSecondFactor: n.ReservedForSecondFactor, CreatedAt: now, UpdatedAt: now}
		if n.Verified {
			nn.Strategy = StrategyAdmin
		}
		after := append(slices.Clone(before), nn)
		i := len(after) - 1
		if n.Primary || primaryIndex(before) < 0 {
			makePrimary(after, i)
		}
		fixDefault(after)
		if err := commitNumbers(ctx, tx, n.UserID, before, after, now); err != nil {
			return err
		}
		out = after[i]
		return nil
	})
	return out, err
}

func (s *numbersService) UpdatePhoneNumber(ctx context.Context, id string, c PhoneNumberChange) (PhoneNumber, error) {
	var out PhoneNumber
	err := s.byID(ctx, id, true, func(tx numbersTx, before []PhoneNumber, i int) error {
		after := slices.Clone(before)
		n := &after[i]
		if v := c.Verified; v != nil && *v != n.Verified {
			if *v {
				if held, err := tx.heldByOther(ctx, n.PhoneNumber); err != nil {
					return err
				} else if held {
					return ErrPhoneInUse
				}
				n.Verified, n.Strategy = true, StrategyAdmin
			} else {
				n.Verified, n.Strategy = false, ""
				n.ReservedForSecondFactor, n.DefaultSecondFactor = false, false
			}
		}
		if r := c.ReservedForSecondFactor; r != nil && *r != n.ReservedForSecondFactor {
			if *r && !n.Verified {
				return ErrNotVerified
			}
			n.ReservedForSecondFactor = *r
			if !*r {
				n.DefaultSecondFactor = false
			}
		}
		if p := c.Primary; p != nil && *p != n.Primary {
			if !*p {
				return ErrKeepPrimary
			}
			makePrimary(after, i)
		}
		fixDefault(after)
		if err := commitNumbers(ctx, tx, n.UserID, before, after, s.clock()); err != nil {
			return err
		}
		out = after[i]
		return nil
	})
	return out, err
}

func (s *numbersService) DeletePhoneNumber(ctx context.Context, id string) (PhoneNumber, error) {
	var out PhoneNumber
	err := s.byID(ctx, id, true, func(tx numbersTx, before []PhoneNumber, i int) error {
		out = before[i]
		after := slices.Delete(slices.Clone(before), i, i+1)
		fixDefault(after)
		return commitNumbers(ctx, tx, out.UserID, before, after, s.clock())
	})
	return out, err
}

// byID runs fn over the numbers of id's owner, with i the index of id.
// The owner is looked up first, then the number again inside the
// transaction: a number deleted in between is ErrNotFound.
func (s *numbersService) byID(ctx context.Context, id string, write bool,
	fn func(tx numbersTx, rows []PhoneNumber, i int) error) error {
	if !validNumberID(id) {
		return ErrNotFound
	}
	owner, number, err := s.b.ownerOf(ctx, id)
	if err != nil {
		return err
	}
	return s.b.inUser(ctx, owner, number, write, func(tx numbersTx) error {
		startAttempt(ctx)
		rows, err := tx.list(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rows, func(r PhoneNumber) bool { return r.ID == id })
		if i < 0 {
			return ErrNotFound
		}
		return fn(tx, rows, i)
	})
}

func primaryIndex(rows []PhoneNumber) int {
	return slices.IndexFunc(rows, func(r PhoneNumber) bool { return r.Primary })
}

func makePrimary(rows []PhoneNumber, i int) {
	for j := range rows {
		rows[j].Primary = j == i
	}
}

// fixDefault keeps "at most one default second factor, and one whenever a
// number is reserved": the oldest reserved number takes over when none is
// the default.
func fixDefault(rows []PhoneNumber) {
	first := -1
	for i, r := range rows {
		if r.DefaultSecondFactor {
			return
		}
		if r.ReservedForSecondFactor && first < 0 {
			first = i
		}
	}
	if first >= 0 {
		rows[first].DefaultSecondFactor = true
	}
}

// commitNumbers writes the difference between before and after, ordered so
// that no unique index sees two primaries or two defaults of one user:
// removals first, then the rows losing a flag, then the rest; and last the
// user's primary number when it changed.
func commitNumbers(ctx context.Context, tx numbersTx, userID string, before, after []PhoneNumber, now time.Time) error {
	old := make(map[string]PhoneNumber, len(before))
	for _, r := range before {
		old[r.ID] = r
	}
	kept := make(map[string]bool, len(after))
	for _, r := range after {
		kept[r.ID] = true
	}
	for _, r := range before {
		if !kept[r.ID] {
			if err := tx.remove(ctx, r.ID); err != nil {
				return err
			}
		}
	}
	loses := func(o, n PhoneNumber) bool {
		return (o.Primary && !n.Primary) || (o.DefaultSecondFactor && !n.DefaultSecondFactor) || (o.Verified && !n.Verified)
	}
	for pass := range 2 {
		for i := range after {
			o, existed := old[after[i].ID]
			if existed && o == after[i] {
				continue
			}
			if (pass == 0) != (existed && loses(o, after[i])) {
				continue
			}
			if existed {
				after[i].UpdatedAt = now
			}
			if err := tx.put(ctx, after[i]); err != nil {
				return err
			}
		}
	}
	oldU, newU := primaryUser(userID, before), primaryUser(userID, after)
	if oldU != newU {
		if err := tx.setUser(ctx, newU); err != nil {
			return err
		}
	}
	return addChangeEvent(ctx, tx, oldU, newU)
}

// primaryUser is the Users view of a user's numbers: the primary one.
func primaryUser(userID string, rows []PhoneNumber) User {
	if i := primaryIndex(rows); i >= 0 {
		return User{ID: userID, PhoneNumber: rows[i].PhoneNumber, Verified: rows[i].Verified}
	}
	return User{ID: userID}
}

// numberIDPrefix starts every ID, as Clerk's identification IDs do.
const numberIDPrefix = "idn_"

func newNumberID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("store: number id: %w", err)
	}
	return numberIDPrefix + hex.EncodeToString(b), nil
}

// validNumberID accepts what newNumberID (or a trigger) makes, so other
// strings never reach a query.
func validNumberID(id string) bool {
	if len(id) != len(numberIDPrefix)+32 || id[:len(numberIDPrefix)] != numberIDPrefix {
		return false
	}
	for _, c := range id[len(numberIDPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// forgetfulNumbers drops a user's read-cache entries after every write, so
// this instance's GET /phone and headers show an admin change at once.
type forgetfulNumbers struct {
	PhoneNumbers
	caches []*CachedUsers
}

func (f forgetfulNumbers) CreatePhoneNumber(ctx context.Context, n NewPhoneNumber) (PhoneNumber, error) {
	out, err := f.PhoneNumbers.CreatePhoneNumber(ctx, n)
	return out, f.forget(ctx, n.UserID, err)
}

func (f forgetfulNumbers) UpdatePhoneNumber(ctx context.Context, id string, c PhoneNumberChange) (PhoneNumber, error) {
	out, err := f.PhoneNumbers.UpdatePhoneNumber(ctx, id, c)
	if out.UserID == "" {
		return out, err // nothing found, nothing written
	}
	return out, f.forget(ctx, out.UserID, err)
}

func (f forgetfulNumbers) DeletePhoneNumber(ctx context.Context, id string) (PhoneNumber, error) {
	out, err := f.PhoneNumbers.DeletePhoneNumber(ctx, id)
	if out.UserID == "" {
		return out, err
	}
	return out, f.forget(ctx, out.UserID, err)
}

// forget drops the entries whether or not the write succeeded, as
// CachedUsers.Set does: a failed commit may still have landed.
func (f forgetfulNumbers) forget(ctx context.Context, userID string, err error) error {
	for _, c := range f.caches {
		if derr := c.forget(ctx, userID); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}
