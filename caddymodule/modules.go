package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// The backends are Caddy guest modules, as reverse_proxy's transports are:
// each one is a file (store_*.go, cache_*.go, sms_*.go) that owns its
// config struct, its Caddyfile block and how it opens. The handler only
// loads them and talks to the interfaces below, so a third party can add a
// backend with a plug-in of its own. A module's Provision expands
// placeholders and checks its settings without any I/O; the handler opens
// the backends only once every setting of the config has been checked.
const (
	storeNamespace = "phone.store" // modules phone.store.<backend>
	cacheNamespace = "phone.cache" // modules phone.cache.<backend>
	smsNamespace   = "phone.sms"   // modules phone.sms.<provider>
)

// StoreModule is a user-store backend (`store <backend> …`).
type StoreModule interface {
	caddy.Module
	// OpenStore connects, creating tables when needed, and says what the
	// backend can do. Its Namespace names the data it reached (an id kept
	// in the database): handlers, on one instance or several, whose stores
	// have the same Namespace share challenges and counters in a shared
	// cache; two with different ones never see each other's. A module may
	// also be a fmt.Stringer, naming its data for messages (no secrets).
	OpenStore(ctx caddy.Context) (store.Backend, error)
}

// CacheModule is a challenge-cache backend (`cache <backend> …`).
type CacheModule interface {
	caddy.Module
	// PoolKey names the cache for sharing across config reloads: configs
	// with the same key use one cache.
	PoolKey() string
	// Shared reports whether other processes may read the cache too; they
	// must then hash codes with the same configured `secret`.
	Shared() bool
	// OpenCache connects.
	OpenCache(ctx caddy.Context, logger *zap.Logger) (ClosingCache, error)
}

// ClosingCache is a cache the handler closes when no config uses it.
type ClosingCache interface {
	store.Cache
	Close() error
}

// SMSModule is one provider of the failover chain (`sms <provider> …`).
type SMSModule interface {
	caddy.Module
	// Provider returns the sender, built when the module was provisioned.
	Provider(logger *zap.Logger) sms.Provider
}

// backendModule reads the backend's name after a directive (`store sqlite`)
// and hands the rest of the line and its block to that backend's module,
// which parses them itself. It returns the module's JSON object with the
// name under key, as `caddy adapt` writes it.
func backendModule(d *caddyfile.Dispenser, namespace, key string) (json.RawMessage, error) {
	dir := d.Val()
	if !d.NextArg() {
		return nil, d.Errf("%s: want a %s (%s)", dir, key, moduleNames(namespace))
	}
	name := d.Val()
	if _, err := caddy.GetModule(namespace + "." + name); err != nil {
		return nil, d.Errf("%s: unknown %s %q (%s)", dir, key, name, moduleNames(namespace))
	}
	unm, err := caddyfile.UnmarshalModule(d, namespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, key, name, nil), nil
}

// moduleNames lists the registered backends of a namespace, for messages:
// a plug-in's backend shows up here without any edit.
func moduleNames(namespace string) string {
	var names []string
	for _, m := range caddy.GetModules(namespace) {
		names = append(names, m.ID.Name())
	}
	return strings.Join(names, ", ")
}

// withDefault gives a backend object without its inline key the default
// backend, as the JSON config has always allowed (`"cache": {"max_size": …}`).
func withDefault(raw json.RawMessage, key, def string) (json.RawMessage, error) {
	if len(raw) == 0 {
		return json.RawMessage(fmt.Sprintf(`{%q:%q}`, key, def)), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if v, ok := obj[key]; ok && string(v) != `""` {
		return raw, nil
	}
	obj[key], _ = json.Marshal(def)
	return json.Marshal(obj)
}
