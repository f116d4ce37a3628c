package caddymodule

import "github.com/caddyserver/caddy/v2"

// JWTConfig is the `jwt { }` block (SPEC §3).
type JWTConfig struct {
	// Shared secret for HS256/384/512. Placeholders such as {env.X} are expanded.
	Secret string `json:"secret,omitempty"`
	// PEM files holding RS*/PS*/ES*/EdDSA public keys.
	PublicKeyFiles []string `json:"public_key_files,omitempty"`
	// URL of a JWKS document: cached, refreshed, kid-aware.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Allow-list of algorithms; default: the family of the keys given.
	Algorithms []string `json:"algorithms,omitempty"`
	// Required `iss`, when set.
	Issuer string `json:"issuer,omitempty"`
	// Accepted `aud` values, when set.
	Audience []string `json:"audience,omitempty"`
	// Claim naming the user; default "sub".
	UserClaim string `json:"user_claim,omitempty"`
	// Clock skew tolerated on exp/nbf/iat.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// Also accept "Bearer <project_id>:<jwt>" (Descope's form).
	ProjectID string `json:"project_id,omitempty"`
	// Update needs a sign-in (auth_time, else iat) younger than this.
	MaxAuthAge caddy.Duration `json:"max_auth_age,omitempty"`
}

// OTPConfig is the `otp { }` block.
type OTPConfig struct {
	// Digits of a code, 4..10; default 6.
	Length int `json:"length,omitempty"`
	// Life of a code; default 10m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Wrong codes allowed per challenge; default 5. Resend keeps the count.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Cooldown before a resend; default 60s. A pointer, because 0 is allowed.
	ResendAfter *caddy.Duration `json:"resend_after,omitempty"`
}

// LimitConfig is one `<count> <window>` budget. Count 0 disables it.
type LimitConfig struct {
	Count  int            `json:"count"`
	Window caddy.Duration `json:"window"`
}

// LimitsConfig is the `limits { }` block; unset budgets keep their defaults.
type LimitsConfig struct {
	PerNumber     *LimitConfig `json:"per_number,omitempty"`
	PerUser       *LimitConfig `json:"per_user,omitempty"`
	PerIP         *LimitConfig `json:"per_ip,omitempty"`
	VerifyPerUser *LimitConfig `json:"verify_per_user,omitempty"`
	VerifyPerIP   *LimitConfig `json:"verify_per_ip,omitempty"`
	Global        *LimitConfig `json:"global,omitempty"`
}

// NumbersConfig is the `numbers { }` block.
type NumbersConfig struct {
	// Region for numbers typed without +; empty requires E.164.
	DefaultRegion string `json:"default_region,omitempty"`
	// ISO country codes accepted; empty accepts all.
	AllowCountries []string `json:"allow_countries,omitempty"`
	// ISO country codes refused.
	DenyCountries []string `json:"deny_countries,omitempty"`
	// Number types accepted; default mobile and fixed_line_or_mobile.
	Types []string `json:"types,omitempty"`
}

// StoreConfig picks the user store.
type StoreConfig struct {
	// memory, sqlite (default), postgres or http.
	Backend string `json:"backend,omitempty"`
	// sqlite: database file; default ./phone.db.
	Path string `json:"path,omitempty"`

	// postgres: connection string or URL.
	DSN string `json:"dsn,omitempty"`
	// postgres: schema for the module's tables; default the search_path.
	Schema string `json:"schema,omitempty"`
	// postgres: a legacy users table that also receives the verified number.
	UsersTable string `json:"users_table,omitempty"`
	// postgres: the legacy table's key column; default id.
	IDColumn string `json:"id_column,omitempty"`
	// postgres: the legacy table's phone column; default phone.
	PhoneColumn string `json:"phone_column,omitempty"`
	// postgres: the legacy table's verified flag; default phone_verified when present.
	VerifiedColumn string `json:"verified_column,omitempty"`

	// http: the legacy app's base URL.
	URL string `json:"url,omitempty"`
	// http: how to read a user; default GET /users/{user_id}.
	Get *HTTPEndpoint `json:"get,omitempty"`
	// http: how to write a user; default PATCH /users/{user_id}.
	Set *HTTPEndpoint `json:"set,omitempty"`
	// http: GET path finding a number's verified holder, with {phone}.
	Lookup string `json:"lookup,omitempty"`
	// http: headers sent on every request; placeholders such as {env.X} expanded.
	Headers map[string]string `json:"headers,omitempty"`
	// http: JSON field of the number; default phone.
	PhoneField string `json:"phone_field,omitempty"`
	// http: JSON field of the verified flag; default phone_verified.
	VerifiedField string `json:"verified_field,omitempty"`
	// http: JSON field of the user ID in lookup answers; default id.
	IDField string `json:"id_field,omitempty"`

	// postgres, http: bound on one call; default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// HTTPEndpoint is a method and a path template with {user_id}.
type HTTPEndpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// CacheConfig picks the challenge cache.
type CacheConfig struct {
	// bigcache (default) or redis.
	Backend string `json:"backend,omitempty"`
	// bigcache: memory bound in bytes; default 256 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// redis: redis:// or rediss:// URL.
	URL string `json:"url,omitempty"`
	// redis: prefix of every key; default phone:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// redis: bound on one command; default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// SMSConfig is one `sms` line; several form a failover chain, in order.
type SMSConfig struct {
	// log, webhook, twilio, vonage or messagebird.
	Provider string `json:"provider"`
	// Name used by provider_id; default the provider's type.
	Name string `json:"name,omitempty"`
	// webhook: the gateway URL.
	URL string `json:"url,omitempty"`
	// webhook: the signing secret.
	Secret string `json:"secret,omitempty"`
	// twilio: the Account SID and auth token (HTTP Basic auth).
	AccountSID string `json:"account_sid,omitempty"`
	AuthToken  string `json:"auth_token,omitempty"`
	// twilio, vonage: the sender number or alphanumeric id.
	From string `json:"from,omitempty"`
	// twilio: a Messaging Service SID, sent instead of from when both are set.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// vonage: the API key and secret.
	APIKey    string `json:"api_key,omitempty"`
	APISecret string `json:"api_secret,omitempty"`
	// messagebird: the access key.
	AccessKey string `json:"access_key,omitempty"`
	// messagebird: the sender number or alphanumeric id.
	Originator string `json:"originator,omitempty"`
	// twilio, vonage, messagebird: the API's base URL instead of the
	// provider's own (for tests and proxies).
	APIURL string `json:"api_url,omitempty"`
}

// EventsConfig is the `events` line: where phone events are posted.
type EventsConfig struct {
	// Receiver URL, http:// or https://.
	URL string `json:"url"`
	// Signing secret for X-Phone-Signature.
	Secret string `json:"secret,omitempty"`
}

// AdminConfig is the `admin { }` block (Clerk-shaped admin endpoints).
type AdminConfig struct {
	// API key sent as "Authorization: Bearer <key>" (Clerk's secretKey).
	APIKey string `json:"api_key,omitempty"`
	// A claim that makes a valid JWT an admin token: it must be true, or
	// equal ClaimValue (or hold it, when the claim is an array).
	Claim string `json:"claim,omitempty"`
	// The value Claim must hold; empty means boolean true.
	ClaimValue string `json:"claim_value,omitempty"`
}
