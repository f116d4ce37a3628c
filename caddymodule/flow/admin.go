package flow

// LockUser holds the user's lock until the returned func runs, for a
// writer outside the rules (the admin endpoints) that must not interleave
// with an update or verify of the same user. Call no Service method for
// that user while holding it.
func (s *Service) LockUser(userID string) func() { return s.locks.lock(userID) }
