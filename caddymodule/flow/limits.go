package flow

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// Limit is a budget of Count events per fixed Window. A zero Count
// disables it.
type Limit struct {
	Count  int
	Window time.Duration
}

// Limits are the abuse budgets of SPEC §2 `limits`.
type Limits struct {
	PerNumber     Limit // SMS sends to one number
	PerUser       Limit // SMS sends for one user
	PerIP         Limit // SMS sends asked from one client IP
	Global        Limit // SMS budget of the whole deployment
	VerifyPerUser Limit // failed verify attempts across challenges
	VerifyPerIP   Limit // failed verify attempts from one client IP, whatever the user
}

// DefaultLimits are safe without tuning: tighter than Twilio Verify's
// 5 sends per number per 10 min over an hour, and far under NIST SP
// 800-63B's 100 consecutive failures.
var DefaultLimits = Limits{
	PerNumber:     Limit{5, time.Hour},
	PerUser:       Limit{10, time.Hour},
	PerIP:         Limit{30, time.Hour},
	Global:        Limit{1000, time.Minute},
	VerifyPerUser: Limit{20, time.Hour},
	VerifyPerIP:   Limit{60, time.Hour},
}

// counter is a fixed-window count kept in the cache: 8 bytes of window
// start (unix nanos) and 4 of count.
type counter struct {
	start time.Time
	count int
}

func decodeCounter(b []byte) (counter, bool) {
	if len(b) != 12 {
		return counter{}, false
	}
	return counter{
		start: time.Unix(0, int64(binary.BigEndian.Uint64(b))),
		count: int(binary.BigEndian.Uint32(b[8:])),
	}, true
}

func (c counter) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(c.start.UnixNano()))
	return binary.BigEndian.AppendUint32(b, uint32(c.count))
}

// take spends one unit of lim under key, or refuses with a RetryError
// telling when the window reopens. A refused take spends nothing.
func (s *Service) take(ctx context.Context, name, key string, lim Limit) error {
	if lim.Count <= 0 || key == "" {
		return nil
	}
	now := s.clock.Now()
	return s.cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
		c, ok := decodeCounter(old)
		if !found || !ok || now.Sub(c.start) >= lim.Window {
			c = counter{start: now}
		}
		if c.count >= lim.Count {
			return nil, 0, &RetryError{After: c.start.Add(lim.Window).Sub(now), Err: ErrRateLimited, Limit: name}
		}
		c.count++
		return c.encode(), c.start.Add(lim.Window).Sub(now), nil
	})
}

// check refuses when the budget under key is already spent, without
// spending it.
func (s *Service) check(ctx context.Context, name, key string, lim Limit) error {
	return s.checkAt(ctx, name, key, lim, s.clock.Now())
}

// checkAt is check at now.
func (s *Service) checkAt(ctx context.Context, name, key string, lim Limit, now time.Time) error {
	if lim.Count <= 0 || key == "" {
		return nil
	}
	b, err := s.cache.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, ok := decodeCounter(b)
	if ok && now.Sub(c.start) < lim.Window && c.count >= lim.Count {
		return &RetryError{After: c.start.Add(lim.Window).Sub(now), Err: ErrRateLimited, Limit: name}
	}
	return nil
}
