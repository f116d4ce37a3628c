package bearer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

var (
	familyHS  = []string{"HS256", "HS384", "HS512"}
	familyRSA = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	familyEC  = []string{"ES256", "ES384", "ES512"}
)

// canonicalAlg returns the JOSE spelling of a supported algorithm name given
// in any case; "none" is not one.
func canonicalAlg(name string) (string, bool) {
	if strings.EqualFold(name, "EdDSA") {
		return "EdDSA", true
	}
	up := strings.ToUpper(name)
	for _, fam := range [][]string{familyHS, familyRSA, familyEC} {
		for _, a := range fam {
			if a == up {
				return a, true
			}
		}
	}
	return "", false
}

func isHS(alg string) bool { return strings.HasPrefix(alg, "HS") }

// curveForAlg is the only curve an ES* algorithm may be verified with
// (RFC 7518 §3.4).
func curveForAlg(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return nil
}

// pubKey is one asymmetric verification key, from a PEM file or the JWKS.
type pubKey struct {
	kid string // JWKS only
	alg string // JWK "alg": when set, the only algorithm the key may verify
	key crypto.PublicKey
}

// fits reports whether k may verify a token of alg: the Go type must be the
// one that family verifies with (and the curve the one ES* names).
func (k pubKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		c := curveForAlg(alg)
		return c != nil && key.Curve == c
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// algs is the default allow-list contribution of k.
func (k pubKey) algs() []string {
	var out []string
	for _, fam := range [][]string{familyRSA, familyEC, {"EdDSA"}} {
		for _, a := range fam {
			if k.fits(a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// loadPEMFile reads every public key of a PEM file. Errors name the file,
// never its content.
func loadPEMFile(path string) ([]pubKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

func parsePEM(data []byte) ([]pubKey, error) {
	var keys []pubKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				// The proxy only verifies: a signing key does not belong here.
				return nil, errors.New("holds a private key; give the public key")
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bad %s block: %w", block.Type, err)
		}
		if err := checkKey(key); err != nil {
			return nil, err
		}
		keys = append(keys, pubKey{key: key})
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// checkKey accepts the key types and curves JWS can use.
func checkKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}
