// Package caddymodule is the Caddy side of caddy-phone: the
// http.handlers.phone module, its Caddyfile directive, the /phone routes,
// bearer-token checks and the phone-token command. The rules themselves
// live in the Caddy-free package flow.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

func init() {
	caddy.RegisterModule(Phone{})
}

// Phone answers the /phone routes and passes every other request on.
type Phone struct {
	// Path prefix of the user API; default /phone.
	Prefix string `json:"prefix,omitempty"`
	// Off: updates apply at once, unverified. Default on.
	Verification *bool `json:"verification,omitempty"`
	// Bearer-token checks.
	JWT *JWTConfig `json:"jwt,omitempty"`
	// One-time code settings.
	OTP *OTPConfig `json:"otp,omitempty"`
	// Abuse budgets.
	Limits *LimitsConfig `json:"limits,omitempty"`
	// Number policy.
	Numbers *NumbersConfig `json:"numbers,omitempty"`
	// User store; default sqlite ./phone.db.
	Store *StoreConfig `json:"store,omitempty"`
	// Challenge cache; default bigcache.
	Cache *CacheConfig `json:"cache,omitempty"`
	// HMAC key for codes at rest (at least 16 bytes). Default: a random key
	// kept with the cache, so it survives reloads.
	Secret string `json:"secret,omitempty"`
	// SMS providers, tried in order.
	SMS []SMSConfig `json:"sms,omitempty"`
	// Message text with {code}, {app}, {minutes}.
	Template string `json:"template,omitempty"`
	// Per-locale message texts.
	Templates map[string]string `json:"templates,omitempty"`
	// {app} in messages.
	AppName string `json:"app_name,omitempty"`
	// Tell the app, in X-Phone-User / X-Phone-Number / X-Phone-Verified and
	// the vars phone_user_id / phone_number / phone_verified, who is calling
	// and with which number.
	InjectHeaders bool `json:"inject_headers,omitempty"`
	// Paths (Caddy path-matcher patterns) that need a verified number:
	// 401 without a valid token, 403 phone_not_verified without one.
	RequireVerified []string `json:"require_verified,omitempty"`
	// Signed webhook for phone.updated / .pending / .verified / .removed.
	Events *EventsConfig `json:"events,omitempty"`
	// SMS the old number when a verified number is replaced.
	NotifyPrevious bool `json:"notify_previous,omitempty"`
	// The seed products' SDK shapes to serve: descope, reachfive.
	Compat []string `json:"compat,omitempty"`
	// Clerk-shaped admin endpoints under <prefix>/v1/.
	Admin *AdminConfig `json:"admin,omitempty"`

	logger   *zap.Logger
	verifier *bearer.Verifier
	service  *flow.Service
	users    store.Users
	// peek reads a user for the hot read-only paths, through the read
	// cache when the store has one.
	peek  func(ctx context.Context, userID string) (store.User, error)
	cache *sharedCache
	// flowCache is this handler's view of the shared cache: its store's keys.
	flowCache store.Cache
	maxAge    time.Duration
	gate      caddyhttp.MatchPath
	// descope and reachfive are set by `compat`.
	descope, reachfive bool
	routeAdmin         string    // <prefix>/v1/
	admin              *adminAPI // set by `admin`
	// routes are the user-API paths, prefix included, built once.
	routeStatus, routeUpdate, routeVerify, routeResend, routePending string
	// eventsRT is what `events` started (events_glue.go); nil without it.
	eventsRT *eventsRuntime
}

// CaddyModule returns the Caddy module information.
func (Phone) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.phone",
		New: func() caddy.Module { return new(Phone) },
	}
}

// Defaults of SPEC §2.
const (
	defaultPrefix      = "/phone"
	defaultCodeLength  = 6
	defaultTTL         = 10 * time.Minute
	defaultMaxAttempts = 5
	defaultResendAfter = 60 * time.Second
	defaultSQLitePath  = "./phone.db"
	defaultCacheSize   = 256 << 20
)

// Provision fills defaults and builds the store, cache, sender and rules.
func (p *Phone) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	if p.Prefix == "" {
		p.Prefix = defaultPrefix
	}
	p.Prefix = strings.TrimSuffix(p.Prefix, "/")
	p.routeStatus, p.routeUpdate, p.routeVerify = p.Prefix, p.Prefix+"/update", p.Prefix+"/verify"
	p.routeResend, p.routePending = p.Prefix+"/resend", p.Prefix+"/pending"
	p.routeAdmin = p.Prefix + "/v1/"
	for _, c := range p.Compat {
		switch c {
		case "descope":
			// Descope's SDK sends "Bearer <project_id>[:<jwt>]": without a
			// project_id every call would be a 401.
			if p.JWT == nil || p.JWT.ProjectID == "" {
				return errors.New("compat descope: needs jwt { project_id … }")
			}
			p.descope = true
		case "reachfive":
			p.reachfive = true
		default:
			return fmt.Errorf("compat: unknown product %q (descope, reachfive)", c)
		}
	}

	if p.JWT == nil {
		return errors.New("jwt: required (secret, public_key_file or jwks_url)")
	}
	verifier, err := bearer.New(ctx, bearer.Config{
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
	})
	if err != nil {
		return err
	}
	p.verifier, p.maxAge = verifier, time.Duration(p.JWT.MaxAuthAge)

	policy := numbers.Policy{}
	if p.Numbers != nil {
		policy = numbers.Policy{DefaultRegion: p.Numbers.DefaultRegion, Allow: p.Numbers.AllowCountries,
			Deny: p.Numbers.DenyCountries, Types: p.Numbers.Types}
	}
	checker, err := policy.Compile()
	if err != nil {
		return err
	}

	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	sender, err := p.buildSender(repl)
	if err != nil {
		return err
	}

	p.cache, err = p.loadCache(ctx, repl)
	if err != nil {
		return err
	}
	p.users, err = p.openUsers(ctx, repl)
	if err != nil {
		return err
	}
	if err := p.provisionAdmin(ctx, repl, checker); err != nil {
		return err
	}

	if len(p.RequireVerified) > 0 {
		p.gate = caddyhttp.MatchPath(append([]string(nil), p.RequireVerified...))
		if err := p.gate.Provision(ctx); err != nil {
			return fmt.Errorf("require_verified: %w", err)
		}
	}

	cfg, err := p.flowConfig()
	if err != nil {
		return err
	}
	p.peek = p.users.Get
	if c, ok := p.users.(*store.CachedUsers); ok {
		p.peek = c.Peek
	}
	cfg.NotifyPrevious = p.NotifyPrevious
	emitter, err := p.provisionEvents(ctx, repl)
	if err != nil {
		return err
	}
	p.flowCache = namespaced(p.cache.cache, storeNamespace(p.Store, repl))
	p.service, err = flow.New(cfg, flow.Deps{Users: p.users, Cache: p.flowCache, Sender: sender, Numbers: checker,
		ReadUsers: peekUsers{p.users, p.peek}, Events: emitter, Logger: p.logger})
	return err
}

func (p *Phone) buildSender(repl *caddy.Replacer) (flow.Sender, error) {
	if len(p.SMS) == 0 {
		return nil, errors.New("sms: at least one provider is required (log, webhook, twilio, vonage, messagebird)")
	}
	providers := make([]sms.Provider, 0, len(p.SMS))
	for i, c := range p.SMS {
		var pr sms.Provider
		switch c.Provider {
		case "log":
			p.logger.Warn("sms log provider: one-time codes are written to this log; do not use it in production")
			pr = namedProvider(sms.NewLog(p.logger.Named("sms")), c.Name)
		case "webhook":
			u := repl.ReplaceKnown(c.URL, "")
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				return nil, fmt.Errorf("sms[%d] webhook: url must be http:// or https://", i)
			}
			name := c.Name
			if name == "" {
				name = "webhook"
			}
			pr = sms.NewWebhook(name, u, repl.ReplaceKnown(c.Secret, ""), nil)
		case "twilio", "vonage", "messagebird":
			var err error
			if pr, err = newAPIProvider(c, func(s string) string { return repl.ReplaceKnown(s, "") }); err != nil {
				return nil, fmt.Errorf("sms[%d]: %w", i, err)
			}
		default:
			return nil, fmt.Errorf("sms[%d]: unknown provider %q (log, webhook, twilio, vonage, messagebird)", i, c.Provider)
		}
		providers = append(providers, meteredProvider{pr})
	}
	chain := sms.NewChain(providers...)
	chain.Logger = p.logger.Named("sms")
	return chain, nil
}

// newAPIProvider builds a twilio, vonage or messagebird provider, every
// value (secrets, senders, api_url) expanded by expand first.
func newAPIProvider(c SMSConfig, expand func(string) string) (sms.Provider, error) {
	switch c.Provider {
	case "twilio":
		return sms.NewTwilio(sms.TwilioConfig{Name: c.Name, AccountSID: expand(c.AccountSID), AuthToken: expand(c.AuthToken),
			From: expand(c.From), MessagingServiceSID: expand(c.MessagingServiceSID), BaseURL: expand(c.APIURL)}, nil)
	case "vonage":
		return sms.NewVonage(sms.VonageConfig{Name: c.Name, APIKey: expand(c.APIKey), APISecret: expand(c.APISecret),
			From: expand(c.From), BaseURL: expand(c.APIURL)}, nil)
	default:
		return sms.NewMessageBird(sms.MessageBirdConfig{Name: c.Name, AccessKey: expand(c.AccessKey),
			Originator: expand(c.Originator), BaseURL: expand(c.APIURL)}, nil)
	}
}

func (p *Phone) openUsers(ctx caddy.Context, repl *caddy.Replacer) (store.Users, error) {
	sc := p.Store
	if sc == nil {
		sc = &StoreConfig{Backend: "sqlite"}
	}
	var backing store.Users
	var err error
	switch sc.Backend {
	case "memory":
		return memoryUsers(), nil
	case "sqlite", "":
		path := repl.ReplaceKnown(sc.Path, "")
		if path == "" {
			path = defaultSQLitePath
		}
		backing, err = store.OpenSQLite(ctx, path)
	case "postgres":
		backing, err = store.OpenPostgres(ctx, store.PostgresConfig{
			DSN:            repl.ReplaceKnown(sc.DSN, ""),
			Schema:         sc.Schema,
			UsersTable:     sc.UsersTable,
			IDColumn:       sc.IDColumn,
			PhoneColumn:    sc.PhoneColumn,
			VerifiedColumn: sc.VerifiedColumn,
			QueryTimeout:   time.Duration(sc.Timeout),
		})
	case "http":
		cfg := store.HTTPConfig{
			BaseURL:       repl.ReplaceKnown(sc.URL, ""),
			LookupPath:    sc.Lookup,
			PhoneField:    sc.PhoneField,
			VerifiedField: sc.VerifiedField,
			IDField:       sc.IDField,
			Timeout:       time.Duration(sc.Timeout),
			Headers:       make(map[string]string, len(sc.Headers)),
		}
		if sc.Get != nil {
			cfg.GetMethod, cfg.GetPath = sc.Get.Method, sc.Get.Path
		}
		if sc.Set != nil {
			cfg.SetMethod, cfg.SetPath = sc.Set.Method, sc.Set.Path
		}
		for k, v := range sc.Headers {
			cfg.Headers[k] = repl.ReplaceKnown(v, "")
		}
		backing, err = store.NewHTTPUsers(cfg)
	default:
		return nil, fmt.Errorf("store: unknown backend %q (memory, sqlite, postgres, http)", sc.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", sc.Backend, err)
	}
	cached, err := store.NewCachedUsers(meteredUsers{backing}, readCacheTTL, readCacheMB)
	if err != nil {
		_ = backing.Close()
		return nil, err
	}
	return cached, nil
}

func (p *Phone) flowConfig() (flow.Config, error) {
	cfg := flow.Config{
		Verification: p.Verification == nil || *p.Verification,
		CodeLength:   defaultCodeLength,
		TTL:          defaultTTL,
		MaxAttempts:  defaultMaxAttempts,
		ResendAfter:  defaultResendAfter,
		Limits:       flow.DefaultLimits,
		AppName:      p.AppName,
		Templates:    sms.Templates{Default: p.Template, ByLocale: p.Templates},
		Secret:       p.cache.secret,
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
	if l := p.Limits; l != nil {
		for _, b := range []struct {
			name string
			in   *LimitConfig
			out  *flow.Limit
		}{
			{"per_number", l.PerNumber, &cfg.Limits.PerNumber},
			{"per_user", l.PerUser, &cfg.Limits.PerUser},
			{"per_ip", l.PerIP, &cfg.Limits.PerIP},
			{"verify_per_user", l.VerifyPerUser, &cfg.Limits.VerifyPerUser},
			{"verify_per_ip", l.VerifyPerIP, &cfg.Limits.VerifyPerIP},
			{"global", l.Global, &cfg.Limits.Global},
		} {
			if b.in == nil {
				continue
			}
			if b.in.Count < 0 || (b.in.Count > 0 && b.in.Window <= 0) || time.Duration(b.in.Window) > maxLimitWindow {
				return cfg, fmt.Errorf("limits: %s: need a count >= 0 and a window in (0, %s]", b.name, maxLimitWindow)
			}
			*b.out = flow.Limit{Count: b.in.Count, Window: time.Duration(b.in.Window)}
		}
	}
	if p.AppName == "" {
		cfg.AppName = "your account"
	}
	return cfg, nil
}

// The read cache in front of a real store: a few seconds, so a second
// Caddy instance's write shows in headers and GET /phone within that time.
const (
	readCacheTTL = 2 * time.Second
	readCacheMB  = 16
)

// peekUsers is a read-only Users that reads through peek.
type peekUsers struct {
	store.Users
	peek func(ctx context.Context, userID string) (store.User, error)
}

func (p peekUsers) Get(ctx context.Context, userID string) (store.User, error) {
	return p.peek(ctx, userID)
}

// maxLimitWindow bounds limit windows by the cache's life window, so a
// counter cannot outlive its entry.
const maxLimitWindow = 24 * time.Hour

// Validate checks what Provision could not.
func (p *Phone) Validate() error {
	if !strings.HasPrefix(p.Prefix, "/") {
		return fmt.Errorf("prefix: must start with /, got %q", p.Prefix)
	}
	return nil
}

// Cleanup releases the store and this config's hold on the shared cache.
func (p *Phone) Cleanup() error {
	// The dispatcher first: its outbox lives in the store.
	errs := []error{p.stopEvents()}
	if p.users != nil && !isSharedMemory(p.users) {
		errs = append(errs, p.users.Close())
	}
	if p.cache != nil {
		_, err := cachePool.Delete(p.cache.key)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ServeHTTP answers the user API under the prefix and passes the rest on.
// A pointer receiver, unlike caddyauth's value one: Phone is large, and
// copying it cost a third of the pass-through budget (86 ns against 67).
func (p *Phone) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	d := p.dialectFor(r.URL.Path)
	if d == nil {
		return p.passThrough(w, r, next)
	}
	stripPhoneHeaders(r.Header)
	if err := d.serve(w, r); err != nil {
		p.writeError(w, d, err)
	}
	return nil
}

// underPrefix is true for the prefix itself and paths below it.
func (p *Phone) underPrefix(path string) bool {
	if !strings.HasPrefix(path, p.Prefix) {
		return false
	}
	return len(path) == len(p.Prefix) || path[len(p.Prefix)] == '/'
}

// passThrough hands the request on untouched but for: client-sent X-Phone-*
// headers are dropped (only this module may set them); the caller's user,
// when a valid token names one, fills http.auth.user.id; with
// inject_headers the caller's number is told to the app; and paths under
// require_verified are refused to callers without a verified number.
func (p *Phone) passThrough(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	stripPhoneHeaders(r.Header)
	var id *bearer.Identity
	auth := r.Header.Get("Authorization")
	var authErr error = bearer.ErrMissing
	if auth != "" {
		id, authErr = p.verifier.Verify(r.Context(), auth)
	}
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, id)
	}
	gated := p.gate != nil && p.gate.Match(r)
	if id == nil {
		if gated {
			p.writeError(w, native{p}, errBadToken(!errors.Is(authErr, bearer.ErrMissing)))
			return nil
		}
		return next.ServeHTTP(w, r)
	}
	if !gated && !p.InjectHeaders {
		return next.ServeHTTP(w, r)
	}
	u, err := p.peek(r.Context(), id.UserID)
	if err != nil {
		if gated {
			p.writeError(w, native{p}, err)
			return nil
		}
		// The app does its own auth: an outage of our store must not
		// take it down. It just hears nothing from us this time.
		p.logger.Warn("user store unavailable; phone headers not set", zap.Error(err))
		return next.ServeHTTP(w, r)
	}
	if gated && (!u.Verified || u.PhoneNumber == "") {
		p.writeError(w, native{p}, errPhoneNotVerified())
		return nil
	}
	if p.InjectHeaders {
		injectPhone(r, id.UserID, u)
	}
	return next.ServeHTTP(w, r)
}

// injectPhone tells the app who is calling and with which number.
func injectPhone(r *http.Request, userID string, u store.User) {
	verified := "false"
	if u.Verified && u.PhoneNumber != "" {
		verified = "true"
	}
	r.Header.Set("X-Phone-User", userID)
	if u.PhoneNumber != "" {
		r.Header.Set("X-Phone-Number", u.PhoneNumber)
	}
	r.Header.Set("X-Phone-Verified", verified)
	caddyhttp.SetVar(r.Context(), "phone_user_id", userID)
	caddyhttp.SetVar(r.Context(), "phone_number", u.PhoneNumber)
	caddyhttp.SetVar(r.Context(), "phone_verified", verified)
}

// stripPhoneHeaders deletes every X-Phone-* request header. Header keys are
// canonical after Go's parser, but a handler before us may have added a
// raw one, so the match ignores case.
func stripPhoneHeaders(h http.Header) {
	for k := range h {
		if len(k) >= 8 && strings.EqualFold(k[:8], "X-Phone-") {
			delete(h, k)
		}
	}
}

// setAuthUser sets http.auth.user.id (and .<claim> for string claims) as
// Caddy's own auth handler does, or "" so a placeholder never leaks as
// literal text.
func setAuthUser(repl *caddy.Replacer, id *bearer.Identity) {
	if id == nil {
		repl.Set("http.auth.user.id", "")
		return
	}
	repl.Set("http.auth.user.id", id.UserID)
	for k, v := range id.Claims {
		if s, ok := v.(string); ok && k != "id" {
			repl.Set("http.auth.user."+k, s)
		}
	}
}

func replaceAll(repl *caddy.Replacer, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = repl.ReplaceKnown(s, "")
	}
	return out
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Phone)(nil)
	_ caddy.Validator             = (*Phone)(nil)
	_ caddy.CleanerUpper          = (*Phone)(nil)
	_ caddyhttp.MiddlewareHandler = (*Phone)(nil)
	_ caddyfile.Unmarshaler       = (*Phone)(nil)
)
