package caddymodule

import (
	"crypto/rand"
	"net/http"
	"strings"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
)

// reachfive is ReachFive's phone routes (SPEC §6). identity-core sends
// snake_case JSON (application/json;charset=UTF-8) and the access token as
// "Authorization: Bearer"; it parses every answer but a 204 as JSON and
// rejects with the camelCased error body.
type reachfive struct{ p *Phone }

// reachfiveRoutes are identity-core's remote settings and its
// ProfileClient phone calls; other paths under /identity/v1/ pass
// through.
var reachfiveRoutes = map[string]route{
	"/identity/v1/config":                         {method: http.MethodGet, open: true, handle: (*Phone).reachfiveConfig},
	"/identity/v1/update-phone-number":            {method: http.MethodPost, fresh: true, handle: (*Phone).reachfiveUpdate},
	"/identity/v1/send-phone-number-verification": {method: http.MethodPost, handle: (*Phone).reachfiveSend},
	"/identity/v1/verify-phone-number":            {method: http.MethodPost, handle: (*Phone).reachfiveVerify},
	"/identity/v1/userinfo":                       {method: http.MethodGet, handle: (*Phone).reachfiveUserinfo},
}

func init() {
	registerVendor(vendorDialect{name: "reachfive", prefix: "/identity/v1/", routes: reachfiveRoutes,
		open: func(p *Phone, _ any) (dialect, error) { return reachfive{p}, nil }})
}

func (d reachfive) serve(w http.ResponseWriter, r *http.Request) error {
	return d.p.serveRoute(w, r, reachfiveRoutes, r.URL.Path)
}

// errorBody adds ReachFive's ErrorResponse fields (identity-core hands
// them to the caller camelCased: errorId, errorDescription,
// errorMessageKey, errorUserMsg). error_id is, as ReachFive's, a fresh
// random ID per answer; error_message_key, the key the UI SDK localises
// with, is "error." and our code in lowerCamelCase ("error.invalidCode").
func (reachfive) errorBody(e *apiError) (int, any) {
	body := nativeErrorBody(e)
	body["error_id"] = reachfiveErrorID()
	body["error_description"] = e.message
	body["error_message_key"] = reachfiveMessageKey(e.code)
	body["error_user_msg"] = e.message
	return e.status, body
}

// reachfiveErrorID is a random ID of ten letters and digits, the shape of
// ReachFive's own ("9z8h7JmIHU").
func reachfiveErrorID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+: it panics rather than return an error)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// reachfiveMessageKey is "error." and code (snake_case) in lowerCamelCase.
func reachfiveMessageKey(code string) string {
	var b strings.Builder
	b.WriteString("error.")
	upper := false
	for _, c := range code {
		switch {
		case c == '_':
			upper = true
		case upper && c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
			upper = false
		default:
			b.WriteRune(c)
			upper = false
		}
	}
	return b.String()
}

// reachfiveConfig is GET /identity/v1/config?client_id=…: the remote
// settings identity-core fetches before any call (it fails every call if
// this fails). Only what it reads is given: no SSO cookies, a public
// client, the language asked for (lang) if any.
func (*Phone) reachfiveConfig(w http.ResponseWriter, r *http.Request, _ *bearer.Identity) error {
	cfg := map[string]any{
		"sso":                        false,
		"sms":                        true,
		"web_authn":                  false,
		"pkce_enforced":              false,
		"is_public":                  true,
		"is_implicit_flow_forbidden": false,
		"scope":                      "openid profile email phone",
		"social_providers":           []string{},
		"custom_fields":              []string{},
		"consents":                   []string{},
		"mfa_sms_enabled":            false,
		"mfa_email_enabled":          false,
		"rba_enabled":                false,
	}
	// identity-core sends the language back as Accept-Language on every
	// call, where it picks the SMS template; without one the client's own
	// Accept-Language goes through.
	if lang := r.URL.Query().Get("lang"); lang != "" && localeShaped(lang) {
		cfg["language"] = lang
	}
	writeJSON(w, http.StatusOK, cfg)
	return nil
}

// localeShaped is true for a short tag of letters, digits, '-' and '_'.
func localeShaped(s string) bool {
	if len(s) > 35 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// reachfiveLocale is the locale identity-core asks for: its Custom-Locale
// header (createClient's locale), else the first Accept-Language tag.
func reachfiveLocale(r *http.Request) string {
	if l := strings.TrimSpace(r.Header.Get("Custom-Locale")); localeShaped(l) {
		return l
	}
	return acceptLanguage(r)
}

// acceptLanguage is the first tag of Accept-Language, if it is one.
func acceptLanguage(r *http.Request) string {
	l, _, _ := strings.Cut(r.Header.Get("Accept-Language"), ",")
	l, _, _ = strings.Cut(l, ";")
	if l = strings.TrimSpace(l); localeShaped(l) {
		return l
	}
	return ""
}

type reachfiveUpdateRequest struct {
	PhoneNumber *string `json:"phone_number"`
}

// reachfiveUpdateBody is our update answer plus ReachFive's profile field.
type reachfiveUpdateBody struct {
	updateBody
	PhoneNumberVerified bool `json:"phone_number_verified"`
}

// reachfiveUpdate is POST /identity/v1/update-phone-number {phone_number}:
// the update rules of SPEC §4, with its statuses (200, 202 pending).
func (p *Phone) reachfiveUpdate(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req reachfiveUpdateRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.PhoneNumber == nil || *req.PhoneNumber == "" {
		return errInvalid("phone_number is required.", "phone_number")
	}
	res, err := p.update(r, flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.PhoneNumber,
		Locale: reachfiveLocale(r)}, "reachfive")
	if err != nil {
		return err
	}
	status, body := updateAnswer(res)
	writeJSON(w, status, reachfiveUpdateBody{updateBody: body, PhoneNumberVerified: res.User.Verified})
	return nil
}

// reachfiveSend is POST /identity/v1/send-phone-number-verification (the
// SDK sends no body): a new code for the open challenge, or a first one for
// an unverified current number.
func (p *Phone) reachfiveSend(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req struct{}
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	res, err := p.resend(r, flow.ResendRequest{UserID: id.UserID, Locale: reachfiveLocale(r), OpenForUnverified: true})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sentBody(res))
	return nil
}

type reachfiveVerifyRequest struct {
	PhoneNumber      string  `json:"phone_number"`
	VerificationCode *string `json:"verification_code"`
}

// reachfiveVerify is POST /identity/v1/verify-phone-number
// {phone_number, verification_code}: phone_number, when given, must be the
// number the code went to.
func (p *Phone) reachfiveVerify(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req reachfiveVerifyRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.VerificationCode == nil || *req.VerificationCode == "" {
		return errInvalid("verification_code is required.", "verification_code")
	}
	u, err := p.verify(r, flow.VerifyRequest{UserID: id.UserID, Code: *req.VerificationCode,
		PhoneNumber: req.PhoneNumber}, "reachfive")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "verified", "phone_number": u.PhoneNumber, "verified": true,
		"phone_number_verified": true})
	return nil
}

// reachfiveUserinfoFields are the profile fields userinfo knows; sub is
// always given.
var reachfiveUserinfoFields = []string{"phone_number", "phone_number_verified"}

// reachfiveUserinfo is GET /identity/v1/userinfo?fields=… (identity-core's
// getUser({accessToken, fields})): the token's user read afresh, as
// {"sub","phone_number","phone_number_verified"}. fields, comma-separated
// (snake_case or camelCase), keeps only the fields named, as ReachFive
// does; fields it does not know are left out. A user without a number has
// neither phone field; a pending change is not shown (ReachFive's profile
// has no such thing).
func (p *Phone) reachfiveUserinfo(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	st, err := p.service.Status(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	if q := r.URL.Query(); q.Has("fields") {
		for _, f := range strings.Split(q.Get("fields"), ",") {
			want[snakeCase(strings.TrimSpace(f))] = true
		}
	} else {
		for _, f := range reachfiveUserinfoFields {
			want[f] = true
		}
	}
	body := map[string]any{"sub": id.UserID}
	if st.User.PhoneNumber != "" {
		if want["phone_number"] {
			body["phone_number"] = st.User.PhoneNumber
		}
		if want["phone_number_verified"] {
			body["phone_number_verified"] = st.User.Verified
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// snakeCase turns a camelCase field name into snake_case
// ("phoneNumberVerified" → "phone_number_verified"); snake_case is kept.
func snakeCase(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}
