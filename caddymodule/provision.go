package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// Defaults of SPEC §2.
const (
	defaultPrefix      = "/phone"
	defaultCodeLength  = 6
	defaultTTL         = 10 * time.Minute
	defaultMaxAttempts = 5
	defaultResendAfter = 60 * time.Second
)

// checked is what Provision's first half resolved from the config, every
// setting checked, nothing opened yet.
type checked struct {
	rules     flow.Config
	numbers   *numbers.Checker
	sender    *sms.Chain
	storeMod  StoreModule
	tokens    tokenSource // who issues the tokens jwt trusts
	cacheMod  CacheModule
	secret    string // expanded; "" for a random per-process key
	adminKey  string // expanded
	eventsURL string // expanded
}

// Provision checks every setting first, opening nothing, so that a bad
// config fails `caddy validate` before any database is opened or
// migrated (SPEC §2); then it opens the backends and builds the rules.
func (p *Phone) Provision(ctx caddy.Context) error {
	if p.logger == nil { // a benchmark may give Caddy's own (provisionPhoneLogged)
		p.logger = ctx.Logger()
	}
	c, err := p.check(ctx)
	if err != nil {
		return err
	}
	return p.open(ctx, c)
}

// check fills defaults, checks every setting and loads the backend
// modules (whose Provision only checks). It does no I/O beyond reading
// key files.
func (p *Phone) check(ctx caddy.Context) (c checked, err error) {
	repl := caddy.NewReplacer()
	if p.Prefix == "" {
		p.Prefix = defaultPrefix
	}
	p.Prefix = strings.TrimSuffix(p.Prefix, "/")
	if err := p.Validate(); err != nil {
		return c, err
	}
	p.routeAdmin = p.Prefix + "/v1/"
	if err := p.checkCompat(); err != nil {
		return c, err
	}
	if p.corsOrigins, err = compileCORS(p.CORS); err != nil {
		return c, err
	}
	if p.verifier, err = p.newVerifier(ctx, repl); err != nil {
		return c, err
	}
	c.tokens = newTokenSource(repl, p.JWT)
	policy := numbers.Policy{}
	if n := p.Numbers; n != nil {
		policy = numbers.Policy{DefaultRegion: n.DefaultRegion, Allow: n.AllowCountries, Deny: n.DenyCountries, Types: n.Types}
	}
	if c.numbers, err = policy.Compile(); err != nil {
		return c, err
	}
	if c.rules, err = p.flowConfig(); err != nil {
		return c, err
	}
	c.secret = repl.ReplaceKnown(p.Secret, "")
	if c.secret != "" && len(c.secret) < 16 {
		return c, errors.New("secret: must be at least 16 characters")
	}
	if c.adminKey, err = p.checkAdmin(repl); err != nil {
		return c, err
	}
	if p.Events != nil {
		c.eventsURL = repl.ReplaceKnown(p.Events.URL, "")
		if err := events.CheckURL(c.eventsURL); err != nil {
			return c, err
		}
	}
	if len(p.RequireVerified) > 0 {
		p.gate = caddyhttp.MatchPath(append([]string(nil), p.RequireVerified...))
		if err := p.gate.Provision(ctx); err != nil {
			return c, fmt.Errorf("require_verified: %w", err)
		}
	}
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return c, fmt.Errorf("metrics: %w", err)
	}
	if err := p.loadBackends(ctx, &c); err != nil {
		return c, err
	}
	return c, nil
}

// checkCompat turns on the vendor dialects `compat` names, each with its
// options from compat_options.
func (p *Phone) checkCompat() error {
	p.vendors, p.indexNumbers, p.indexLoginIDs = nil, false, false
	for name := range p.CompatOptions {
		if !slices.Contains(p.Compat, name) {
			return fmt.Errorf("compat_options: %q is not under compat", name)
		}
	}
	for _, name := range p.Compat {
		v, ok := vendorDialects[name]
		if !ok {
			return fmt.Errorf("compat: unknown product %q (%s)", name, vendorNames())
		}
		var opts any
		raw, given := p.CompatOptions[name]
		switch {
		case v.options != nil:
			opts, _ = v.options()
			if given {
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(opts); err != nil {
					return fmt.Errorf("compat %s: options: %w", name, err)
				}
			}
		case given:
			return fmt.Errorf("compat %s: takes no options", name)
		}
		d, err := v.open(p, opts)
		if err != nil {
			return err
		}
		p.vendors = append(p.vendors, activeVendor{vendorDialect: v, dialect: d})
	}
	return nil
}

func (p *Phone) newVerifier(ctx caddy.Context, repl *caddy.Replacer) (*bearer.Verifier, error) {
	if p.JWT == nil {
		return nil, errors.New("jwt: required (secret, public_key_file or jwks_url)")
	}
	p.maxAge = time.Duration(p.JWT.MaxAuthAge)
	return bearer.New(ctx, bearer.Config{
		Secret:         repl.ReplaceKnown(p.JWT.Secret, ""),
		PublicKeyFiles: replaceAll(repl, p.JWT.PublicKeyFiles),
		JWKSURL:        repl.ReplaceKnown(p.JWT.JWKSURL, ""),
		Algorithms:     p.JWT.Algorithms,
		Issuer:         repl.ReplaceKnown(p.JWT.Issuer, ""),
		Audience:       replaceAll(repl, p.JWT.Audience),
		UserClaim:      p.JWT.UserClaim,
		Leeway:         time.Duration(p.JWT.Leeway),
		ProjectID:      repl.ReplaceKnown(p.JWT.ProjectID, ""),
		Logger:         p.logger.Named("jwt"),
		KeepClaims:     p.keptClaims(),
	})
}

// keptClaims are the claims of other types than string the handler reads
// from a token: the verified-token cache keeps only those (and the strings).
func (p *Phone) keptClaims() []string {
	if p.Admin != nil && p.Admin.Claim != "" {
		return []string{p.Admin.Claim}
	}
	return nil
}

// loadBackends loads the store, cache and sms modules; each checks its
// own settings as it is provisioned.
func (p *Phone) loadBackends(ctx caddy.Context, c *checked) error {
	if len(p.SMSRaw) == 0 {
		return fmt.Errorf("sms: at least one provider is required (%s)", moduleNames(smsNamespace))
	}
	var err error
	if p.StoreRaw, err = withDefault(p.StoreRaw, "backend", "sqlite"); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if p.CacheRaw, err = withDefault(p.CacheRaw, "backend", "bigcache"); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	mod, err := ctx.LoadModule(p, "StoreRaw")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	c.storeMod = mod.(StoreModule)
	if mod, err = ctx.LoadModule(p, "CacheRaw"); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	c.cacheMod = mod.(CacheModule)
	// Instances sharing a cache must hash codes with one key: a random
	// per-process key would make a code sent by one fail on another.
	if c.cacheMod.Shared() && c.secret == "" {
		return fmt.Errorf("secret: required with cache %s, so every instance hashes codes alike", c.cacheMod.CaddyModule().ID.Name())
	}
	mods, err := ctx.LoadModule(p, "SMSRaw")
	if err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	providers := make([]sms.Provider, 0, len(p.SMSRaw))
	for _, m := range mods.([]any) {
		providers = append(providers, meteredProvider{m.(SMSModule).Provider(p.logger)})
	}
	c.sender = sms.NewChain(providers...)
	c.sender.Logger = p.logger.Named("sms")
	c.sender.Mask = numbers.Mask
	c.rules.NotifyChannel = notifyChannel(c.rules.Channels, c.sender)
	return checkChannelsCarried(c.rules.Channels, c.sender)
}

// open opens the cache and the store and builds the rules.
func (p *Phone) open(ctx caddy.Context, c checked) error {
	var err error
	if m, ok := c.cacheMod.(interface{ setLifeWindow(time.Duration) }); ok {
		m.setLifeWindow(c.rules.LongestEntryLife())
	}
	if p.cache, err = loadCache(ctx, c.cacheMod, c.secret, p.logger); err != nil {
		return err
	}
	if p.backend, err = c.storeMod.OpenStore(ctx); err != nil {
		return fmt.Errorf("store %s: %w", c.storeMod.CaddyModule().ID.Name(), err)
	}
	p.storeID = p.backend.Namespace
	if p.storeID == "" {
		// A backend that cannot name its data: its config does.
		p.storeID = string(c.storeMod.CaddyModule().ID) + "\x00" + string(p.StoreRaw)
	}
	if err := p.joinSites(ctx, c); err != nil {
		return err
	}
	var cached *store.CachedUsers
	if p.backend.Local {
		p.users, p.peek = p.backend.Users, p.backend.Users.Get
	} else {
		if cached, err = store.NewCachedUsers(meteredUsers{p.backend.Users}, readCacheTTL, readCacheMB); err != nil {
			return err
		}
		p.users, p.peek = cached, cached.Peek
	}
	emitter, err := p.provisionEvents(ctx, c.eventsURL)
	if err != nil {
		return err
	}
	c.rules.Secret = p.cache.secret // the pooled cache's key
	ns := cacheNamespaceOf(p.storeID)
	p.flowCache = namespaced(p.cache.cache, ns)
	if c.cacheMod.Shared() {
		if err := checkSecretFingerprint(ctx, p.flowCache, ns, c.secret, p.logger); err != nil {
			return err
		}
	}
	// The admin API's view of the numbers: several per user.
	var pn store.PhoneNumbers
	if p.Admin != nil && p.backend.Numbers != nil {
		if pn, err = p.backend.Numbers(ctx); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	deps := flow.Deps{Users: p.users, Cache: p.flowCache, Sender: c.sender, Numbers: c.numbers,
		Events: emitter, Logger: p.logger, SharedCache: c.cacheMod.Shared()}
	if pn != nil {
		deps.Held = pn
	}
	if p.service, err = flow.New(c.rules, deps); err != nil {
		return err
	}
	return p.provisionAdmin(c, pn, cached)
}

// cacheNamespaceOf names a store's keys in a shared cache.
func cacheNamespaceOf(storeID string) string {
	sum := sha256.Sum256([]byte(storeID))
	return hex.EncodeToString(sum[:6]) + ":"
}

func (p *Phone) flowConfig() (flow.Config, error) {
	cfg := flow.Config{
		Verification:   p.Verification == nil || *p.Verification,
		CodeLength:     defaultCodeLength,
		TTL:            defaultTTL,
		MaxAttempts:    defaultMaxAttempts,
		ResendAfter:    defaultResendAfter,
		Limits:         flow.DefaultLimits,
		AppName:        p.AppName,
		Templates:      sms.Templates{Default: p.Template, ByLocale: p.Templates},
		NotifyPrevious: p.NotifyPrevious,
		IndexNumbers:   p.indexNumbers,
		IndexLoginIDs:  p.indexLoginIDs,
		Channels:       p.Channels,
	}
	if err := flow.CheckChannels(p.Channels); err != nil {
		return cfg, err
	}
	for ch, t := range p.ChannelTemplates {
		if cfg.ChannelTemplates == nil {
			cfg.ChannelTemplates = map[string]sms.Templates{}
		}
		cfg.ChannelTemplates[ch] = sms.Templates{Default: t.Template, ByLocale: t.Templates}
	}
	if p.AppName == "" {
		cfg.AppName = "your account"
	}
	if o := p.OTP; o != nil {
		if o.Length != 0 {
			cfg.CodeLength = o.Length
		}
		if o.TTL != 0 {
			cfg.TTL = time.Duration(o.TTL)
		}
		if o.MaxAttempts != 0 {
			cfg.MaxAttempts = o.MaxAttempts
		}
		if o.ResendAfter != nil {
			cfg.ResendAfter = time.Duration(*o.ResendAfter)
		}
	}
	for name, in := range p.Limits {
		slot := cfg.Limits.Slot(name)
		if slot == nil {
			return cfg, fmt.Errorf("limits: unknown budget %q (%s)", name, strings.Join(flow.LimitNames, ", "))
		}
		*slot = flow.Limit{Count: in.Count, Window: time.Duration(in.Window)}
	}
	if err := cfg.Check(); err != nil {
		return cfg, err
	}
	if err := cfg.CheckTemplates(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// The read cache in front of a real store: a few seconds, so a second
// Caddy instance's write shows in headers and GET /phone within that time.
const (
	readCacheTTL = 2 * time.Second
	readCacheMB  = 16
)

// Validate checks what Provision could not.
func (p *Phone) Validate() error {
	if !strings.HasPrefix(p.Prefix, "/") {
		return fmt.Errorf("prefix: must start with /, got %q", p.Prefix)
	}
	return nil
}

// Cleanup releases the store and this config's hold on the shared cache.
func (p *Phone) Cleanup() error {
	leaveSites(p)
	// The dispatcher first: its outbox lives in the store.
	errs := []error{p.stopEvents()}
	if p.users != nil {
		errs = append(errs, p.users.Close())
	} else if p.backend.Users != nil {
		errs = append(errs, p.backend.Users.Close())
	}
	if p.cache != nil {
		_, err := cachePool.Delete(p.cache.key)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func replaceAll(repl *caddy.Replacer, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = repl.ReplaceKnown(s, "")
	}
	return out
}
