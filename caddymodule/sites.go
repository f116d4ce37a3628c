package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// Two sites whose tokens come from different identity providers must never
// see each other's users (SPEC §9): IdP B's "alice" is not IdP A's. The
// users are keyed by the token's user ID alone, so two phone handlers of
// one config that share a store (the default ./phone.db, or one database)
// must trust one issuer; otherwise the config is refused, naming both and
// the fix.

// tokenSource is who issues the tokens a handler trusts: its jwt issuer,
// and its keys (hashed: no secret is kept or shown).
type tokenSource struct {
	issuer string   // the required `iss`; "" when jwt sets none
	keys   []string // one entry per key source, comparable across handlers
	label  string   // for messages
}

func newTokenSource(repl *caddy.Replacer, j *JWTConfig) tokenSource {
	var t tokenSource
	var labels []string
	t.issuer = repl.ReplaceKnown(j.Issuer, "")
	if s := repl.ReplaceKnown(j.Secret, ""); s != "" {
		t.keys = append(t.keys, fmt.Sprintf("secret %x", sha256.Sum256([]byte("jwt-secret\x00"+s))))
		labels = append(labels, "a jwt secret")
	}
	for _, f := range replaceAll(repl, j.PublicKeyFiles) {
		key := "public_key_file " + f
		if pem, err := os.ReadFile(f); err == nil {
			key = fmt.Sprintf("public_key %x", sha256.Sum256(pem))
		}
		t.keys = append(t.keys, key)
		labels = append(labels, "public_key_file "+f)
	}
	if u := repl.ReplaceKnown(j.JWKSURL, ""); u != "" {
		t.keys = append(t.keys, "jwks_url "+u)
		labels = append(labels, "jwks_url "+u)
	}
	t.label = strings.Join(labels, ", ")
	if t.issuer != "" {
		t.label = "issuer " + strconv.Quote(t.issuer)
	}
	return t
}

// sameProvider reports whether the two trust one identity provider: one
// issuer when both name one; else at least one key in common (one signer).
func (t tokenSource) sameProvider(o tokenSource) bool {
	if t.issuer != "" && o.issuer != "" {
		return t.issuer == o.issuer
	}
	for _, k := range t.keys {
		if slices.Contains(o.keys, k) {
			return true
		}
	}
	return false
}

type siteEntry struct {
	p      *Phone
	tokens tokenSource
}

// sites holds the phone handlers of each loaded config by store namespace.
// A config is known by its context's Done channel: every module of one
// config is provisioned with that context, and it is cancelled when the
// config is unloaded (or fails to load), which drops the config's entries.
// Handlers of the old config during a reload are thus not compared with
// the new one's: a reload may change a site's identity provider.
var sites = struct {
	sync.Mutex
	byConfig map[<-chan struct{}]map[string][]siteEntry
}{byConfig: map[<-chan struct{}]map[string][]siteEntry{}}

// joinSites records p (its store namespace is known) in its config, or
// refuses it when another handler of the config shares its store but
// trusts another identity provider.
func (p *Phone) joinSites(ctx caddy.Context, c checked) error {
	gen := ctx.Done()
	if gen == nil {
		return nil // a context that never ends: no config to compare with
	}
	sites.Lock()
	defer sites.Unlock()
	byStore := sites.byConfig[gen]
	for _, o := range byStore[p.storeID] {
		if !o.tokens.sameProvider(c.tokens) {
			which := o.tokens.label + "; " + c.tokens.label
			if o.tokens.label == c.tokens.label {
				which = o.tokens.label + " each, not the same"
			}
			return fmt.Errorf("jwt: the phone handlers at %s and %s of this config trust different identity providers (%s) "+
				"but keep their users in one store, %s: a user of one would be the other's user of the same ID. "+
				"Give each its own store (another `store sqlite` file, or another `store postgres` schema), or have both trust one issuer",
				o.p.Prefix, p.Prefix, which, storeLabel(c.storeMod))
		}
	}
	if byStore == nil {
		byStore = map[string][]siteEntry{}
		sites.byConfig[gen] = byStore
		context.AfterFunc(ctx, func() {
			sites.Lock()
			delete(sites.byConfig, gen)
			sites.Unlock()
		})
	}
	byStore[p.storeID] = append(byStore[p.storeID], siteEntry{p, c.tokens})
	return nil
}

// leaveSites forgets p, cleaned up before its config's context ends.
func leaveSites(p *Phone) {
	sites.Lock()
	defer sites.Unlock()
	for _, byStore := range sites.byConfig {
		byStore[p.storeID] = slices.DeleteFunc(byStore[p.storeID], func(e siteEntry) bool { return e.p == p })
	}
}

// storeLabel names a store module's data for messages.
func storeLabel(m StoreModule) string {
	if s, ok := m.(fmt.Stringer); ok {
		return s.String()
	}
	return "store " + m.CaddyModule().ID.Name()
}
