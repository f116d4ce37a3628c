package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// descopePrefix is where @descope/core-js-sdk sends its OTP calls.
const descopePrefix = "/v1/auth/otp/"

// serveDescope answers Descope's OTP update and verify routes (SPEC §6).
func (p *Phone) serveDescope(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return p.passThrough(w, r, next) // filled in by the compat work
}
