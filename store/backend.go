package store

import "context"

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
	// Local: reads cost no I/O and every writer is in this process, so
	// the handler keeps no read cache in front of the store.
	Local bool
}

// Backend describes the memory store: users and numbers, no outbox.
func (m *MemoryUsers) Backend() Backend {
	return Backend{Users: m, Local: true, Numbers: func(context.Context) (PhoneNumbers, error) {
		return &numbersService{b: m.numbersBackend()}, nil
	}}
}

// Backend describes the sqlite store: users, numbers and an outbox.
func (s *SQLiteUsers) Backend() Backend {
	return Backend{Users: s,
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
	return Backend{Users: s,
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
// number per user and no outbox.
func (h *HTTPUsers) Backend() Backend { return Backend{Users: h} }

// ForgetOnWrite wraps pn so that each of its writes drops the user's
// entry in this read cache: GET /phone and the headers show an admin
// change at once.
func (c *CachedUsers) ForgetOnWrite(pn PhoneNumbers) PhoneNumbers {
	return forgetfulNumbers{pn, []*CachedUsers{c}}
}
