package bearer

import (
	"context"
	"encoding/binary"
	"encoding/json"
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
// for many requests (it is cached): callers must treat it as read-only.
//
// It is compact because the verified-token cache keeps one per token (a
// deployment may hold a million): 48 bytes and one string that packs the
// string claims and, of the claims of other types, only those
// Config.KeepClaims names; the user ID is a slice of that string.
type Identity struct {
	// UserID is the user claim (Config.UserClaim).
	UserID string
	// strs packs the claims kept as name, value pairs, each a uvarint
	// length and the bytes (a claim may hold any byte, NUL included). A
	// name starting with 0xFF, which no decoded JSON string holds (they
	// are UTF-8), marks a kept claim of another type: its value is JSON.
	strs string
	// signIn is auth_time, else iat, as a NumericDate; NaN when absent.
	signIn float64
	// check is the second 64 bits of the token's SHA-256 (tokenCache).
	check uint64
}

// nonString marks the name of a kept claim that is not a string.
const nonString = "\xff"

// SignInTime returns the auth_time claim (OIDC), else iat (for
// max_auth_age). It is zero when the token carries neither.
func (id *Identity) SignInTime() time.Time { return dateOf(id.signIn) }

// StringClaims calls yield with each string claim of the token (for
// http.auth.user.<claim>), until it returns false.
func (id *Identity) StringClaims(yield func(name, value string) bool) {
	for rest := id.strs; rest != ""; {
		var name, value string
		name, rest = unpack(rest)
		value, rest = unpack(rest)
		if strings.HasPrefix(name, nonString) {
			continue
		}
		if !yield(name, value) {
			return
		}
	}
}

// Claim returns a string claim, or a claim of another type that
// Config.KeepClaims names (decoded afresh, as JSON decodes it); other
// claims are not kept.
func (id *Identity) Claim(name string) (any, bool) {
	for rest := id.strs; rest != ""; {
		var n, value string
		n, rest = unpack(rest)
		value, rest = unpack(rest)
		if n == name {
			return value, true
		}
		if strings.HasPrefix(n, nonString) && n[len(nonString):] == name {
			var v any
			if json.Unmarshal([]byte(value), &v) != nil {
				return nil, false // it was marshalled by newIdentity: cannot happen
			}
			return v, true
		}
	}
	return nil, false
}

// pack appends s with its uvarint length.
func pack(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }

// unpack reads what pack wrote; strs is only ever written by pack.
func unpack(b string) (string, string) {
	n, shift, i := 0, 0, 0
	for ; b[i] >= 0x80; i++ {
		n |= int(b[i]&0x7f) << shift
		shift += 7
	}
	n |= int(b[i]) << shift
	b = b[i+1:]
	return b[:n], b[n:]
}

// newIdentity keeps of claims what the callers read: every string claim
// and the claims named in keep.
func newIdentity(claims jwt.MapClaims, userClaim string, keep []string) *Identity {
	// Sorted names: the same token packs the same way every time.
	names := make([]string, 0, len(claims))
	for k, v := range claims {
		if _, ok := v.(string); ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b []byte
	userAt, userLen := -1, 0
	for _, k := range names {
		s := claims[k].(string)
		b = pack(b, k)
		if k == userClaim {
			userAt, userLen = len(b)+len(binary.AppendUvarint(nil, uint64(len(s)))), len(s)
		}
		b = pack(b, s)
	}
	for _, k := range keep {
		v, ok := claims[k]
		if _, isString := v.(string); !ok || isString {
			continue
		}
		if j, err := json.Marshal(v); err == nil { // it came from JSON
			b = pack(pack(b, nonString+k), string(j))
		}
	}
	id := &Identity{strs: string(b), signIn: math.NaN()}
	if userAt >= 0 {
		id.UserID = id.strs[userAt : userAt+userLen] // shares strs' bytes
	}
	return id
}

// dateOf converts a NumericDate kept by numericDate; NaN is absent.
func dateOf(f float64) time.Time {
	if math.IsNaN(f) {
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// verifyCold runs the full check and returns the identity and how long it may
// be cached.
func (v *Verifier) verifyCold(ctx context.Context, token string) (*Identity, time.Time, error) {
	if !mayBeJWT(token) {
		return nil, time.Time{}, errMalformed
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, time.Time{}, v.reason(t, err)
	}
	now := v.now()

	uid, _ := claims[v.userClaim].(string)
	if strings.TrimSpace(uid) == "" || strings.IndexFunc(uid, unicode.IsControl) >= 0 {
		return nil, time.Time{}, invalid("user claim missing, empty or not a string")
	}

	// exp is required: a token that never expires is a leaked token that
	// works forever. golang-jwt treats "exp": 0 as absent, so it is
	// checked here.
	rawExp, ok := claims["exp"]
	if !ok {
		return nil, time.Time{}, invalid("exp missing")
	}
	expN, ok := numericDate(rawExp)
	if !ok {
		return nil, time.Time{}, invalid("exp is not a number")
	}
	exp := dateOf(expN)
	limit := exp.Add(v.leeway)
	if !now.Before(limit) {
		return nil, time.Time{}, errExpired
	}
	until := now.Add(cacheMaxAge)
	if limit.Before(until) {
		until = limit
	}
	iat, authTime := math.NaN(), math.NaN()
	if raw, ok := claims["iat"]; ok {
		if iat, ok = numericDate(raw); !ok {
			return nil, time.Time{}, invalid("iat is not a number")
		}
	}
	if raw, ok := claims["auth_time"]; ok {
		if authTime, ok = numericDate(raw); !ok {
			return nil, time.Time{}, invalid("auth_time is not a number")
		}
	}
	id := newIdentity(claims, v.userClaim, v.keepClaims)
	id.signIn = iat
	if !math.IsNaN(authTime) {
		id.signIn = authTime
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
		return errMalformed
	case t != nil && t.Method == nil && errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("algorithm unknown or missing")
	case t != nil && t.Method != nil && !slices.Contains(v.allowed, t.Method.Alg()):
		return invalid("algorithm not allowed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
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

// The refusals a token-stuffing flood meets most, made once.
var (
	errMalformed    = invalid("malformed token")
	errBadSignature = invalid("bad signature")
	errExpired      = invalid("token expired")
)

// mayBeJWT is false for a string golang-jwt would refuse as malformed
// whatever its contents: not three segments, or a header whose first
// byte, decoded, cannot start a JSON object ('{' or JSON whitespace, the
// first base64url character being 'e', 'I', 'C' or 'D'; a '.' first
// is an empty header, malformed too). Junk tokens of
// a flood are refused without golang-jwt's parse and its errors (issue
// 13: the cost of saying no).
func mayBeJWT(token string) bool {
	if strings.Count(token, ".") != 2 {
		return false
	}
	// Go's base64 decoder skips '\r' and '\n' (found by FuzzMayBeJWT).
	token = strings.TrimLeft(token, "\r\n")
	if token == "" {
		return false
	}
	switch token[0] {
	case 'e', 'I', 'C', 'D':
		return true
	}
	return false
}

// numericDate reads a JSON NumericDate, clamping absurd values so the
// conversion to int64 is defined on every platform.
func numericDate(raw any) (float64, bool) {
	f, ok := raw.(float64)
	if !ok || math.IsNaN(f) {
		return 0, false
	}
	const maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
	return math.Max(math.Min(f, maxSeconds), -maxSeconds), true
}
