package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// HTTP user store defaults.
const (
	defaultHTTPTimeout = 5 * time.Second
	defaultHTTPRetries = 2
	// maxHTTPRetries bounds Retries: a read never costs more than
	// (maxHTTPRetries+1) timeouts.
	maxHTTPRetries = 10
	// httpBackoff is the wait before the first retry; it doubles for each
	// later one, up to httpMaxBackoff.
	httpBackoff    = 100 * time.Millisecond
	httpMaxBackoff = time.Second
	// maxHTTPBody bounds what is read from any response.
	maxHTTPBody = 1 << 20
)

// errUnsafeUserID refuses a user ID that some servers and proxies would
// read as a "." or ".." path segment even once escaped.
var errUnsafeUserID = errors.New(`store: http: user id has a "." or ".." segment and cannot be sent in a URL`)

// errBodyTooLarge marks a response over maxHTTPBody; retrying will not help.
var errBodyTooLarge = fmt.Errorf("response body over %d bytes", maxHTTPBody)

// HTTPConfig configures HTTPUsers: the legacy app's own user API is the
// source of truth for each user's single phone number.
//
// The app's side of the contract:
//
//   - Get (default GET /users/{user_id}) answers 200 with a JSON object
//     holding PhoneField (an E.164 string, or null/absent/"" when the user
//     has no number) and VerifiedField (a boolean, or 0/1; absent means
//     false), or 404 when it does not know the user (no number).
//   - Set (default PATCH /users/{user_id}) receives
//     {"<phone_field>": "<E.164>"|null, "<verified_field>": true|false}
//     as application/json and answers 2xx once the change is stored. When
//     the body says verified and another user holds that number verified,
//     the app writes nothing and answers 409 Conflict; the check and the
//     write must be one atomic step on its side (a unique index, a lock),
//     because uniqueness is the app's job, not this store's. 409 is not
//     allowed for an unverified write: storing a number unverified is
//     always accepted, so no one learns whose number it is before proving
//     possession.
//
// Any other answer, a timeout or a connection error is ErrUnavailable.
// Redirects are not followed: an internal API should not redirect, and
// Go's client would turn a redirected PATCH into a GET that "succeeds".
type HTTPConfig struct {
	// BaseURL is the app's root, http:// or https://, with an optional
	// path prefix; no credentials, query or fragment.
	BaseURL string
	// GetMethod and GetPath read a user (default GET /users/{user_id}).
	// {user_id} is replaced by the path-escaped user ID (query-escaped
	// after a '?'). Reads are retried only when the method is GET.
	GetMethod, GetPath string
	// SetMethod and SetPath write a user (default PATCH /users/{user_id});
	// PATCH, PUT or POST.
	SetMethod, SetPath string
	// Headers are sent on every request (Authorization, …), final values:
	// the Caddy glue has already replaced placeholders such as {env.X}.
	// They never appear in error text. "Host" sets the request's Host.
	Headers map[string]string
	// PhoneField is the JSON field holding the number (default "phone").
	// A dotted path such as "profile.phone" reads a nested field and
	// writes nested objects ({"profile":{"phone":…}}, the JSON merge
	// patch shape).
	PhoneField string
	// VerifiedField is the JSON field holding the verified flag (default
	// "phone_verified"); dotted paths as for PhoneField.
	VerifiedField string
	// Timeout bounds each attempt, body included (default 5s).
	Timeout time.Duration
	// Retries is the number of extra attempts a GET read makes after a
	// 5xx, a timeout or a connection error, waiting 100ms, 200ms, … in
	// between (default 2 when 0; negative means none; at most 10). Writes
	// are never retried: one attempt, so a slow app cannot see a write
	// twice.
	Retries int
	// Client sends the requests (default: a client of its own). Its
	// redirect policy is replaced so that redirects are not followed.
	Client *http.Client
}

// HTTPUsers is a Users backed by the legacy app's user API. It holds one
// number per user.
type HTTPUsers struct {
	base          string // scheme://host[/prefix], no trailing slash
	get, set      httpEndpoint
	headers       http.Header
	host          string // Host header override
	phoneField    []string
	verifiedField []string
	timeout       time.Duration
	retries       int
	client        *http.Client
	ownClient     bool
	closed        atomic.Bool
}

type httpEndpoint struct {
	method string
	path   string // template, e.g. /users/{user_id}
}

// NewHTTPUsers checks cfg, fills its defaults and returns the store. It
// makes no request: the app may start after Caddy.
func NewHTTPUsers(cfg HTTPConfig) (*HTTPUsers, error) {
	h := &HTTPUsers{
		timeout: cfg.Timeout,
		retries: cfg.Retries,
		headers: http.Header{},
	}
	bad := func(format string, a ...any) (*HTTPUsers, error) {
		return nil, fmt.Errorf("store: http: "+format, a...)
	}

	base, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		return bad("base URL is empty")
	case err != nil:
		// Not even the parser's reason: it quotes parts of the URL, which
		// may hold a credential.
		return bad("base URL is not a valid URL (scheme://host[:port][/prefix])")
	case base.Scheme != "http" && base.Scheme != "https":
		return bad("base URL %q: scheme must be http or https", base.Redacted())
	case base.Host == "" || base.Hostname() == "":
		return bad("base URL %q: no host", base.Redacted())
	case base.User != nil:
		return bad("base URL %q: credentials go in a header, not the URL", base.Redacted())
	case base.RawQuery != "" || base.ForceQuery || base.Fragment != "":
		return bad("base URL %q: no query or fragment allowed", base.Redacted())
	}
	h.base = base.Scheme + "://" + base.Host + strings.TrimRight(base.EscapedPath(), "/")

	var ok bool
	if h.get, ok = endpoint(cfg.GetMethod, cfg.GetPath, http.MethodGet, "/users/{user_id}"); !ok {
		return bad("get: method and path go together")
	}
	if h.set, ok = endpoint(cfg.SetMethod, cfg.SetPath, http.MethodPatch, "/users/{user_id}"); !ok {
		return bad("set: method and path go together")
	}
	switch h.get.method {
	case http.MethodGet, http.MethodPost:
	default:
		return bad("get: method %q: want GET or POST", h.get.method)
	}
	switch h.set.method {
	case http.MethodPatch, http.MethodPut, http.MethodPost:
	default:
		return bad("set: method %q: want PATCH, PUT or POST", h.set.method)
	}
	for _, e := range []struct {
		name, path string
	}{
		{"get", h.get.path},
		{"set", h.set.path},
	} {
		if err := checkTemplate(h.base, e.path); err != nil {
			return bad("%s path %q: %v", e.name, e.path, err)
		}
	}

	for name, value := range cfg.Headers {
		if !isHTTPToken(name) {
			return bad("header name %q is not a valid HTTP token", name)
		}
		// The value is never quoted: it may be a credential.
		if strings.TrimSpace(value) == "" {
			return bad("header %q has an empty value (an unset {env.*} placeholder?)", name)
		}
		// "Bearer " is what "Bearer {env.TOKEN}" becomes when TOKEN is unset.
		if strings.TrimSpace(value) != value {
			return bad("header %q: value starts or ends with a space (an unset {env.*} placeholder?)", name)
		}
		if strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return bad("header %q: value holds a control character", name)
		}
		if http.CanonicalHeaderKey(name) == "Host" {
			h.host = value
			continue
		}
		h.headers.Set(name, value)
	}
	if h.headers.Get("Accept") == "" {
		h.headers.Set("Accept", "application/json")
	}
	if h.headers.Get("User-Agent") == "" {
		h.headers.Set("User-Agent", "caddy-phone")
	}

	fields := []struct {
		name string
		val  string
		def  string
		dst  *[]string
	}{
		{"phone_field", cfg.PhoneField, "phone", &h.phoneField},
		{"verified_field", cfg.VerifiedField, "phone_verified", &h.verifiedField},
	}
	for _, f := range fields {
		v := f.val
		if v == "" {
			v = f.def
		}
		segs := strings.Split(v, ".")
		for _, s := range segs {
			if strings.TrimSpace(s) == "" {
				return bad("%s %q: empty name in dotted path", f.name, v)
			}
		}
		*f.dst = segs
	}
	if overlaps(h.phoneField, h.verifiedField) {
		return bad("phone_field %q and verified_field %q overlap: a write could not hold both",
			strings.Join(h.phoneField, "."), strings.Join(h.verifiedField, "."))
	}

	switch {
	case h.timeout < 0:
		return bad("timeout %v is negative", h.timeout)
	case h.timeout == 0:
		h.timeout = defaultHTTPTimeout
	}
	switch {
	case h.retries == 0:
		h.retries = defaultHTTPRetries
	case h.retries < 0:
		h.retries = 0
	case h.retries > maxHTTPRetries:
		return bad("retries %d: at most %d", h.retries, maxHTTPRetries)
	}

	if cfg.Client != nil {
		c := *cfg.Client // shallow: the Transport and its connections are shared
		h.client = &c
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		h.client = &http.Client{Transport: tr}
		h.ownClient = true
	}
	h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return h, nil
}

// endpoint fills the default method and path; ok is false when only one
// of them is given.
func endpoint(method, path, defMethod, defPath string) (httpEndpoint, bool) {
	if method == "" && path == "" {
		return httpEndpoint{method: defMethod, path: defPath}, true
	}
	if method == "" || path == "" {
		return httpEndpoint{}, false
	}
	return httpEndpoint{method: strings.ToUpper(method), path: path}, true
}

// userIDPlaceholder stands for the user ID in a path template.
const userIDPlaceholder = "{user_id}"

// checkTemplate makes sure path starts with '/', holds {user_id} and no
// other {…}, and makes a valid URL once expanded.
func checkTemplate(base, path string) error {
	const placeholder = userIDPlaceholder
	if !strings.HasPrefix(path, "/") {
		return errors.New("must start with /")
	}
	if !strings.Contains(path, placeholder) {
		return fmt.Errorf("must contain %s", placeholder)
	}
	if rest := strings.ReplaceAll(path, placeholder, ""); strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("unknown placeholder (only %s is replaced)", placeholder)
	}
	if strings.Contains(path, "#") {
		return errors.New("no fragment allowed")
	}
	u, err := url.Parse(base + strings.ReplaceAll(path, placeholder, "x"))
	if err != nil {
		return err
	}
	if u.Fragment != "" {
		return errors.New("no fragment allowed")
	}
	return nil
}

// overlaps reports whether two dotted paths are equal or one lies inside
// the other.
func overlaps(a, b []string) bool {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Get reads the user from the app. 404 is a user with no number.
func (h *HTTPUsers) Get(ctx context.Context, userID string) (User, error) {
	u := User{ID: userID}
	if userID == "" {
		return u, nil // no one can hold a number under no ID (Set refuses it)
	}
	if err := checkUserID(userID); err != nil {
		return User{}, err
	}
	retries := 0
	if h.get.method == http.MethodGet {
		retries = h.retries
	}
	status, body, attempts, err := h.do(ctx, h.get, userID, nil, retries)
	if err != nil {
		return User{}, err
	}
	switch {
	case status == http.StatusNotFound:
		return u, nil
	case status < 200 || status > 299:
		return User{}, h.statusErr(h.get, status, attempts)
	}
	obj, err := decodeObject(body)
	if err != nil {
		return User{}, h.fail(h.get, err)
	}
	if u.PhoneNumber, err = phoneAt(obj, h.phoneField); err != nil {
		return User{}, h.fail(h.get, err)
	}
	if u.Verified, err = boolAt(obj, h.verifiedField); err != nil {
		return User{}, h.fail(h.get, err)
	}
	if u.PhoneNumber == "" {
		u.Verified = false
	}
	return u, nil
}

// Set writes the user's number in one attempt, never retried. 409 from
// the app on a verified write is ErrPhoneInUse. After a timeout the app
// may or may not have applied the write; the body carries the whole new
// state, so sending the same Set again is harmless.
func (h *HTTPUsers) Set(ctx context.Context, u User) error {
	if u.ID == "" {
		return errEmptyUserID
	}
	if err := checkUserID(u.ID); err != nil {
		return err
	}
	var phone any // JSON null removes the number
	if u.PhoneNumber != "" {
		phone = u.PhoneNumber
	} else {
		u.Verified = false
	}
	doc := map[string]any{}
	putAt(doc, h.phoneField, phone)
	putAt(doc, h.verifiedField, u.Verified)
	body, err := json.Marshal(doc)
	if err != nil {
		return h.fail(h.set, err)
	}
	status, _, _, err := h.do(ctx, h.set, u.ID, body, 0)
	if err != nil {
		return err
	}
	switch {
	case status >= 200 && status <= 299:
		return nil
	case status == http.StatusConflict && u.Verified:
		return ErrPhoneInUse
	case status == http.StatusConflict:
		return h.fail(h.set, errors.New("status 409 for an unverified write: the app must accept unverified numbers and answer 409 only when verifying a number another user holds verified"))
	default:
		return h.statusErr(h.set, status, 1)
	}
}

// Close drops idle connections (when the client is this store's own);
// later calls fail with ErrUnavailable.
func (h *HTTPUsers) Close() error {
	h.closed.Store(true)
	if h.ownClient {
		h.client.CloseIdleConnections()
	}
	return nil
}

var _ Users = (*HTTPUsers)(nil)
