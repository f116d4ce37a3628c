package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/store"
)

// adminAPI is what `admin { }` provisions: the Clerk-shaped admin
// endpoints of SPEC §7, under <prefix>/v1/, so that @clerk/backend's
// createClerkClient({secretKey, apiUrl: "<site><prefix>"}) drives them
// unmodified.
type adminAPI struct {
	// keyHash is the SHA-256 of the API key: comparing hashes in constant
	// time leaks neither the key nor its length.
	keyHash [sha256.Size]byte
	// numbers is nil when the user store keeps one number per user (http).
	numbers store.PhoneNumbers
	norm    interface{ Normalize(string) (string, error) }
	logger  *zap.Logger
	// escapedRoot is <prefix>/v1/ as it appears in an escaped path.
	escapedRoot string
	// change runs a write of the user's numbers under the rules
	// (flow.Service.AdminChange): the user's lock, and, when the write
	// changed the number GET /phone shows, the open challenge dropped and
	// the app told.
	change func(ctx context.Context, userID string, write func(context.Context) error) error
	// hasKey is false when only admin tokens open the endpoints.
	hasKey bool
	// claim, when set, lets a valid JWT carrying it open the endpoints:
	// true, or claimValue (a string, or one item of an array).
	claim, claimValue string
	verifier          *bearer.Verifier
}

// adminClaim reports whether a verified token carries the admin claim.
func (a *adminAPI) adminClaim(id *bearer.Identity) bool {
	v, ok := id.Claim(a.claim)
	if !ok {
		return false
	}
	if a.claimValue == "" {
		b, isBool := v.(bool)
		return isBool && b
	}
	switch v := v.(type) {
	case string:
		return v == a.claimValue
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok && s == a.claimValue {
				return true
			}
		}
	}
	return false
}

// minAdminKeyLength keeps the key out of guessing range.
const minAdminKeyLength = 16

// checkAdmin checks the `admin` settings and returns the expanded key.
// It runs before anything is opened.
func (p *Phone) checkAdmin(repl *caddy.Replacer) (string, error) {
	if p.Admin == nil {
		return "", nil
	}
	key := repl.ReplaceKnown(p.Admin.APIKey, "")
	switch {
	case key == "" && p.Admin.Claim == "":
		return "", errors.New("admin: api_key is required (or a claim that marks admin tokens)")
	case key == "":
		// Claim only: no key can match (the hash of "" is never compared
		// against an empty bearer, which authenticate refuses first).
	case len(key) < minAdminKeyLength:
		return "", fmt.Errorf("admin: api_key must be at least %d characters", minAdminKeyLength)
	case strings.ContainsAny(key, ". \t\r\n"):
		// No dot: a bearer value without one can never pass for a JWT on
		// the user routes, whatever keys the jwt block trusts.
		return "", errors.New("admin: api_key must not contain dots or white space")
	case p.JWT != nil && key == repl.ReplaceKnown(p.JWT.ProjectID, ""):
		return "", errors.New("admin: api_key must differ from jwt.project_id")
	}
	return key, nil
}

// provisionAdmin sets up the admin endpoints over pn, the store's numbers
// (nil when it keeps one per user). It runs once the rules are built;
// writes go through them (flow.Service.AdminChange) and drop the read
// cache's copy (cached, nil when there is none).
func (p *Phone) provisionAdmin(c checked, pn store.PhoneNumbers, cached *store.CachedUsers) error {
	if p.Admin == nil {
		return nil
	}
	key := c.adminKey
	a := &adminAPI{keyHash: sha256.Sum256([]byte(key)), hasKey: key != "", norm: c.numbers, logger: p.logger.Named("admin"),
		escapedRoot: (&url.URL{Path: p.routeAdmin}).EscapedPath(), claim: p.Admin.Claim,
		claimValue: p.Admin.ClaimValue, verifier: p.verifier, change: p.service.AdminChange}
	p.admin = a
	if pn == nil {
		a.logger.Info("the user store keeps one number per user: the phone number endpoints answer 501 not_supported")
		return nil
	}
	if cached != nil {
		pn = cached.ForgetOnWrite(pn)
	}
	a.numbers = pn
	return nil
}
