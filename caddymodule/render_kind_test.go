package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/store"
)

// kindByIs is kindOf as it was: errors.Is, row by row.
func kindByIs(err error) *errorKind {
	for i := range errorTable {
		if errors.Is(err, errorTable[i].is) {
			return &errorTable[i]
		}
	}
	return &internalError
}

// isAlias matches a sentinel through its own Is method, as some drivers'
// errors do.
type isAlias struct{ target error }

func (e isAlias) Error() string        { return "alias" }
func (e isAlias) Is(target error) bool { return target == e.target }

// sliceErr cannot be compared (==) with an error of its own type.
type sliceErr struct{ parts []string }

func (e sliceErr) Error() string { return fmt.Sprint(e.parts) }

// TestKindOfAgreesWithErrorsIs: the one-walk kindOf picks the row
// errors.Is row by row picks, for sentinels wrapped every way the rules,
// the stores and the drivers wrap them, including errors that match
// through an Is method, errors that match two rows, and links that
// cannot be compared.
func TestKindOfAgreesWithErrorsIs(t *testing.T) {
	var errs []error
	for _, row := range errorTable {
		s := row.is
		errs = append(errs, s,
			fmt.Errorf("wrapped: %w", s),
			fmt.Errorf("twice: %w", fmt.Errorf("once: %w", s)),
			&flow.RetryError{Err: s, Limit: "per_user"},
			fmt.Errorf("%w: bigcache set: %w", store.ErrUnavailable, s),
			fmt.Errorf("%w: then %w", s, store.ErrUnavailable),
			errors.Join(sliceErr{[]string{"x"}}, s),
			errors.Join(isAlias{s}, flow.ErrInvalidRequest),
			fmt.Errorf("alias: %w", isAlias{s}),
		)
	}
	errs = append(errs, &flow.CodeError{AttemptsLeft: 2}, syscall.ECONNREFUSED, context.Canceled,
		sliceErr{[]string{"a", "b"}}, errors.Join(sliceErr{nil}, sliceErr{nil}), errors.New("unknown"),
		fmt.Errorf("%w", syscall.EPIPE))
	for _, err := range errs {
		if got, want := kindOf(err), kindByIs(err); got != want {
			t.Errorf("%v: kindOf chose %q (%v), errors.Is %q (%v)", err, got.code, got.is, want.code, want.is)
		}
	}
}
