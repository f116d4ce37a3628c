package bearer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

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
