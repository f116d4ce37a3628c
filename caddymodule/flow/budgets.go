package flow

import (
	"context"
	"net/netip"
)

// budget is one send budget and the cache key of its counter.
type budget struct {
	name, key string
	lim       Limit
}

// sendBudgets lists the budgets one SMS to number spends.
func (s *Service) sendBudgets(userID, number, ip string) []budget {
	l := s.cfg.Limits
	return []budget{
		{"global", "lg", l.Global},
		{"per_number", "ln:" + number, l.PerNumber},
		{"per_user", "lu:" + userID, l.PerUser},
		{"per_ip", ipKey(ip), l.PerIP},
	}
}

// checkBudgets refuses if any budget is spent, spending nothing: a refusal
// by one budget must not eat into the others.
func (s *Service) checkBudgets(ctx context.Context, budgets []budget) error {
	for _, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.check(ctx, b.name, b.key, b.lim); err != nil {
			return cacheErr(err)
		}
	}
	return nil
}

// spendBudgets spends one unit of each budget.
func (s *Service) spendBudgets(ctx context.Context, budgets []budget) error {
	for _, b := range budgets {
		if b.key == "" {
			continue
		}
		if err := s.take(ctx, b.name, b.key, b.lim); err != nil {
			return cacheErr(err)
		}
	}
	return nil
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
	if addr.Is6() {
		return "li:" + netip.PrefixFrom(addr, 64).Masked().String()
	}
	return "li:" + addr.String()
}
