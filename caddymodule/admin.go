package caddymodule

import "net/http"

// serveAdmin answers the Clerk-shaped admin endpoints (SPEC §7).
func (p *Phone) serveAdmin(w http.ResponseWriter, r *http.Request) error {
	writeError(w, http.StatusNotImplemented, "not_supported", "The admin endpoints are not available yet.", nil)
	return nil
}
