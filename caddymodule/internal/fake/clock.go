// Package fake holds test doubles shared by the packages' tests: Clock
// (clock.go), a clock that moves only when told to, and Sender (sender.go),
// an sms.Sender that records what it is given and fails on demand.
package fake

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is a clock that moves only when told to, for tests: Now stands
// still until Advance, and the timers set with After and AfterFunc fire
// during Advance, never on their own. It is safe for concurrent use.
//
// It has the methods of the clocks it stands in for (Now for
// caddymodule/flow and bearer's Config.Now, Now and AfterFunc for the
// events dispatcher), and
// Pending and Wait let a test see what waits on it: a goroutine that sets a
// timer each time it goes idle is idle while that timer is pending.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	timers  []*timer
	changed chan struct{} // closed at the next change of timers; nil when no one waits
}

type timer struct {
	seq      uint64
	d        time.Duration // as set
	deadline time.Time
	f        func()         // AfterFunc
	c        chan time.Time // After
}

// NewClock returns a clock at now. The zero Clock is at the zero time.
func NewClock(now time.Time) *Clock {
	return &Clock{now: now}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d, then fires every timer due by the
// new time, soonest first: an AfterFunc's function is called in the
// caller's goroutine, and has returned when Advance returns; an After
// channel receives the timer's deadline. A timer set for d <= 0 is due at
// the next Advance, Advance(0) included.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	c.timers = slices.DeleteFunc(c.timers, func(t *timer) bool {
		if t.deadline.After(c.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	if len(due) > 0 {
		c.changedLocked()
	}
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int {
		return cmp.Or(a.deadline.Compare(b.deadline), cmp.Compare(a.seq, b.seq))
	})
	for _, t := range due {
		if t.f != nil {
			t.f()
		} else {
			t.c <- t.deadline
		}
	}
}

// After returns a channel that receives the time once the clock has been
// advanced by d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.add(d, nil, ch)
	return ch
}

// AfterFunc calls f, during the Advance that brings the clock d further,
// unless stop is called first. stop reports whether it prevented the call.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	t := c.add(d, f, nil)
	return func() bool { return c.stop(t) }
}

func (c *Clock) add(d time.Duration, f func(), ch chan time.Time) *timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{seq: c.seq, d: d, deadline: c.now.Add(d), f: f, c: ch}
	c.timers = append(c.timers, t)
	c.changedLocked()
	return t
}

func (c *Clock) stop(t *timer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	c.changedLocked()
	return true
}

// Pending returns the durations, as they were set, of the timers that
// have neither fired nor been stopped, in the order they were set.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.d
	}
	return out
}

// PendingFor returns how many pending timers were set for d.
func (c *Clock) PendingFor(d time.Duration) int {
	n := 0
	for _, p := range c.Pending() {
		if p == d {
			n++
		}
	}
	return n
}

// Wait blocks until cond returns true: it is asked at once, then again
// each time a timer is set, fires or is stopped. It returns ctx's error if
// ctx ends first. cond may call the clock's methods.
func (c *Clock) Wait(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// changedLocked wakes the Waits.
func (c *Clock) changedLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}
