package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxJWKSBytes bounds a JWKS response; real sets are a few KiB.
const maxJWKSBytes = 1 << 20

// keySet is one successfully fetched JWKS; it is replaced, never modified.
type keySet struct {
	keys []pubKey
}

// jwksSource keeps the last good key set of a JWKS URL.
type jwksSource struct {
	ctx     context.Context // the Verifier's lifetime; fetches stop with it
	url     string
	client  *http.Client
	timeout time.Duration
	logger  *zap.Logger
	now     func() time.Time

	keys atomic.Pointer[keySet]

	mu          sync.Mutex
	inflight    chan struct{} // closed when the running fetch ends; nil when idle
	lastAttempt time.Time
}

func newJWKSSource(ctx context.Context, url string, client *http.Client, logger *zap.Logger, now func() time.Time) *jwksSource {
	timeout := client.Timeout
	if timeout <= 0 {
		timeout = defaultHTTPTimeout
	}
	return &jwksSource{ctx: ctx, url: url, client: client, timeout: timeout, logger: logger, now: now}
}

// start begins the first fetch at once (so a Verify arriving early waits for
// it instead of starting another) and refreshes every period until ctx is done.
func (s *jwksSource) start(period time.Duration) {
	s.mu.Lock()
	s.begin()
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.mu.Lock()
				if s.inflight == nil {
					s.begin()
				}
				s.mu.Unlock()
			}
		}
	}()
}

// refetch fetches the set again unless one was tried less than 10 s ago, and
// waits for the running fetch (at most the client timeout, or until ctx ends).
func (s *jwksSource) refetch(ctx context.Context) {
	s.mu.Lock()
	done := s.inflight
	if done == nil {
		if !s.lastAttempt.IsZero() && s.now().Sub(s.lastAttempt) < jwksMinRefetch {
			s.mu.Unlock()
			return
		}
		done = s.begin()
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// begin starts a fetch in its own goroutine, detached from the caller's
// context so one impatient request cannot abort the fetch others wait for.
// s.mu must be held.
func (s *jwksSource) begin() chan struct{} {
	done := make(chan struct{})
	s.inflight = done
	s.lastAttempt = s.now()
	go func() {
		err := s.fetch()
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		close(done)
		if err != nil && s.ctx.Err() == nil {
			// The last good set stays in use.
			s.logger.Warn("jwks fetch failed; keeping the last good key set",
				zap.String("jwks_url", s.url), zap.Error(err))
		}
	}()
	return done
}

func (s *jwksSource) fetch() error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKSBytes {
		return errors.New("response larger than 1 MiB")
	}
	set, skipped, err := parseJWKS(body)
	if err != nil {
		return err
	}
	s.keys.Store(set)
	if ce := s.logger.Check(zap.DebugLevel, "jwks fetched"); ce != nil {
		ce.Write(zap.String("jwks_url", s.url), zap.Int("keys", len(set.keys)), zap.Int("skipped", skipped))
	}
	return nil
}

// jwk holds the members of RFC 7517/7518 keys we read.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS keeps the signature keys it understands and counts the others. A
// set with no usable key is an error, so a broken answer never replaces a
// good set.
func parseJWKS(body []byte) (*keySet, int, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, errors.New("not a JWKS document")
	}
	set := &keySet{}
	skipped := 0
	for _, raw := range doc.Keys {
		var k jwk
		if json.Unmarshal(raw, &k) != nil {
			skipped++
			continue
		}
		pk, err := k.publicKey()
		if err != nil {
			skipped++
			continue
		}
		set.keys = append(set.keys, pk)
	}
	if len(set.keys) == 0 {
		return nil, skipped, errors.New("no usable signature key in the set")
	}
	return set, skipped, nil
}

func (k *jwk) publicKey() (pubKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return pubKey{}, errors.New("not a signature key")
	}
	out := pubKey{kid: k.Kid}
	if k.Alg != "" {
		alg, ok := canonicalAlg(k.Alg)
		if !ok || alg != k.Alg {
			return pubKey{}, errors.New("unsupported alg")
		}
		out.alg = alg
	}
	switch k.Kty {
	case "RSA":
		n, err := b64Int(k.N)
		if err != nil {
			return pubKey{}, err
		}
		e, err := b64Int(k.E)
		if err != nil {
			return pubKey{}, err
		}
		if n.Sign() <= 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return pubKey{}, errors.New("bad RSA key")
		}
		out.key = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return pubKey{}, errors.New("unsupported curve")
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64Fixed(k.X, size)
		if err != nil {
			return pubKey{}, err
		}
		y, err := b64Fixed(k.Y, size)
		if err != nil {
			return pubKey{}, err
		}
		// ParseUncompressedPublicKey refuses points off the curve.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return pubKey{}, err
		}
		out.key = pub
	case "OKP":
		if k.Crv != "Ed25519" {
			return pubKey{}, errors.New("unsupported curve")
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return pubKey{}, errors.New("bad Ed25519 key")
		}
		out.key = ed25519.PublicKey(x)
	default:
		return pubKey{}, errors.New("unsupported kty")
	}
	// A JWK alg must name an algorithm of the key's own family.
	if out.alg != "" && !out.fits(out.alg) {
		return pubKey{}, errors.New("alg does not match the key")
	}
	return out, nil
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

// b64Fixed decodes an EC coordinate, left-padding short encodings (some
// issuers drop leading zero bytes) to the field size.
func b64Fixed(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > size {
		return nil, errors.New("bad EC coordinate")
	}
	if len(b) < size {
		b = append(make([]byte, size-len(b)), b...)
	}
	return b, nil
}
