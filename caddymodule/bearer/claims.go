package bearer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is what a valid token proved. Verify may return the same *Identity
// for many requests (it is cached): callers must treat it, Claims included,
// as read-only.
type Identity struct {
	// UserID is the user claim (Config.UserClaim).
	UserID string
	// Claims holds every claim of the token, for http.auth.user.<claim>.
	Claims map[string]any
	// IssuedAt is the iat claim, zero if absent.
	IssuedAt time.Time
	// AuthTime is the auth_time claim (OIDC), zero if absent.
	AuthTime time.Time
	// ExpiresAt is the exp claim, zero if absent.
	ExpiresAt time.Time
}

// SignInTime returns AuthTime, else IssuedAt (for max_auth_age). It is zero
// when the token carries neither.
func (id *Identity) SignInTime() time.Time {
	if !id.AuthTime.IsZero() {
		return id.AuthTime
	}
	return id.IssuedAt
}

// verifyCold runs the full check and returns the identity and how long it may
// be cached.
func (v *Verifier) verifyCold(ctx context.Context, token string) (*Identity, time.Time, error) {
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, time.Time{}, v.reason(t, err)
	}
	now := v.now()
	id := &Identity{Claims: claims}

	uid, _ := claims[v.userClaim].(string)
	if strings.TrimSpace(uid) == "" || strings.IndexFunc(uid, unicode.IsControl) >= 0 {
		return nil, time.Time{}, invalid("user claim missing, empty or not a string")
	}
	id.UserID = uid

	// exp is required: a token that never expires is a leaked token that
	// works forever. golang-jwt treats "exp": 0 as absent, so it is
	// checked here.
	rawExp, ok := claims["exp"]
	if !ok {
		return nil, time.Time{}, invalid("exp missing")
	}
	exp, ok := numericDate(rawExp)
	if !ok {
		return nil, time.Time{}, invalid("exp is not a number")
	}
	limit := exp.Add(v.leeway)
	if !now.Before(limit) {
		return nil, time.Time{}, invalid("token expired")
	}
	id.ExpiresAt = exp
	until := now.Add(cacheMaxAge)
	if limit.Before(until) {
		until = limit
	}
	if raw, ok := claims["iat"]; ok {
		if id.IssuedAt, ok = numericDate(raw); !ok {
			return nil, time.Time{}, invalid("iat is not a number")
		}
	}
	if raw, ok := claims["auth_time"]; ok {
		if id.AuthTime, ok = numericDate(raw); !ok {
			return nil, time.Time{}, invalid("auth_time is not a number")
		}
	}
	return id, until, nil
}

// reason maps a golang-jwt error to ErrInvalid with a fixed reason text, so
// no token content (claims, header values) reaches a log line.
func (v *Verifier) reason(t *jwt.Token, err error) error {
	var r *reasonError
	switch {
	case errors.As(err, &r):
		return invalid(r.text)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token")
	case t != nil && t.Method == nil && errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("algorithm unknown or missing")
	case t != nil && t.Method != nil && !slices.Contains(v.allowed, t.Method.Alg()):
		return invalid("algorithm not allowed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("token issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("iss or aud claim missing")
	case errors.Is(err, jwt.ErrInvalidType):
		return invalid("registered claim of the wrong type")
	default:
		return invalid("unverifiable token")
	}
}

// reasonError carries a fixed reason out of the keyfunc through golang-jwt.
type reasonError struct{ text string }

func (e *reasonError) Error() string { return e.text }

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalid, reason) }

// numericDate converts a JSON NumericDate, clamping absurd values so the
// conversion to int64 is defined on every platform.
func numericDate(raw any) (time.Time, bool) {
	f, ok := raw.(float64)
	if !ok || math.IsNaN(f) {
		return time.Time{}, false
	}
	const maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
	f = math.Max(math.Min(f, maxSeconds), -maxSeconds)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
