package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(SQLiteStore{}) }

// SQLiteStore is `store sqlite`, the embedded default: one file beside
// Caddy, shared by the processes that open it.
//
//	store sqlite [<path>]
type SQLiteStore struct {
	// Database file; default ./phone.db. Placeholders such as {env.X} are expanded.
	Path string `json:"path,omitempty"`

	path string // expanded
}

const defaultSQLitePath = "./phone.db"

// CaddyModule returns the Caddy module information.
func (SQLiteStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: storeNamespace + ".sqlite", New: func() caddy.Module { return new(SQLiteStore) }}
}

// UnmarshalCaddyfile reads the optional path; there is no block.
func (s *SQLiteStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		s.Path = d.Val()
	}
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "store sqlite", nil)
}

// Provision expands the path.
func (s *SQLiteStore) Provision(caddy.Context) error {
	s.path = caddy.NewReplacer().ReplaceKnown(s.Path, "")
	if s.path == "" {
		s.path = defaultSQLitePath
	}
	return nil
}

// String names the file, for messages.
func (s *SQLiteStore) String() string { return "store sqlite " + s.path }

// OpenStore opens the file, creating or migrating its tables; the
// namespace is the id kept in the file.
func (s *SQLiteStore) OpenStore(ctx caddy.Context) (store.Backend, error) {
	u, err := store.OpenSQLite(ctx, s.path)
	if err != nil {
		return store.Backend{}, err
	}
	return u.Backend(), nil
}

var (
	_ StoreModule           = (*SQLiteStore)(nil)
	_ caddy.Provisioner     = (*SQLiteStore)(nil)
	_ caddyfile.Unmarshaler = (*SQLiteStore)(nil)
)
