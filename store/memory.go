package store

import (
	"context"
	"errors"
	"strconv"
	"sync"
)

// errEmptyUserID refuses a Set that would file a number under no one.
var errEmptyUserID = errors.New("store: empty user id")

// MemoryUsers is a Users kept in process memory, for tests and demos: it
// forgets everything at exit and is not shared between Caddy instances.
type MemoryUsers struct {
	mu      sync.RWMutex
	users   map[string]memoryUser // by user ID; only users with a number
	odd     map[string]User       // the users whose number does not pack (memoryUser)
	holders map[string]string     // verified number -> user ID
	// namespace is random per store: its data is this process's alone.
	namespace string
}

// memoryUser is a User without its ID, which is its key in users: an
// E.164 number packed in 8 bytes (packedNumber), its verified bit on top;
// a number that does not pack (the store takes any string) is kept in
// odd instead. The heap per open challenge counts every byte a user
// holds here (issue 13): a string and a bool took 24 bytes a user and
// the number's own allocation, this takes 8.
type memoryUser uint64

const memoryVerified = memoryUser(1) << 63

// packedNumber packs an E.164 number ("+", 1 to 15 digits, the first not
// 0) as its digits' value, which the first digit's not being 0 makes
// unambiguous; ok is false for anything else.
func packedNumber(number string) (memoryUser, bool) {
	if len(number) < 2 || len(number) > 16 || number[0] != '+' || number[1] == '0' {
		return 0, false
	}
	var v memoryUser
	for i := 1; i < len(number); i++ {
		c := number[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + memoryUser(c-'0')
	}
	return v, true
}

func (r memoryUser) number() string {
	return "+" + strconv.FormatUint(uint64(r&^memoryVerified), 10)
}

// get returns the stored user, or the zero User when there is none.
func (m *MemoryUsers) get(userID string) (User, bool) {
	if r, ok := m.users[userID]; ok {
		return User{ID: userID, PhoneNumber: r.number(), Verified: r&memoryVerified != 0}, true
	}
	if u, ok := m.odd[userID]; ok {
		return u, true
	}
	return User{}, false
}

// put stores u under u.ID.
func (m *MemoryUsers) put(u User) {
	m.drop(u.ID)
	r, ok := packedNumber(u.PhoneNumber)
	if !ok {
		m.odd[u.ID] = u
		return
	}
	if u.Verified {
		r |= memoryVerified
	}
	m.users[u.ID] = r
}

// drop forgets the user's number.
func (m *MemoryUsers) drop(userID string) {
	delete(m.users, userID)
	delete(m.odd, userID)
}

// each calls fn with every stored user's ID and number.
func (m *MemoryUsers) each(fn func(userID, number string)) {
	for id, r := range m.users {
		fn(id, r.number())
	}
	for id, u := range m.odd {
		fn(id, u.PhoneNumber)
	}
}

// NewMemoryUsers returns an empty in-memory user store.
func NewMemoryUsers() *MemoryUsers {
	ns, err := newNamespaceID()
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return &MemoryUsers{users: map[string]memoryUser{}, odd: map[string]User{}, holders: map[string]string{}, namespace: "memory:" + ns}
}

// Get returns the user's phone state; an unknown user has no number.
func (m *MemoryUsers) Get(ctx context.Context, userID string) (User, error) {
	m.mu.RLock()
	u, ok := m.get(userID)
	m.mu.RUnlock()
	if !ok {
		return User{ID: userID}, nil
	}
	return u, nil
}

// Set replaces the user's number. The holder check and the write happen
// under one lock, so two users can never both verify one number.
func (m *MemoryUsers) Set(ctx context.Context, u User) error {
	if u.ID == "" {
		return errEmptyUserID
	}
	if u.PhoneNumber == "" {
		u.Verified = false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u.Verified {
		if h, ok := m.holders[u.PhoneNumber]; ok && h != u.ID {
			return ErrPhoneInUse
		}
	}
	if old, ok := m.get(u.ID); ok && old.Verified {
		delete(m.holders, old.PhoneNumber)
	}
	if u.PhoneNumber == "" {
		m.drop(u.ID)
		return nil
	}
	m.put(u)
	if u.Verified {
		m.holders[u.PhoneNumber] = u.ID
	}
	return nil
}

// Close does nothing: there is nothing to release.
func (m *MemoryUsers) Close() error { return nil }

var _ Users = (*MemoryUsers)(nil)
