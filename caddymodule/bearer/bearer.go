// Package bearer validates "Authorization: Bearer <jwt>" header values for
// the phone module (SPEC §3). It knows nothing of Caddy: the Caddy glue builds
// a Config from the `jwt { }` block, calls New once per provisioned handler and
// Verify on each request.
//
// Verified tokens are remembered, keyed by the exact token string, so a client
// that sends the same token on every request pays for the signature check once
// (see Verify).
package bearer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// MaxTokenBytes is the largest credential Verify will parse; longer ones are
// refused before any decoding, so a huge header costs nothing.
const MaxTokenBytes = 8 << 10

const (
	// cacheMaxAge bounds how long a verified token is trusted without a
	// fresh signature check (a key removed from the JWKS stops working by then).
	cacheMaxAge = 5 * time.Minute
	// defaultCacheEntries bounds the verified-token cache of one Verifier.
	defaultCacheEntries = 100_000
	// defaultHTTPTimeout bounds one JWKS fetch.
	defaultHTTPTimeout = 5 * time.Second
	// defaultJWKSRefresh is how often the JWKS is refetched in the background.
	defaultJWKSRefresh = 10 * time.Minute
	// jwksMinRefetch rate-limits refetches triggered by unknown kids, so random
	// kids cannot turn Verify into a request flood against the IdP.
	jwksMinRefetch = 10 * time.Second
)

// ErrMissing means the header held no bearer credential (absent, empty,
// another scheme, or "Bearer" with nothing after it).
var ErrMissing = errors.New("bearer: no bearer token")

// ErrInvalid means a bearer credential was presented and rejected. Errors
// returned by Verify wrap it with the reason ("bearer: invalid token: expired");
// the reason never quotes the token.
var ErrInvalid = errors.New("bearer: invalid token")

// Config is the `jwt { }` block of SPEC §2, with Caddy placeholders already
// replaced.
type Config struct {
	// Secret is the HS256/384/512 shared secret.
	Secret string
	// PublicKeyFiles are PEM files holding RSA, ECDSA or Ed25519 public keys
	// ("PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" blocks).
	PublicKeyFiles []string
	// JWKSURL is fetched with a timeout, cached, refreshed every JWKSRefresh
	// and on an unknown kid (at most once per 10 s); the last good set is kept
	// when a fetch fails.
	JWKSURL string
	// Algorithms is the allow-list. Default: the families of the keys given
	// (HS* for Secret, RS*+PS* for RSA keys, the ES* of each ECDSA key's curve,
	// EdDSA for Ed25519 keys, all asymmetric ones for JWKSURL).
	Algorithms []string
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must share one value with the aud claim.
	Audience []string
	// UserClaim names the claim holding the user ID (default "sub"); it must
	// be a non-empty string.
	UserClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// ProjectID, when set, also accepts "Bearer <ProjectID>:<jwt>" (Descope).
	ProjectID string
	// HTTPClient fetches the JWKS; default a client with a 5 s timeout.
	HTTPClient *http.Client
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time

	// JWKSRefresh is the background refresh period of JWKSURL (default 10m).
	JWKSRefresh time.Duration
	// CacheEntries bounds the verified-token cache (default 100 000);
	// negative disables it.
	CacheEntries int
	// Logger receives JWKS fetch outcomes (default: none).
	Logger *zap.Logger
}

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

// Verifier checks bearer tokens against one Config. It is safe for
// concurrent use.
type Verifier struct {
	secret    []byte // nil unless Secret is set; only ever handed out for HS*
	static    []pubKey
	jwks      *jwksSource // nil without JWKSURL
	allowed   []string
	parser    *jwt.Parser
	userClaim string
	leeway    time.Duration
	projectID string
	now       func() time.Time
	cache     *tokenCache // nil when disabled
}

// New checks cfg, loads the PEM files and, with JWKSURL, starts the first
// fetch and a refresher goroutine that stops when ctx is done. Errors name the
// Caddyfile field at fault.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{
		userClaim: cfg.UserClaim,
		leeway:    cfg.Leeway,
		projectID: cfg.ProjectID,
		now:       cfg.Now,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.userClaim == "" {
		v.userClaim = "sub"
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("jwt: leeway: must not be negative")
	}
	if strings.ContainsAny(cfg.ProjectID, ": \t") {
		return nil, errors.New("jwt: project_id: must not contain ':' or spaces")
	}
	for _, a := range cfg.Audience {
		if a == "" {
			return nil, errors.New("jwt: audience: empty value")
		}
	}
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
	}
	for _, f := range cfg.PublicKeyFiles {
		keys, err := loadPEMFile(f)
		if err != nil {
			return nil, fmt.Errorf("jwt: public_key_file: %w", err)
		}
		v.static = append(v.static, keys...)
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("jwt: jwks_url: must be an absolute http(s) URL")
		}
	}
	if v.secret == nil && len(v.static) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("jwt: no key: set secret, public_key_file or jwks_url")
	}

	allowed, err := v.algorithms(cfg.Algorithms, cfg.JWKSURL != "")
	if err != nil {
		return nil, err
	}
	v.allowed = allowed

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(allowed),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v.parser = jwt.NewParser(opts...)

	if cfg.CacheEntries >= 0 {
		n := cfg.CacheEntries
		if n == 0 {
			n = defaultCacheEntries
		}
		v.cache = newTokenCache(n)
	}

	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: defaultHTTPTimeout}
		}
		logger := cfg.Logger
		if logger == nil {
			logger = zap.NewNop()
		}
		refresh := cfg.JWKSRefresh
		if refresh <= 0 {
			refresh = defaultJWKSRefresh
		}
		v.jwks = newJWKSSource(ctx, cfg.JWKSURL, client, logger, v.now)
		v.jwks.start(refresh)
	}
	return v, nil
}

// algorithms returns the allow-list: the configured one after checking that
// every entry has a key, or the default derived from the keys.
func (v *Verifier) algorithms(configured []string, haveJWKS bool) ([]string, error) {
	if len(configured) == 0 {
		var out []string
		add := func(algs ...string) {
			for _, a := range algs {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
		if v.secret != nil {
			add(familyHS...)
		}
		for _, k := range v.static {
			add(k.algs()...)
		}
		if haveJWKS {
			add(familyRSA...)
			add(familyEC...)
			add("EdDSA")
		}
		return out, nil
	}
	out := make([]string, 0, len(configured))
	for _, name := range configured {
		alg, ok := canonicalAlg(name)
		if !ok {
			if strings.EqualFold(name, "none") {
				return nil, errors.New("jwt: algorithms: none is never allowed")
			}
			return nil, fmt.Errorf("jwt: algorithms: unknown algorithm %q", name)
		}
		if slices.Contains(out, alg) {
			continue
		}
		if need := v.missingKeyFor(alg, haveJWKS); need != "" {
			return nil, fmt.Errorf("jwt: algorithms: %s needs %s", alg, need)
		}
		out = append(out, alg)
	}
	return out, nil
}

// missingKeyFor names the key alg lacks, or "" when one is configured.
func (v *Verifier) missingKeyFor(alg string, haveJWKS bool) string {
	if isHS(alg) {
		if v.secret == nil {
			return "secret"
		}
		return ""
	}
	if haveJWKS {
		return ""
	}
	for _, k := range v.static {
		if k.fits(alg) {
			return ""
		}
	}
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return "an RSA public_key_file or jwks_url"
	case alg == "EdDSA":
		return "an Ed25519 public_key_file or jwks_url"
	default:
		return "a " + curveForAlg(alg).Params().Name + " public_key_file or jwks_url"
	}
}

// Verify checks the Authorization header value and returns who it proves.
// The result is ErrMissing when no bearer credential was sent, or wraps
// ErrInvalid with the reason. The returned *Identity may be shared with other
// callers (it is cached until min(exp+leeway, now+5m)) and must not be
// modified. ctx bounds a JWKS refetch triggered by an unknown kid.
func (v *Verifier) Verify(ctx context.Context, authorization string) (*Identity, error) {
	cred, ok := bearerCredential(authorization)
	if !ok {
		return nil, ErrMissing
	}
	if len(cred) > MaxTokenBytes {
		return nil, invalid("token too large")
	}
	token := cred
	// A JWT never holds ':', so one marks the Descope "<project_id>:<jwt>" form.
	if i := strings.LastIndexByte(cred, ':'); i >= 0 {
		if v.projectID == "" {
			return nil, invalid("project_id form not enabled")
		}
		if !constantTimeEqual(cred[:i], v.projectID) {
			return nil, invalid("wrong project_id")
		}
		token = cred[i+1:]
		if token == "" {
			return nil, ErrMissing
		}
	}

	var now time.Time
	if v.cache != nil {
		now = v.now()
		if id := v.cache.get(token, now.UnixNano()); id != nil {
			return id, nil
		}
	}

	id, until, err := v.verifyCold(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.cache != nil && until.After(now) {
		v.cache.put(token, id, now.UnixNano(), until.UnixNano())
	}
	return id, nil
}

// ProjectOnly reports whether the header is exactly "Bearer <ProjectID>", the
// credential Descope's SDK sends on its verify route. It compares in constant
// time and is false when no ProjectID is configured.
func (v *Verifier) ProjectOnly(authorization string) bool {
	if v.projectID == "" {
		return false
	}
	cred, ok := bearerCredential(authorization)
	return ok && constantTimeEqual(cred, v.projectID)
}

// Algorithms returns the effective allow-list (for logs and tests).
func (v *Verifier) Algorithms() []string { return slices.Clone(v.allowed) }

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

// keyfunc picks the key by the token's algorithm family and returns only a
// key of the Go type that family verifies with, so a token can never make an
// RSA public key serve as an HMAC secret (algorithm confusion).
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if c, ok := t.Header["crit"]; ok && c != nil {
			if l, ok := c.([]any); !ok || len(l) > 0 {
				return nil, &reasonError{"crit header not supported"}
			}
		}
		alg := t.Method.Alg()
		if isHS(alg) {
			if v.secret == nil {
				return nil, &reasonError{"no key for algorithm"}
			}
			return v.secret, nil
		}
		var kid string
		hasKid := false
		if raw, ok := t.Header["kid"]; ok {
			if kid, ok = raw.(string); !ok {
				return nil, &reasonError{"kid is not a string"}
			}
			hasKid = true
		}
		keys, kidFound := v.candidates(alg, kid, hasKid)
		if v.jwks != nil && (len(keys) == 0 || (hasKid && !kidFound)) {
			// Unknown kid or no key yet: maybe the IdP rotated its keys.
			v.jwks.refetch(ctx)
			keys, _ = v.candidates(alg, kid, hasKid)
		}
		switch len(keys) {
		case 0:
			if hasKid {
				return nil, &reasonError{"unknown kid"}
			}
			return nil, &reasonError{"no key for algorithm"}
		case 1:
			return keys[0], nil
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}

// candidates lists the keys that may verify alg: the JWKS keys of the kid
// when the token names one the set has, else every fitting JWKS and file key.
// kidFound reports whether the JWKS held the token's kid.
func (v *Verifier) candidates(alg, kid string, hasKid bool) (keys []jwt.VerificationKey, kidFound bool) {
	if v.jwks != nil {
		if set := v.jwks.keys.Load(); set != nil {
			for _, k := range set.keys {
				if k.fits(alg) && (!hasKid || k.kid == kid) {
					keys = append(keys, k.key)
				}
			}
		}
		if hasKid && len(keys) > 0 {
			return keys, true
		}
	}
	for _, k := range v.static {
		if k.fits(alg) {
			keys = append(keys, k.key)
		}
	}
	return keys, false
}

// bearerCredential extracts the credential of a Bearer header: the scheme is
// case-insensitive (RFC 7235) and extra blanks around the credential are
// tolerated.
func bearerCredential(h string) (string, bool) {
	h = strings.Trim(h, " \t")
	const scheme = "bearer"
	if len(h) <= len(scheme) || (h[len(scheme)] != ' ' && h[len(scheme)] != '\t') {
		return "", false
	}
	for i := 0; i < len(scheme); i++ {
		if h[i]|0x20 != scheme[i] {
			return "", false
		}
	}
	cred := strings.TrimLeft(h[len(scheme)+1:], " \t")
	return cred, cred != ""
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

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
