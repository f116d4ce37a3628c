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

// ChannelTemplates are one channel's own `template` lines: a default and
// per-locale texts, as the top-level template and templates are SMS's.
type ChannelTemplates struct {
	Template  string            `json:"template,omitempty"`
	Templates map[string]string `json:"templates,omitempty"`
}

// LimitConfig is one `<count> <window>` budget. Count 0 disables it.
type LimitConfig struct {
	Count  int            `json:"count"`
	Window caddy.Duration `json:"window"`
}

// LimitsConfig is the `limits { }` block: budgets by name (per_number,
// per_user, per_ip, verify_per_user, verify_per_ip, global); unset budgets
// keep their defaults.
type LimitsConfig map[string]LimitConfig

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
