package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(HTTPStore{}) }

// HTTPStore is `store http`: the legacy app's own user API is the truth.
//
//	store http <base-url> {
//	    get            <method> <path>
//	    set            <method> <path>
//	    header         <name> <value>
//	    phone_field    <field>
//	    verified_field <field>
//	    timeout        <duration>
//	    namespace      <name>
//	}
type HTTPStore struct {
	// The legacy app's base URL.
	URL string `json:"url,omitempty"`
	// How to read a user; default GET /users/{user_id}.
	Get *HTTPEndpoint `json:"get,omitempty"`
	// How to write a user; default PATCH /users/{user_id}.
	Set *HTTPEndpoint `json:"set,omitempty"`
	// Headers sent on every request; placeholders such as {env.X} expanded.
	Headers map[string]string `json:"headers,omitempty"`
	// JSON field of the number; default phone.
	PhoneField string `json:"phone_field,omitempty"`
	// JSON field of the verified flag; default phone_verified.
	VerifiedField string `json:"verified_field,omitempty"`
	// Bound on one call; default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Names the app's data in the shared cache: instances whose `store
	// http` have the same namespace share challenges and counters, however
	// they reach the app. Default: the base URL, as written.
	Namespace string `json:"namespace,omitempty"`

	cfg       store.HTTPConfig // expanded
	namespace string           // expanded
}

// HTTPEndpoint is a method and a path template with {user_id}.
type HTTPEndpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// CaddyModule returns the Caddy module information.
func (HTTPStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: storeNamespace + ".http", New: func() caddy.Module { return new(HTTPStore) }}
}

// UnmarshalCaddyfile reads the base URL and the block.
func (s *HTTPStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.Errf("store http: want the app's base URL")
	}
	s.URL = d.Val()
	if err := noArgs(d); err != nil {
		return err
	}
	endpoint := func(dst **HTTPEndpoint) setting {
		return func(d *caddyfile.Dispenser) error {
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("store http: %s: want <method> <path>", d.Val())
			}
			*dst = &HTTPEndpoint{Method: args[0], Path: args[1]}
			return nil
		}
	}
	return parseBlock(d, 0, "store http", map[string]setting{
		"get": endpoint(&s.Get),
		"set": endpoint(&s.Set),
		"header": func(d *caddyfile.Dispenser) error {
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("store http: header: want <name> <value>")
			}
			if _, dup := s.Headers[args[0]]; dup {
				return d.Errf("store http: header %s: already specified", args[0])
			}
			if s.Headers == nil {
				s.Headers = map[string]string{}
			}
			s.Headers[args[0]] = args[1]
			return nil
		},
		"phone_field":    str(&s.PhoneField),
		"verified_field": str(&s.VerifiedField),
		"timeout":        dur(&s.Timeout),
		"namespace":      str(&s.Namespace),
	}, "header")
}

// Provision expands the URL and the headers and checks them all.
func (s *HTTPStore) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	s.cfg = store.HTTPConfig{BaseURL: repl.ReplaceKnown(s.URL, ""), PhoneField: s.PhoneField,
		VerifiedField: s.VerifiedField, Timeout: time.Duration(s.Timeout), Headers: make(map[string]string, len(s.Headers))}
	if s.Get != nil {
		s.cfg.GetMethod, s.cfg.GetPath = s.Get.Method, s.Get.Path
	}
	if s.Set != nil {
		s.cfg.SetMethod, s.cfg.SetPath = s.Set.Method, s.Set.Path
	}
	for k, v := range s.Headers {
		s.cfg.Headers[k] = repl.ReplaceKnown(v, "")
	}
	s.namespace = repl.ReplaceKnown(s.Namespace, "")
	// NewHTTPUsers makes no request: it only checks.
	_, err := store.NewHTTPUsers(s.cfg)
	return err
}

// String names the app, for messages.
func (s *HTTPStore) String() string { return "store http " + s.cfg.BaseURL }

// OpenStore returns the store; the app may start after Caddy. The app's
// API cannot name its data, so the namespace is the configured one, or
// else the base URL as written (the formula of the first releases, so
// that codes open in a shared cache survive an upgrade).
func (s *HTTPStore) OpenStore(caddy.Context) (store.Backend, error) {
	u, err := store.NewHTTPUsers(s.cfg)
	if err != nil {
		return store.Backend{}, err
	}
	b := u.Backend()
	b.Namespace = "http:" + s.namespace
	if s.namespace == "" {
		b.Namespace = "http\x00\x00\x00\x00" + s.cfg.BaseURL
	}
	return b, nil
}

var (
	_ StoreModule           = (*HTTPStore)(nil)
	_ caddy.Provisioner     = (*HTTPStore)(nil)
	_ caddyfile.Unmarshaler = (*HTTPStore)(nil)
)
