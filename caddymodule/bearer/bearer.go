// Package bearer validates "Authorization: Bearer <jwt>" header values for
// the phone module (SPEC §3). It knows nothing of Caddy: the Caddy glue builds
// a Config from the `jwt { }` block, calls New once per provisioned handler and
// Verify on each request.
//
// Verified tokens are remembered, keyed by a digest of the token, so a client
// that sends the same token on every request pays for the signature check once
// (see Verify).
package bearer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

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
	// KeepClaims names the claims other than strings that callers read
	// (Identity.Claim): only those are kept. String claims are always kept.
	KeepClaims []string
	// Logger receives JWKS fetch outcomes (default: none).
	Logger *zap.Logger
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
	// keepClaims are Config.KeepClaims.
	keepClaims []string
	leeway     time.Duration
	projectID  string
	now        func() time.Time
	cache      *tokenCache // nil when disabled
}

// New checks cfg, loads the PEM files and, with JWKSURL, starts the first
// fetch and a refresher goroutine that stops when ctx is done. Errors name the
// Caddyfile field at fault.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{
		userClaim:  cfg.UserClaim,
		keepClaims: slices.Clone(cfg.KeepClaims),
		leeway:     cfg.Leeway,
		projectID:  cfg.ProjectID,
		now:        cfg.Now,
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
