package caddymodule

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strconv"
)

// uiPath is the page's path under the prefix (SPEC §10).
const uiPath = "/ui"

// uiPage is the self-service page: one HTML file with its CSS and script
// inline, no build step. It derives the API's prefix from its own URL, so
// it works under any `prefix`.
//
//go:embed ui/index.html
var uiPage []byte

// uiCSP allows exactly the page's own inline <style> and <script> (by
// their SHA-256, so no 'unsafe-inline'), fetches to this origin only, and
// nothing else: no other scripts, images, fonts, frames or form targets.
var uiCSP = buildUICSP(uiPage)

// buildUICSP hashes the single <style> and <script> element of page. It
// panics when either is missing: the page is embedded, so that is a build
// mistake the unit tests catch.
func buildUICSP(page []byte) string {
	return "default-src 'none'; script-src " + inlineHash(page, "script") +
		"; style-src " + inlineHash(page, "style") +
		"; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// inlineHash is the CSP source expression ('sha256-…') of the content of
// the one <tag> element of page.
func inlineHash(page []byte, tag string) string {
	open, end := []byte("<"+tag+">"), []byte("</"+tag+">")
	i := bytes.Index(page, open)
	if i < 0 || bytes.Count(page, open) != 1 {
		panic("ui/index.html: want exactly one <" + tag + "> element without attributes")
	}
	body := page[i+len(open):]
	j := bytes.Index(body, end)
	if j < 0 {
		panic("ui/index.html: <" + tag + "> is not closed")
	}
	sum := sha256.Sum256(body[:j])
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// serveUI answers GET and HEAD <prefix>/ui with the page (a route of the
// user API, native.go); it needs no token (the page is static; its calls
// carry the token the person pastes).
func serveUI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(uiPage)))
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(uiPage)
	}
}
