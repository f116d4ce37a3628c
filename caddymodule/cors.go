package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CORS (SPEC §4 "Browsers on other origins"): for an origin listed under
// `cors`, every answer of the user API and of the compat routes carries
// the allow-origin and credentials headers and exposes Retry-After, and a
// preflight there answers 204. ServeHTTP applies it before a dialect
// serves, so no dialect knows of it; admin routes (clerk) and pass-through
// traffic never reach it.

const (
	// corsMethods are the methods the user API and the compat routes use.
	corsMethods = "GET, HEAD, POST, PUT, DELETE" // PUT: Kii's changePhone, supabase-js' updateUser
	// corsMaxAge is how long, in seconds, a browser may keep a preflight.
	corsMaxAge = "600"
	// corsExpose are the response headers a page's script may read.
	corsExpose = "Retry-After"
)

// compileCORS checks the `cors` origins and returns them as a set, or nil
// without `cors`. An origin is scheme://host[:port]: http or https, no
// path, query, user or wildcard. Browsers send an origin in lower case
// and without the scheme's default port, so it is stored that way.
func compileCORS(origins []string) (map[string]struct{}, error) {
	if len(origins) == 0 {
		return nil, nil
	}
	set := make(map[string]struct{}, len(origins))
	for _, o := range origins {
		norm, err := checkOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("cors: origin %q: %w", o, err)
		}
		set[norm] = struct{}{}
	}
	return set, nil
}

func checkOrigin(o string) (string, error) {
	const want = "want scheme://host[:port], like https://app.example.com"
	if strings.Contains(o, "*") {
		return "", fmt.Errorf("wildcards are not allowed: list each origin (%s)", want)
	}
	u, err := url.Parse(o)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("not an origin (%s)", want)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("scheme must be http or https (%s)", want)
	case u.User != nil:
		return "", fmt.Errorf("an origin has no user info (%s)", want)
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(o, "#"):
		return "", fmt.Errorf("an origin has no path, query or fragment (%s)", want)
	case u.Hostname() == "":
		return "", fmt.Errorf("no host (%s)", want)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); port != "" {
		if !isDigits(port) {
			return "", fmt.Errorf("bad port %q (%s)", port, want)
		}
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			host = strings.ToLower(u.Hostname())
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("empty port (%s)", want)
	}
	return scheme + "://" + host, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// cors sets the CORS headers for an answer of the user API or a compat
// route. It reports true when it answered the request itself: a
// preflight, with 204 for a listed origin and 403 for any other.
func (p *Phone) cors(w http.ResponseWriter, r *http.Request) (answered bool) {
	if p.corsOrigins == nil {
		return false
	}
	h := w.Header()
	origin := r.Header.Get("Origin")
	_, listed := p.corsOrigins[origin]
	preflight := r.Method == http.MethodOptions && origin != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	} else {
		h.Add("Vary", "Origin")
	}
	if !listed {
		if preflight {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if !preflight {
		h.Set("Access-Control-Expose-Headers", corsExpose)
		return false
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
