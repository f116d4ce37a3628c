package flow

import (
	"context"
	"net/netip"
	"time"
)

// budget is one send budget and the cache key of its counter.
type budget struct {
	name, key string
	lim       Limit
}

// sendBudgets lists the budgets one SMS to number spends.
func (s *Service) sendBudgets(userID, number, ip string) []budget {
	caller := s.callerBudgets(userID, ip)
	return s.withNumber(caller[:], number)
}

// withNumber is sendBudgets from the caller's budgets (callerBudgets):
// global, per_number, per_user, per_ip.
func (s *Service) withNumber(caller []budget, number string) []budget {
	return []budget{caller[0], {"per_number", "ln:" + number, s.cfg.Limits.PerNumber}, caller[1], caller[2]}
}

// callerBudgets are the send budgets that do not depend on the number:
// those of sendBudgets but per_number, in its order. An array, which a
// refusal keeps on its stack.
func (s *Service) callerBudgets(userID, ip string) [3]budget {
	l := s.cfg.Limits
	return [3]budget{
		{"global", "lg", l.Global},
		{"per_user", "lu:" + userID, l.PerUser},
		{"per_ip", ipKey(ip), l.PerIP},
	}
}

// checkBudgets refuses if any budget is spent, spending nothing: a refusal
// by one budget must not eat into the others.
func (s *Service) checkBudgets(ctx context.Context, budgets []budget) error {
	return s.checkBudgetsAt(ctx, budgets, s.clock.Now())
}

// checkBudgetsAt is checkBudgets at now: the early refusals read the
// clock once for all they check.
func (s *Service) checkBudgetsAt(ctx context.Context, budgets []budget, now time.Time) error {
	for _, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.checkAt(ctx, b.name, b.key, b.lim, now); err != nil {
			return cacheErr(err)
		}
	}
	return nil
}

// spendBudgets spends one unit of each budget, or none: when one refuses
// (another request spent it since checkBudgets) or fails, the units
// already taken are given back.
func (s *Service) spendBudgets(ctx context.Context, budgets []budget) error {
	for i, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.take(ctx, b.name, b.key, b.lim); err != nil {
			s.refundBudgets(ctx, budgets[:i])
			return cacheErr(err)
		}
	}
	return nil
}

// refundBudgets gives back the unit spendBudgets took, when what it paid
// for did not happen. Best effort, even if the client has gone: a failure
// leaves the unit spent.
func (s *Service) refundBudgets(ctx context.Context, budgets []budget) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	now := s.clock.Now()
	for _, b := range budgets {
		if b.key == "" || b.lim.Count <= 0 {
			continue
		}
		_ = s.cache.Update(ctx, b.key, func(old []byte, found bool) ([]byte, time.Duration, error) {
			c, ok := decodeCounter(old)
			if !found || !ok || c.count == 0 || now.Sub(c.start) >= b.lim.Window {
				return nil, 0, errNotMine // another window: nothing of ours to give back
			}
			c.count--
			return c.encode(), c.start.Add(b.lim.Window).Sub(now), nil
		})
	}
}

// ipKey is the per_ip counter of a client address. IPv6 clients are
// counted by their /64, the block one subscriber usually holds: counting
// single addresses would let anyone rotate through 2^64 of them.
func ipKey(ip string) string {
	if ip == "" {
		return ""
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "li:" + ip
	}
	addr = addr.Unmap()
	var buf [3 + len("ffff:ffff:ffff:ffff::/64")]byte
	key := append(buf[:0], "li:"...)
	if addr.Is6() {
		return string(netip.PrefixFrom(addr, 64).Masked().AppendTo(key))
	}
	return string(addr.AppendTo(key)) // one allocation, where "li:"+addr.String() made two
}
