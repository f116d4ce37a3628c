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
}

func (l *userLocks) lock(userID string) func() {
	m := &l.stripes[maphash.String(l.seed, userID)%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}
