package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// userLocks serialises the calls of one user inside this process, so that
// concurrent updates of one user end in one consistent state, and the SMS
// a user receives last holds the code that works. Striped: a fixed set of
// mutexes, so memory does not grow with users; 4096 of them, because a
// send holds its stripe for as long as the provider takes to answer.
type userLocks struct {
	seed    maphash.Seed
	stripes [4096]sync.Mutex
	// waiting, set by tests, runs when a lock is held by another call
	// and this one is about to wait for it.
	waiting func(userID string)
}

func (l *userLocks) lock(userID string) func() {
	m := &l.stripes[maphash.String(l.seed, userID)%uint64(len(l.stripes))]
	if l.waiting != nil {
		if m.TryLock() {
			return m.Unlock
		}
		l.waiting(userID)
	}
	m.Lock()
	return m.Unlock
}

// Across instances (a cache other processes share, Deps.SharedCache), a
// user's calls are serialised by a lease in the cache as well: a call on
// one instance cannot read the user, then write over a change another
// instance made in between (SPEC §9). The lease is one key per user,
// written only when absent, holding a random token that only its holder
// deletes. A holder that dies frees it when it expires.
const (
	// leaseFor bounds how long a crashed instance can keep a user busy. It
	// exceeds the longest locked call: store writes and each SMS provider
	// are bounded by their timeouts, a failover chain by their sum.
	leaseFor = 2 * time.Minute
	// leaseWait is how long a call waits for another instance's call of
	// the same user before it gives up with ErrUnavailable (503, retry).
	leaseWait = 15 * time.Second
	// leaseRelease bounds the release, which runs even if the client left.
	leaseRelease = 5 * time.Second
)

// errLeaseHeld makes Update keep the lease it found.
var errLeaseHeld = errors.New("flow: user lease held")

func leaseKey(userID string) string { return "lk:" + userID }

// lockUser holds userID's lock, in this process and (with a shared cache)
// across instances, until the returned func runs.
func (s *Service) lockUser(ctx context.Context, userID string) (func(), error) {
	unlock := s.locks.lock(userID)
	if !s.sharedCache {
		return unlock, nil
	}
	token, err := s.randomID()
	if err != nil {
		unlock()
		return nil, err
	}
	key, wait := leaseKey(userID), 5*time.Millisecond
	deadline := time.Now().Add(leaseWait)
	for {
		err := s.cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
			if found {
				return nil, 0, errLeaseHeld
			}
			return []byte(token), leaseFor, nil
		})
		if err == nil {
			break
		}
		if !errors.Is(err, errLeaseHeld) {
			unlock()
			return nil, cacheErr(err)
		}
		if s.leaseWaiting != nil {
			s.leaseWaiting(userID)
		}
		if time.Now().After(deadline) {
			unlock()
			return nil, fmt.Errorf("%w: user busy on another instance", ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			unlock()
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	return func() {
		defer unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseRelease)
		defer cancel()
		err := s.cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
			if !found || !bytes.Equal(old, []byte(token)) {
				return nil, 0, errLeaseHeld // lapsed and taken by another: not ours to free
			}
			return nil, 0, nil
		})
		if err != nil && !errors.Is(err, errLeaseHeld) {
			s.logger.Warn("user lease not released; it lapses on its own")
		}
	}, nil
}
