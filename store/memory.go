package store

import (
	"context"
	"errors"
	"sync"
)

// errEmptyUserID refuses a Set that would file a number under no one.
var errEmptyUserID = errors.New("store: empty user id")

// MemoryUsers is a Users kept in process memory, for tests and demos: it
// forgets everything at exit and is not shared between Caddy instances.
type MemoryUsers struct {
	mu      sync.RWMutex
	users   map[string]memoryUser // by user ID; only users with a number
	holders map[string]string     // verified number -> user ID
	// namespace is random per store: its data is this process's alone.
	namespace string
}

// memoryUser is a User without its ID, which is its key in users: one
// string header fewer per user (it shows in the heap per open challenge).
type memoryUser struct {
	number   string
	verified bool
}

// get returns the stored user, or the zero User when there is none.
func (m *MemoryUsers) get(userID string) (User, bool) {
	r, ok := m.users[userID]
	if !ok {
		return User{}, false
	}
	return User{ID: userID, PhoneNumber: r.number, Verified: r.verified}, true
}

// put stores u under u.ID.
func (m *MemoryUsers) put(u User) {
	m.users[u.ID] = memoryUser{number: u.PhoneNumber, verified: u.Verified}
}

// NewMemoryUsers returns an empty in-memory user store.
func NewMemoryUsers() *MemoryUsers {
	ns, err := newNamespaceID()
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return &MemoryUsers{users: map[string]memoryUser{}, holders: map[string]string{}, namespace: "memory:" + ns}
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
		delete(m.users, u.ID)
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
