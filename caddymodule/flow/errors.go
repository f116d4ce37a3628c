package flow

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// Outcomes of the rules. The HTTP layer maps each to one status and error
// code in one place; match them with errors.Is.
var (
	ErrNoPending       = errors.New("no pending verification")
	ErrInvalidCode     = errors.New("invalid code")
	ErrExpired         = errors.New("code expired")
	ErrTooManyAttempts = errors.New("too many attempts")
	ErrRateLimited     = errors.New("rate limited")
	ErrInvalidRequest  = errors.New("invalid request")
	ErrPhoneInUse      = store.ErrPhoneInUse
	ErrUnavailable     = store.ErrUnavailable
	ErrDeliveryFailed  = sms.ErrDeliveryFailed
)

// CodeError is a wrong code; AttemptsLeft is 0 on the last allowed try.
type CodeError struct{ AttemptsLeft int }

func (e *CodeError) Error() string {
	return fmt.Sprintf("invalid code: %d attempts left", e.AttemptsLeft)
}
func (e *CodeError) Unwrap() error { return ErrInvalidCode }

// RetryError says how long to wait before the same call can succeed
// (a limit, the resend cooldown, or a store outage).
type RetryError struct {
	After time.Duration
	Err   error
	// Limit names the budget that refused ("per_number", "resend_after", …);
	// it goes to metrics and the debug log, never a number or user.
	Limit string
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (%s): retry after %s", e.Err, e.Limit, e.After)
}
func (e *RetryError) Unwrap() error { return e.Err }

// AsRetry is errors.As for a *RetryError, without its reflection when
// err is one, as the rules' refusals are: a flood's refusal asks three
// times (the answer, the metrics, the memo).
func AsRetry(err error) (*RetryError, bool) {
	if re, ok := err.(*RetryError); ok {
		return re, re != nil
	}
	var re *RetryError
	return re, errors.As(err, &re)
}

// RetryAfter returns the wait carried by err, rounded up to whole seconds
// (at least 1), and whether err carried one.
func RetryAfter(err error) (int, bool) {
	re, ok := AsRetry(err)
	if !ok {
		return 0, false
	}
	s := int((re.After + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s, true
}

// cacheErr passes the rules' own outcomes through and turns any other
// cache failure into ErrUnavailable.
func cacheErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ErrNoPending, ErrExpired, ErrTooManyAttempts, ErrRateLimited, ErrUnavailable, ErrInvalidCode} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: cache: %w", ErrUnavailable, err)
}
