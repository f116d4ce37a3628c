package store

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"
	"weak"
)

// memoryNumberRows is the PhoneNumbers state of one MemoryUsers. It is
// guarded by that MemoryUsers' mutex, so the numbers and the users change
// together, and it holds no pointer back to it (see memoryNumbers).
type memoryNumberRows struct {
	byID   map[string]PhoneNumber
	byUser map[string][]string // IDs, oldest first
}

// memoryNumbers keeps each MemoryUsers' numbers beside it, without a field
// in MemoryUsers: keyed weakly, and dropped when the store is collected.
var memoryNumbers = struct {
	sync.Mutex
	m map[weak.Pointer[MemoryUsers]]*memoryNumberRows
}{m: map[weak.Pointer[MemoryUsers]]*memoryNumberRows{}}

// numbersBackend returns the PhoneNumbers backend of m; every call returns
// a view of the same numbers.
func (m *MemoryUsers) numbersBackend() numbersBackend {
	k := weak.Make(m)
	memoryNumbers.Lock()
	defer memoryNumbers.Unlock()
	rows, ok := memoryNumbers.m[k]
	if !ok {
		rows = &memoryNumberRows{byID: map[string]PhoneNumber{}, byUser: map[string][]string{}}
		memoryNumbers.m[k] = rows
		runtime.AddCleanup(m, func(k weak.Pointer[MemoryUsers]) {
			memoryNumbers.Lock()
			delete(memoryNumbers.m, k)
			memoryNumbers.Unlock()
		}, k)
	}
	return memoryNumbersBackend{m: m, rows: rows}
}

type memoryNumbersBackend struct {
	m    *MemoryUsers
	rows *memoryNumberRows
}

func (b memoryNumbersBackend) ownerOf(ctx context.Context, id string) (string, string, error) {
	b.m.mu.RLock()
	defer b.m.mu.RUnlock()
	if r, ok := b.rows.byID[id]; ok {
		return r.UserID, r.PhoneNumber, nil
	}
	return "", "", ErrNotFound
}

// inUser runs fn on a copy of the user's numbers under the store's lock
// and keeps what it wrote only when it succeeds. Set (the user API) does
// not know about the numbers, so the user's numbers are first brought in
// line with what Set left, as the SQL backends' triggers do.
func (b memoryNumbersBackend) inUser(ctx context.Context, userID, _ string, write bool, fn func(numbersTx) error) error {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	b.reconcile(userID)
	tx := &memoryNumbersTx{b: b, userID: userID, rows: b.userRows(userID)}
	tx.user, _ = b.m.get(userID)
	tx.user.ID = userID
	if err := fn(tx); err != nil {
		return err
	}
	if write {
		b.store(userID, tx.rows, tx.user)
	}
	return nil
}

func (b memoryNumbersBackend) userRows(userID string) []PhoneNumber {
	ids := b.rows.byUser[userID]
	out := make([]PhoneNumber, len(ids))
	for i, id := range ids {
		out[i] = b.rows.byID[id]
	}
	return out
}

// reconcile makes the primary number what m.users says, with the rules of
// the SQL triggers: a replaced primary is gone, the new number becomes
// primary (an existing secondary is promoted), and a number that is no
// longer verified loses its reservation; a verified secondary number
// written unverified stays verified, and the user is raised instead.
func (b memoryNumbersBackend) reconcile(userID string) {
	rows := b.userRows(userID)
	u, ok := b.m.get(userID)
	next := slices.Clone(rows)
	if p := primaryIndex(next); p >= 0 && (!ok || next[p].PhoneNumber != u.PhoneNumber) {
		next = slices.Delete(next, p, p+1)
	}
	if ok {
		now := time.UnixMilli(time.Now().UnixMilli())
		if j := slices.IndexFunc(next, func(r PhoneNumber) bool { return r.PhoneNumber == u.PhoneNumber }); j >= 0 {
			r := &next[j]
			if !u.Verified && r.Verified && !r.Primary {
				// A verified secondary number is never lowered by Set:
				// the user is raised to match (see sqliteFollow).
				u.Verified = true
			}
			if !r.Primary || r.Verified != u.Verified {
				r.Primary, r.UpdatedAt = true, now
				if u.Verified && !r.Verified {
					r.Strategy = StrategyPhoneCode
				}
				if !u.Verified {
					r.Strategy, r.ReservedForSecondFactor, r.DefaultSecondFactor = "", false, false
				}
				r.Verified = u.Verified
			}
		} else if id, err := newNumberID(); err == nil {
			n := PhoneNumber{ID: id, UserID: userID, PhoneNumber: u.PhoneNumber, Verified: u.Verified,
				Primary: true, CreatedAt: now, UpdatedAt: now}
			if u.Verified {
				n.Strategy = StrategyPhoneCode
			}
			next = append(next, n)
		}
	}
	fixDefault(next)
	if cur, _ := b.m.get(userID); !slices.Equal(rows, next) || u != cur {
		u.ID = userID
		b.store(userID, next, u)
	}
}

// store replaces the user's numbers and primary number, and the verified
// holders of their numbers.
func (b memoryNumbersBackend) store(userID string, rows []PhoneNumber, u User) {
	for _, id := range b.rows.byUser[userID] {
		old := b.rows.byID[id]
		if old.Verified && b.m.holders[old.PhoneNumber] == userID {
			delete(b.m.holders, old.PhoneNumber)
		}
		delete(b.rows.byID, id)
	}
	if old, ok := b.m.get(userID); ok && old.Verified && b.m.holders[old.PhoneNumber] == userID {
		delete(b.m.holders, old.PhoneNumber)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
		b.rows.byID[r.ID] = r
		if r.Verified {
			b.m.holders[r.PhoneNumber] = userID
		}
	}
	if len(ids) == 0 {
		delete(b.rows.byUser, userID)
	} else {
		b.rows.byUser[userID] = ids
	}
	if u.PhoneNumber == "" {
		b.m.drop(userID)
	} else {
		u.ID = userID
		b.m.put(u)
		if u.Verified {
			b.m.holders[u.PhoneNumber] = userID
		}
	}
}

// memoryNumbersTx stages one user's changes; inUser keeps them on success.
type memoryNumbersTx struct {
	b      memoryNumbersBackend
	userID string
	rows   []PhoneNumber
	user   User
}

func (tx *memoryNumbersTx) list(context.Context) ([]PhoneNumber, error) {
	return slices.Clone(tx.rows), nil
}

func (tx *memoryNumbersTx) heldByOther(_ context.Context, number string) (bool, error) {
	h, ok := tx.b.m.holders[number]
	return ok && h != tx.userID, nil
}

func (tx *memoryNumbersTx) put(_ context.Context, n PhoneNumber) error {
	if i := slices.IndexFunc(tx.rows, func(r PhoneNumber) bool { return r.ID == n.ID }); i >= 0 {
		tx.rows[i] = n
	} else {
		tx.rows = append(tx.rows, n)
	}
	return nil
}

func (tx *memoryNumbersTx) remove(_ context.Context, id string) error {
	tx.rows = slices.DeleteFunc(tx.rows, func(r PhoneNumber) bool { return r.ID == id })
	return nil
}

func (tx *memoryNumbersTx) setUser(_ context.Context, u User) error {
	if u.PhoneNumber == "" {
		u.Verified = false
	}
	tx.user = u
	return nil
}

// holdersOf returns the users holding any of numbers, each with its age
// (UserCreatedAt). The memory store, for tests and demos, scans: the
// users Set wrote are brought in line (reconcile) first, so a number the
// user API stored is found as the SQL stores' triggers would file it.
func (b memoryNumbersBackend) holdersOf(numbers []string) map[string]int64 {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	candidates := map[string]bool{}
	b.m.each(func(id, number string) {
		if slices.Contains(numbers, number) {
			candidates[id] = true
		}
	})
	for _, r := range b.rows.byID {
		if slices.Contains(numbers, r.PhoneNumber) {
			candidates[r.UserID] = true
		}
	}
	ages := map[string]int64{}
	for id := range candidates {
		b.reconcile(id)
		rows := b.userRows(id)
		if slices.ContainsFunc(rows, func(r PhoneNumber) bool { return slices.Contains(numbers, r.PhoneNumber) }) {
			ages[id] = UserCreatedAt(rows)
		}
	}
	return ages
}

func (b memoryNumbersBackend) findUsers(_ context.Context, q UserQuery) ([]string, error) {
	return pageUsers(b.holdersOf(q.PhoneNumbers), q), nil
}

func (b memoryNumbersBackend) countUsers(_ context.Context, numbers []string) (int, error) {
	return len(b.holdersOf(numbers)), nil
}
