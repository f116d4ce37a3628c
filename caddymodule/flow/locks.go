package flow

import (
	"hash/maphash"
	"sync"
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
