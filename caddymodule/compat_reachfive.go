package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// reachfivePrefix is where @reachfive/identity-core sends its calls.
const reachfivePrefix = "/identity/v1/"

// serveReachFive answers ReachFive's phone routes (SPEC §6).
func (p *Phone) serveReachFive(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return p.passThrough(w, r, next) // filled in by the compat work
}
