// Package caddymodule is the Caddy side of caddy-phone: the
// http.handlers.phone module, its Caddyfile directive, the /phone routes,
// bearer-token checks and the phone-token command. The rules themselves
// live in the Caddy-free package flow.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
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
	Limits LimitsConfig `json:"limits,omitempty"`
	// Number policy.
	Numbers *NumbersConfig `json:"numbers,omitempty"`
	// User store, a phone.store.* module named by "backend"; default
	// sqlite ./phone.db.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=phone.store inline_key=backend"`
	// Challenge cache, a phone.cache.* module named by "backend"; default
	// bigcache.
	CacheRaw json.RawMessage `json:"cache,omitempty" caddy:"namespace=phone.cache inline_key=backend"`
	// HMAC key for codes at rest (at least 16 bytes). Default: a random key
	// kept with the cache, so it survives reloads.
	Secret string `json:"secret,omitempty"`
	// SMS providers, phone.sms.* modules named by "provider", tried in
	// order.
	SMSRaw []json.RawMessage `json:"sms,omitempty" caddy:"namespace=phone.sms inline_key=provider"`
	// Message text with {code}, {app}, {minutes}: SMS's, and that of any
	// channel without templates of its own.
	Template string `json:"template,omitempty"`
	// Per-locale message texts.
	Templates map[string]string `json:"templates,omitempty"`
	// The channels a caller may ask for: sms, whatsapp, voice. Default sms
	// alone. Each must be carried by a configured provider.
	Channels []string `json:"channels,omitempty"`
	// The texts of whatsapp and voice when they have their own
	// (`template voice [<locale>] "…"`), by channel.
	ChannelTemplates map[string]ChannelTemplates `json:"channel_templates,omitempty"`
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
	// The seed products' SDK shapes to serve: descope, reachfive, ….
	Compat []string `json:"compat,omitempty"`
	// The options of the vendors in Compat that take any (`compat <name>
	// { … }`), by vendor name; each vendor's file says what its hold.
	CompatOptions map[string]json.RawMessage `json:"compat_options,omitempty"`
	// Clerk-shaped admin endpoints under <prefix>/v1/.
	Admin *AdminConfig `json:"admin,omitempty"`
	// Origins (scheme://host[:port]) whose browsers may call the user API
	// and the compat routes (cors.go).
	CORS []string `json:"cors,omitempty"`

	logger   *zap.Logger
	verifier *bearer.Verifier
	service  *flow.Service
	users    store.Users
	// backend is what the store can do (store.Backend), as it opened.
	backend store.Backend
	// peek reads a user for inject_headers, through the read cache when
	// the store has one: the one read that may lag (SPEC §9), by at most
	// readCacheTTL.
	peek  func(ctx context.Context, userID string) (store.User, error)
	cache *sharedCache
	// storeID is the store module's identity: the cache namespace.
	storeID string
	// flowCache is this handler's view of the shared cache: its store's keys.
	flowCache store.Cache
	maxAge    time.Duration
	gate      caddyhttp.MatchPath
	// vendors are the dialects `compat` turned on.
	vendors    []activeVendor
	routeAdmin string    // <prefix>/v1/
	admin      *adminAPI // set by `admin`
	// corsOrigins are the `cors` origins, normalised; nil without it.
	corsOrigins map[string]struct{}
	// eventsRT is what `events` started (events_glue.go); nil without it.
	eventsRT *eventsRuntime
	// indexNumbers: a vendor finds users by the number their code went
	// to (compat supabase), so the rules keep that index (flow.Config).
	indexNumbers bool
	// indexLoginIDs: a vendor finds users by a login ID their update
	// named (Descope's login_id_claim).
	indexLoginIDs bool
}

// CaddyModule returns the Caddy module information.
func (Phone) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.phone",
		New: func() caddy.Module { return new(Phone) },
	}
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
	if _, admin := d.(clerk); !admin && p.cors(w, r) {
		return nil
	}
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
	read := p.peek
	if gated {
		// A gate is a decision, not a hint: it reads fresh.
		read = p.users.Get
	}
	u, err := read(r.Context(), id.UserID)
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
	id.StringClaims(func(k, s string) bool {
		if k != "id" {
			repl.Set(authUserKey(k), s)
		}
		return true
	})
}

// authUserKey is "http.auth.user."+claim, made once per claim name (a
// token's claims are its issuer's few names), not on every request.
func authUserKey(claim string) string {
	return authUserKeys.get(claim, func() string { return "http.auth.user." + claim })
}

var authUserKeys = internTable[string, string]{max: 256}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Phone)(nil)
	_ caddy.Validator             = (*Phone)(nil)
	_ caddy.CleanerUpper          = (*Phone)(nil)
	_ caddyhttp.MiddlewareHandler = (*Phone)(nil)
	_ caddyfile.Unmarshaler       = (*Phone)(nil)
)
