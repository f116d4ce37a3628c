package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(PostgresStore{}) }

// PostgresStore is `store postgres`: one truth for several Caddy
// instances, optionally kept in sync with a legacy users table.
//
//	store postgres <dsn> {
//	    schema          <schema>
//	    users_table     <table>
//	    id_column       <column>
//	    phone_column    <column>
//	    verified_column <column>
//	    timeout         <duration>
//	}
type PostgresStore struct {
	// Connection string or URL. Placeholders such as {env.X} are expanded.
	DSN string `json:"dsn,omitempty"`
	// Schema for the module's tables; default the search_path.
	Schema string `json:"schema,omitempty"`
	// A legacy users table that also receives the verified number.
	UsersTable string `json:"users_table,omitempty"`
	// The legacy table's key column; default id.
	IDColumn string `json:"id_column,omitempty"`
	// The legacy table's phone column; default phone.
	PhoneColumn string `json:"phone_column,omitempty"`
	// The legacy table's verified flag; default phone_verified when present.
	VerifiedColumn string `json:"verified_column,omitempty"`
	// Bound on one call; default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	dsn string // expanded
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: storeNamespace + ".postgres", New: func() caddy.Module { return new(PostgresStore) }}
}

// UnmarshalCaddyfile reads the DSN and the block.
func (s *PostgresStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.Errf("store postgres: want a DSN")
	}
	s.DSN = d.Val()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "store postgres", map[string]setting{
		"schema":          str(&s.Schema),
		"users_table":     str(&s.UsersTable),
		"id_column":       str(&s.IDColumn),
		"phone_column":    str(&s.PhoneColumn),
		"verified_column": str(&s.VerifiedColumn),
		"timeout":         dur(&s.Timeout),
	})
}

// Provision expands the DSN.
func (s *PostgresStore) Provision(caddy.Context) error {
	s.dsn = caddy.NewReplacer().ReplaceKnown(s.DSN, "")
	return nil
}

// String names the store for messages: not the DSN, which may hold a
// password.
func (s *PostgresStore) String() string {
	if s.Schema != "" {
		return "store postgres (schema " + s.Schema + ")"
	}
	return "store postgres"
}

// OpenStore connects and creates or migrates the tables; the namespace is
// the id kept in the database, whatever DSN reached it.
func (s *PostgresStore) OpenStore(ctx caddy.Context) (store.Backend, error) {
	u, err := store.OpenPostgres(ctx, store.PostgresConfig{DSN: s.dsn, Schema: s.Schema, UsersTable: s.UsersTable,
		IDColumn: s.IDColumn, PhoneColumn: s.PhoneColumn, VerifiedColumn: s.VerifiedColumn,
		QueryTimeout: time.Duration(s.Timeout)})
	if err != nil {
		return store.Backend{}, err
	}
	return u.Backend(), nil
}

var (
	_ StoreModule           = (*PostgresStore)(nil)
	_ caddy.Provisioner     = (*PostgresStore)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStore)(nil)
)
