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
	"time"
)

// The http store on the wire: the URLs it builds, its attempts and retries,
// errors that carry no user data, and the JSON of the answers.

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
