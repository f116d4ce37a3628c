package flow

import (
	"fmt"
	"time"
)

// The bounds of the settings, each checked by one function with one
// message: the Caddyfile parser calls them (so `caddy adapt` names the
// line) and New calls them again for JSON configs.

// MaxLimitWindow bounds limit windows by the caches' life window, so a
// counter cannot outlive its entry.
const MaxLimitWindow = 24 * time.Hour

// CheckCodeLength checks `otp length`.
func CheckCodeLength(n int) error {
	if n < 4 || n > 10 {
		return fmt.Errorf("otp: length must be 4..10 digits, got %d", n)
	}
	return nil
}

// CheckTTL checks `otp ttl`: an entry lives twice its ttl, in caches whose
// entries last at most a day.
func CheckTTL(d time.Duration) error {
	if d < time.Second || d > MaxTTL {
		return fmt.Errorf("otp: ttl must be between 1s and %s, got %s", MaxTTL, d)
	}
	return nil
}

// CheckMaxAttempts checks `otp max_attempts`.
func CheckMaxAttempts(n int) error {
	if n < 1 {
		return fmt.Errorf("otp: max_attempts must be at least 1, got %d", n)
	}
	return nil
}

// CheckResendAfter checks `otp resend_after`.
func CheckResendAfter(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("otp: resend_after must be >= 0, got %s", d)
	}
	return nil
}

// Check checks the budget named name (`limits <name> <count> <window>`).
func (l Limit) Check(name string) error {
	if l.Count < 0 || (l.Count > 0 && l.Window <= 0) || l.Window > MaxLimitWindow {
		return fmt.Errorf("limits: %s: need a count >= 0 and a window in (0, %s]", name, MaxLimitWindow)
	}
	return nil
}

// Check checks every bound of cfg; New calls it too.
func (cfg Config) Check() error {
	errs := []error{CheckCodeLength(cfg.CodeLength), CheckTTL(cfg.TTL), CheckMaxAttempts(cfg.MaxAttempts),
		CheckResendAfter(cfg.ResendAfter)}
	for _, name := range LimitNames {
		errs = append(errs, cfg.Limits.Slot(name).Check(name))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// LimitNames are the budgets' names in `limits`.
var LimitNames = []string{"per_number", "per_user", "per_ip", "verify_per_user", "verify_per_ip", "global"}

// Slot is the budget named name, nil for an unknown name.
func (l *Limits) Slot(name string) *Limit {
	switch name {
	case "per_number":
		return &l.PerNumber
	case "per_user":
		return &l.PerUser
	case "per_ip":
		return &l.PerIP
	case "verify_per_user":
		return &l.VerifyPerUser
	case "verify_per_ip":
		return &l.VerifyPerIP
	case "global":
		return &l.Global
	}
	return nil
}

// LongestEntryLife is the longest ttl the rules give a cache entry: the
// challenge (2 × ttl), a limit counter (its window), the resend cooldown
// and the user lease. A cache that forgets entries after a life window
// (`cache bigcache`) needs at least this one.
func (cfg Config) LongestEntryLife() time.Duration {
	l := cfg.Limits
	return max(2*cfg.TTL, min(cfg.ResendAfter, cfg.TTL), leaseFor, l.PerNumber.Window, l.PerUser.Window,
		l.PerIP.Window, l.Global.Window, l.VerifyPerUser.Window, l.VerifyPerIP.Window)
}
