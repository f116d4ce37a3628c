package flow

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddy-phone/caddy-phone/store"
)

// NumberVerifyRequest is a verify that names the number the code went to
// and no user (Supabase's POST /auth/v1/verify, SPEC §6).
type NumberVerifyRequest struct {
	PhoneNumber string // as typed; normalised
	Code        string
	ClientIP    string // for verify_per_ip
}

// NumberResendRequest is a resend that names the number and no user
// (Supabase's POST /auth/v1/resend).
type NumberResendRequest struct {
	PhoneNumber string
	Locale      string
	ClientIP    string // for per_ip
}

var errNoNumberIndex = errors.New("flow: the number index is off (Config.IndexNumbers)")

// VerifyByNumber verifies the challenge the number's token-less index
// entry reaches: that of the user whose update to the number came last,
// if it is still open and for that number. It is guarded as Descope's
// token-less verify is (VerifyRequest.Tokenless): its own wrong-code
// budget per challenge and verify_per_ip, never the owner's attempts or
// verify_per_user; a call that reaches nothing spends verify_per_ip too.
func (s *Service) VerifyByNumber(ctx context.Context, r NumberVerifyRequest) (store.User, error) {
	if !s.cfg.IndexNumbers {
		return store.User{}, errNoNumberIndex
	}
	if r.Code == "" || len(r.Code) > 32 {
		return store.User{}, fmt.Errorf("%w: code must be 1..32 characters", ErrInvalidRequest)
	}
	number, err := s.numbers.Normalize(r.PhoneNumber)
	if err != nil {
		return store.User{}, err
	}
	ipFailKey := ""
	if r.ClientIP != "" {
		ipFailKey = "v" + ipKey(r.ClientIP)
	}
	lim := s.cfg.Limits.VerifyPerIP
	if err := s.check(ctx, "verify_per_ip", ipFailKey, lim); err != nil {
		return store.User{}, cacheErr(err)
	}
	key := numberIndexKey(number)
	userID, err := s.indexedUser(ctx, key)
	if errors.Is(err, ErrNoPending) {
		if lerr := s.take(ctx, "verify_per_ip", ipFailKey, lim); lerr != nil && !errors.Is(lerr, ErrRateLimited) {
			return store.User{}, cacheErr(lerr)
		}
		return store.User{}, ErrNoPending
	}
	if err != nil {
		return store.User{}, err
	}
	if s.indexFound != nil {
		s.indexFound(userID)
	}
	return s.Verify(ctx, VerifyRequest{UserID: userID, Code: r.Code, PhoneNumber: number, ClientIP: r.ClientIP,
		Tokenless: true, index: key})
}

// ResendByNumber sends a new code for the challenge the number's index
// entry reaches, as Resend does for its user, but spends only the
// number's and the caller's address's budgets (per_number, per_ip, and
// global), not the owner's per_user. A call that reaches nothing answers
// ErrNoPending and spends per_ip.
func (s *Service) ResendByNumber(ctx context.Context, r NumberResendRequest) (ResendResult, error) {
	if !s.cfg.IndexNumbers {
		return ResendResult{}, errNoNumberIndex
	}
	number, err := s.numbers.Normalize(r.PhoneNumber)
	if err != nil {
		return ResendResult{}, err
	}
	perIP := []budget{{"per_ip", ipKey(r.ClientIP), s.cfg.Limits.PerIP}}
	if err := s.checkBudgets(ctx, perIP); err != nil {
		return ResendResult{}, err
	}
	key := numberIndexKey(number)
	userID, err := s.indexedUser(ctx, key)
	if err == nil {
		if s.indexFound != nil {
			s.indexFound(userID)
		}
		var res ResendResult
		res, err = s.Resend(ctx, ResendRequest{UserID: userID, Locale: r.Locale, ClientIP: r.ClientIP,
			number: number, index: key, tokenless: true})
		if !errors.Is(err, ErrNoPending) {
			return res, err
		}
	}
	if errors.Is(err, ErrNoPending) {
		// A poll for who has a code open still costs the caller.
		if lerr := s.spendBudgets(ctx, perIP); lerr != nil && !errors.Is(lerr, ErrRateLimited) {
			return ResendResult{}, lerr
		}
	}
	return ResendResult{}, err
}
