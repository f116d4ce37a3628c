package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// checkUserID refuses IDs holding a "." or ".." segment (split on '/' or
// '\'): escaping alone does not protect them, since servers and proxies
// such as nginx decode %2E and %2F before resolving dot segments, which
// would aim the request at another resource.
func checkUserID(id string) error {
	for _, seg := range strings.FieldsFunc(id, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return errUnsafeUserID
		}
	}
	return nil
}

// expand replaces {user_id} in the template with userID, path-escaped
// before any '?' and query-escaped after it.
func (h *HTTPUsers) expand(tmpl, userID string) string {
	path, query, hasQuery := strings.Cut(tmpl, "?")
	out := h.base + strings.ReplaceAll(path, userIDPlaceholder, url.PathEscape(userID))
	if hasQuery {
		out += "?" + strings.ReplaceAll(query, userIDPlaceholder, url.QueryEscape(userID))
	}
	return out
}

// describe names an endpoint in error text: the template, never the
// expanded URL.
func (h *HTTPUsers) describe(e httpEndpoint) string {
	return e.method + " " + h.base + e.path
}

// fail wraps err as ErrUnavailable, naming the endpoint.
func (h *HTTPUsers) fail(e httpEndpoint, err error) error {
	return fmt.Errorf("%w: http %s: %w", ErrUnavailable, h.describe(e), err)
}

func (h *HTTPUsers) statusErr(e httpEndpoint, status, attempts int) error {
	return fmt.Errorf("%w: %w", ErrUnavailable,
		&HTTPStatusError{Method: e.method, URL: h.base + e.path, StatusCode: status, Attempts: attempts})
}

// HTTPStatusError is an unexpected status from the app, wrapped in
// ErrUnavailable. 401 and 403 mean the configured credentials (headers)
// are wrong: worth an error-level log, retrying will not help.
type HTTPStatusError struct {
	Method     string
	URL        string // the template, e.g. http://app/users/{user_id}
	StatusCode int
	Attempts   int
}

func (e *HTTPStatusError) Error() string {
	msg := fmt.Sprintf("http %s %s: status %d", e.Method, e.URL, e.StatusCode)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		msg += " (check the credentials in the configured headers)"
	case e.StatusCode >= 300 && e.StatusCode <= 399:
		msg += " (redirects are not followed: check the base URL)"
	}
	return msg
}

// do sends the request, retrying up to retries times on a 5xx, a timeout
// or a connection error. It returns the last status with its body (read
// only for 2xx) and the number of attempts made, or an error wrapping
// ErrUnavailable.
func (h *HTTPUsers) do(ctx context.Context, e httpEndpoint, userID string, body []byte, retries int) (status int, respBody []byte, attempts int, err error) {
	if h.closed.Load() {
		return 0, nil, 0, h.fail(e, errors.New("store closed"))
	}
	target := h.expand(e.path, userID)
	for attempts = 1; ; attempts++ {
		status, respBody, err = h.once(ctx, e.method, target, body)
		if err == nil && status < 500 {
			return status, respBody, attempts, nil
		}
		if ctx.Err() != nil {
			// The caller gave up: no retry, and its reason is the error.
			return 0, nil, attempts, h.fail(e, ctx.Err())
		}
		if errors.Is(err, errBodyTooLarge) {
			return 0, nil, attempts, h.fail(e, err)
		}
		if attempts > retries {
			if err != nil {
				if attempts > 1 {
					err = fmt.Errorf("%w (after %d attempts)", err, attempts)
				}
				return 0, nil, attempts, h.fail(e, err)
			}
			return status, nil, attempts, nil // the caller turns the 5xx into an error
		}
		t := time.NewTimer(min(httpBackoff<<(attempts-1), httpMaxBackoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, attempts, h.fail(e, ctx.Err())
		case <-t.C:
		}
	}
}

// once makes one attempt bounded by the timeout, body read included.
// Transport errors come back without the URL, which may hold a number.
func (h *HTTPUsers) once(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, stripURL(err)
	}
	req.Header = h.headers.Clone()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.host != "" {
		req.Host = h.host
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, h.attemptErr(ctx, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drained a little so the connection can be reused; never shown:
		// an error page may echo the request.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody+1))
	if err != nil {
		return 0, nil, h.attemptErr(ctx, fmt.Errorf("reading response: %w", stripURL(err)))
	}
	if len(b) > maxHTTPBody {
		return 0, nil, errBodyTooLarge
	}
	return resp.StatusCode, b, nil
}

// attemptErr names a per-attempt timeout as such.
func (h *HTTPUsers) attemptErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v: %w", h.timeout, err)
	}
	return err
}

// stripURL unwraps *url.Error, whose text holds the whole URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// --- JSON ----------------------------------------------------------------

func decodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty response body")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("response is not JSON: %w", syntaxOnly(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("response holds more than one JSON value")
	}
	return nil
}

// syntaxOnly keeps a decode error's position but not its text, which
// may quote the body.
func syntaxOnly(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return errors.New("invalid JSON")
}

func decodeObject(b []byte) (map[string]any, error) {
	var doc any
	if err := decodeJSON(b, &doc); err != nil {
		return nil, err
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("response is not a JSON object")
	}
	return obj, nil
}

// valueAt follows a dotted path; found is false when a step is absent or
// null on the way.
func valueAt(obj map[string]any, path []string) (v any, found bool, err error) {
	cur := any(obj)
	for i, name := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("field %q is not a JSON object", strings.Join(path[:i], "."))
		}
		if cur, ok = m[name]; !ok {
			return nil, false, nil
		}
		if cur == nil && i < len(path)-1 {
			return nil, false, nil
		}
	}
	return cur, true, nil
}

// putAt sets a dotted path, creating nested objects.
func putAt(obj map[string]any, path []string, v any) {
	for _, name := range path[:len(path)-1] {
		next, ok := obj[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[name] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = v
}

// phoneAt reads the number: a string, or null/absent/"" for none. The
// value itself never goes into an error.
func phoneAt(obj map[string]any, path []string) (string, error) {
	v, _, err := valueAt(obj, path)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	default:
		return "", fmt.Errorf("field %q is %s, want a string or null", strings.Join(path, "."), jsonKind(v))
	}
}

// boolAt reads the verified flag: absent or null is false.
func boolAt(obj map[string]any, path []string) (bool, error) {
	v, _, err := valueAt(obj, path)
	if err != nil || v == nil {
		return false, err
	}
	return asBool(v, path)
}

// asBool accepts a JSON boolean, or 0/1 as some databases store it.
func asBool(v any, path []string) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case json.Number:
		switch v.String() {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
	}
	return false, fmt.Errorf("field %q is %s, want a boolean", strings.Join(path, "."), jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

var _ Users = (*HTTPUsers)(nil)
