package flow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// Login IDs (Descope's login_id_claim, SPEC §6): an update names its user
// by a login ID (often an e-mail) that the token vouches for, and the
// token-less verify that follows names the user by that login ID alone.
// An index in the cache, loginID → user ID, bridges the two; it lives as
// long as the challenge the update opens (entryTTL), and the latest
// update that named a login ID wins it. The key holds a hash of the login
// ID: fixed length whatever the claim holds, no { or : that a Redis
// Cluster hash tag would trip on, and no e-mail in the cache.

// loginIDKey is the index entry of loginID.
func loginIDKey(loginID string) string {
	sum := sha256.Sum256([]byte(loginID))
	return "dl:" + hex.EncodeToString(sum[:16])
}

// NoteLoginID makes loginID name userID for the life of a challenge. The
// caller must have checked that the user's token vouches for loginID;
// it is called before the update, so a cache failure stops the update
// before any code goes out.
func (s *Service) NoteLoginID(ctx context.Context, loginID, userID string) error {
	err := s.cache.Update(ctx, loginIDKey(loginID), func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte(userID), s.entryTTL(), nil
	})
	return cacheErr(err)
}

// LoginUser is the user whose latest update named loginID. When no update
// did (or its entry expired) the answer is ErrNoPending, as a verify that
// finds no challenge, and, being token-less, it costs clientIP a unit of
// verify_per_ip as that verify would (SPEC §6).
func (s *Service) LoginUser(ctx context.Context, loginID, clientIP string) (string, error) {
	b, err := s.cache.Get(ctx, loginIDKey(loginID))
	switch {
	case err == nil && len(b) > 0:
		return string(b), nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return "", cacheErr(err)
	}
	ipFailKey := ""
	if clientIP != "" {
		ipFailKey = "v" + ipKey(clientIP)
	}
	if err := s.check(ctx, "verify_per_ip", ipFailKey, s.cfg.Limits.VerifyPerIP); err != nil {
		return "", cacheErr(err)
	}
	if err := s.take(ctx, "verify_per_ip", ipFailKey, s.cfg.Limits.VerifyPerIP); err != nil {
		return "", cacheErr(err)
	}
	return "", ErrNoPending
}
