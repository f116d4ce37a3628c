package flow

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// The early refusals remember, for at most memoLife, what they refused
// (issue 13, the cost of saying no): a flood sends the same update again
// and again, and each refusal read four or five cache entries (the
// caller's budgets, the cooldown, the user) to learn what the last one
// learnt. A remembered refusal is checked with one read instead:
//
//   - refused by the cooldown (user and number): the cooldown itself is
//     read again, so a verify or an admin change on any instance, which
//     ends it (liftCooldown), is seen at once, and Retry-After is the
//     cooldown's own;
//   - refused by a spent budget of the caller before the number was
//     parsed (user and address): the user is read again from the read
//     cache, so a user who holds a verified number since is answered by
//     the rules (rule 4 needs the number).
//
// What a remembered refusal does not read again is the budgets: one given
// back meanwhile by another instance (a failed send) is seen up to
// memoLife later, and a refusal by the cooldown names the cooldown even
// if a budget has been spent since (both are 429; the budget's
// Retry-After would be the longer).
const memoLife = time.Second

// refusalMemo is a small sharded map of remembered refusals. It is only
// a shortcut: it holds at most memoShardSize refusals a shard and, full,
// forgets what it holds.
type refusalMemo struct {
	seed   maphash.Seed
	shards [memoShards]memoShard
}

const (
	memoShards    = 64
	memoShardSize = 1024
)

type memoShard struct {
	mu sync.Mutex
	m  map[memoKey]memoEntry
	_  [48]byte // one shard's lock per cache line
}

// memoKey is a refusal by the cooldown of the number typed as input, or
// by the caller's budgets (the address ip).
type memoKey struct {
	cooldown        bool
	user, input, ip string
}

type memoEntry struct {
	until  time.Time // remembered until: memoLife at most
	end    time.Time // when the refusal ends (a caller's budget)
	limit  string
	number string // input in E.164 (the cooldown's)
}

func newRefusalMemo() *refusalMemo { return &refusalMemo{seed: maphash.MakeSeed()} }

func (m *refusalMemo) shard(k memoKey) *memoShard {
	return &m.shards[maphash.String(m.seed, k.user)%memoShards]
}

// get returns k's refusal if one is remembered at now.
func (m *refusalMemo) get(k memoKey, now time.Time) (memoEntry, bool) {
	s := m.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return memoEntry{}, false
	}
	return e, true
}

// put remembers refused, a rate-limit refusal made at now, under k;
// number is the cooldown's.
func (m *refusalMemo) put(k memoKey, number string, refused error, now time.Time) {
	re, ok := AsRetry(refused)
	if !ok || !errors.Is(refused, ErrRateLimited) || re.After <= 0 {
		return
	}
	e := memoEntry{until: now.Add(min(memoLife, re.After)), end: now.Add(re.After), limit: re.Limit, number: number}
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= memoShardSize {
		for k, old := range s.m {
			if !now.Before(old.until) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= memoShardSize {
			clear(s.m)
		}
	}
	if s.m == nil {
		s.m = make(map[memoKey]memoEntry)
	}
	s.m[k] = e
}

// forget drops k's refusal: the rules, asked again, did not refuse.
func (m *refusalMemo) forget(k memoKey) {
	s := m.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// rememberedCallerRefusal is the refusal refuseBeforeNumber made of this
// caller less than memoLife ago, if the user still holds no verified
// number (read cache), else nil: the rules decide.
func (s *Service) rememberedCallerRefusal(ctx context.Context, userID, ip string, now time.Time) error {
	k := memoKey{user: userID, ip: ip}
	e, ok := s.memo.get(k, now)
	if !ok {
		return nil
	}
	if u, err := s.peekUser(ctx, userID); err != nil || u.Verified {
		s.memo.forget(k)
		return nil
	}
	return &RetryError{After: e.end.Sub(now), Err: ErrRateLimited, Limit: e.limit}
}

// rememberedCooldown is the cooldown refusal refuseEarly made of this
// user and this input less than memoLife ago, read again from the cache
// (it may have been lifted), else nil: the rules decide. It comes before
// the caller's budgets and the parse, which the refusal it remembers
// came after.
func (s *Service) rememberedCooldown(ctx context.Context, userID, input string, now time.Time) error {
	if s.held != nil {
		return nil // held numbers are read fresh: nothing is remembered
	}
	k := memoKey{cooldown: true, user: userID, input: input}
	e, ok := s.memo.get(k, now)
	if !ok {
		return nil
	}
	refused := s.cooldownRefusal(ctx, userID, e.number, now)
	if refused == nil || !errors.Is(refused, ErrRateLimited) {
		s.memo.forget(k)
		return nil
	}
	return refused
}

// rememberCooldown remembers refused if the cooldown of number, typed as
// input, made it.
func (s *Service) rememberCooldown(userID, input, number string, refused error, now time.Time) {
	if re, ok := AsRetry(refused); ok && s.held == nil && re.Limit == limitCooldown {
		s.memo.put(memoKey{cooldown: true, user: userID, input: input}, number, refused, now)
	}
}
