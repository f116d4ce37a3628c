package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Backend says what a user-store backend can do. The Caddy side asks for
// it once, when it opens the store, instead of guessing from types; a nil
// func is a thing the backend cannot do.
type Backend struct {
	// Users is the store itself. Required.
	Users Users
	// Numbers opens the per-number view the admin endpoints use (several
	// numbers per user, each with an ID), creating its tables when
	// needed. Nil: the backend keeps one number per user.
	Numbers func(ctx context.Context) (PhoneNumbers, error)
	// Outbox opens the events outbox of stream (a receiver) in the
	// store's own database, creating its table when needed; from then on
	// the store's EventSetter writes a change and its event in one
	// transaction. Nil: the backend keeps no outbox.
	Outbox func(ctx context.Context, stream string) (Outbox, error)
	// Namespace names the data the store reaches, not the config that
	// reaches it: sqlite and postgres keep a random id in the database
	// (written on first start), so every DSN or path that reaches one
	// database gives the same Namespace and two databases never do. Stores
	// with one Namespace share challenges and counters in a shared cache.
	// Empty: the backend cannot tell, and the handler derives one from its
	// config.
	Namespace string
	// Local: reads cost no I/O and every writer is in this process, so
	// the handler keeps no read cache in front of the store.
	Local bool
}

// Backend describes the memory store: users and numbers, no outbox.
func (m *MemoryUsers) Backend() Backend {
	return Backend{Users: m, Local: true, Namespace: m.namespace, Numbers: func(context.Context) (PhoneNumbers, error) {
		return &numbersService{b: m.numbersBackend()}, nil
	}}
}

// Backend describes the sqlite store: users, numbers and an outbox.
func (s *SQLiteUsers) Backend() Backend {
	return Backend{Users: s, Namespace: s.namespace,
		Numbers: func(ctx context.Context) (PhoneNumbers, error) {
			nb, err := s.openNumbers(ctx)
			if err != nil {
				return nil, err
			}
			return &numbersService{b: nb}, nil
		},
		Outbox: func(ctx context.Context, stream string) (Outbox, error) { return s.Outbox(ctx, stream) },
	}
}

// Backend describes the postgres store: users, numbers (one per user when
// a legacy users table is mapped) and an outbox.
func (s *PostgresUsers) Backend() Backend {
	return Backend{Users: s, Namespace: s.namespace,
		Numbers: func(ctx context.Context) (PhoneNumbers, error) {
			nb, err := s.openNumbers(ctx)
			if err != nil {
				return nil, err
			}
			return &numbersService{b: nb, single: s.legacy != nil}, nil
		},
		Outbox: func(ctx context.Context, stream string) (Outbox, error) { return s.Outbox(ctx, s.schema, stream) },
	}
}

// Backend describes the http store: the legacy app's API keeps one
// number per user and no outbox. It has no Namespace: nothing in the app's
// API names its data, so the handler derives one from the config.
func (h *HTTPUsers) Backend() Backend { return Backend{Users: h} }

// ForgetOnWrite wraps pn so that each of its writes drops the user's
// entry in this read cache: GET /phone and the headers show an admin
// change at once.
func (c *CachedUsers) ForgetOnWrite(pn PhoneNumbers) PhoneNumbers {
	return forgetfulNumbers{pn, []*CachedUsers{c}}
}

// newNamespaceID is the id a store writes in its database on first start:
// 16 random bytes, hex.
func newNamespaceID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
