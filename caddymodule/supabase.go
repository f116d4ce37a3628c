package caddymodule

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// supabase is Supabase Auth's phone change (SPEC §6) as supabase-js's
// auth client (auth-js) calls it: GET/PUT /auth/v1/user with the legacy
// JWT the app handed over with auth.setSession, and the token-less
// POST /auth/v1/verify and /auth/v1/resend, which find the user by the
// number the code went to (flow.VerifyByNumber). Errors are GoTrue's.
type supabase struct {
	p       *Phone
	anonKey []byte // nil: any apikey
	// verify states a rate limit as the verify's (over_request_rate_limit)
	// rather than a send's; set on the value that writes verify's errors.
	verify bool
}

// supabaseOptions are `compat supabase { anon_key … }`.
type supabaseOptions struct {
	// AnonKey, when set, must be the apikey header of every call (the
	// key createClient was given). Placeholders such as {env.X} expand.
	AnonKey string `json:"anon_key,omitempty"`
}

const (
	supabaseUser   = "/auth/v1/user"
	supabaseVerify = "/auth/v1/verify"
	supabaseResend = "/auth/v1/resend"
)

// supabaseRoutes are auth-js's calls, by path; the PUT of /user, the one
// path with two methods, under "PUT /auth/v1/user". Other paths under
// /auth/v1/ pass through.
var supabaseRoutes = map[string]route{
	supabaseUser:          {method: http.MethodGet, handle: (*Phone).supabaseGetUser},
	"PUT " + supabaseUser: {method: http.MethodPut, fresh: true, handle: (*Phone).supabaseUpdateUser},
	// supabase-js sends "Bearer <anon key>" here: no user is proven.
	supabaseVerify: {method: http.MethodPost, open: true, handle: (*Phone).supabaseVerifyOTP},
	supabaseResend: {method: http.MethodPost, open: true, handle: (*Phone).supabaseResendOTP},
}

// supabasePaths are the paths the dialect answers (dialectFor).
var supabasePaths = map[string]route{supabaseUser: {}, supabaseVerify: {}, supabaseResend: {}}

func init() {
	registerVendor(vendorDialect{name: "supabase", prefix: "/auth/v1/", routes: supabasePaths,
		options: func() (any, map[string]setting) {
			o := new(supabaseOptions)
			return o, map[string]setting{"anon_key": str(&o.AnonKey)}
		},
		open: func(p *Phone, opts any) (dialect, error) {
			o := opts.(*supabaseOptions)
			d := supabase{p: p}
			if o.AnonKey != "" {
				key := caddy.NewReplacer().ReplaceKnown(o.AnonKey, "")
				if key == "" {
					return nil, errors.New("compat supabase: anon_key is empty once its placeholders are replaced")
				}
				d.anonKey = []byte(key)
			}
			p.indexNumbers = true // verify and resend find users by number
			return d, nil
		}})
}

// serve routes (404, 405), checks the apikey (401), then runs the route.
func (d supabase) serve(w http.ResponseWriter, r *http.Request) error {
	key := r.URL.Path
	if key == supabaseUser && r.Method == http.MethodPut {
		key = "PUT " + key
	}
	rt, ok := supabaseRoutes[key]
	switch {
	case ok && checkMethod(r, rt.method) == nil:
		if err := d.checkAPIKey(r); err != nil {
			return err
		}
	case key == supabaseUser:
		return errMethod("GET or PUT", "GET, HEAD, PUT")
	}
	err := d.p.serveRoute(w, r, supabaseRoutes, key)
	if err != nil && key == supabaseVerify {
		d.verify = true
		d.p.writeError(w, d, err)
		return nil
	}
	return err
}

// checkAPIKey refuses a call whose apikey header is not anon_key, as
// Supabase's gateway does.
func (d supabase) checkAPIKey(r *http.Request) error {
	if d.anonKey == nil || subtle.ConstantTimeCompare([]byte(r.Header.Get("apikey")), d.anonKey) == 1 {
		return nil
	}
	return &apiError{status: http.StatusUnauthorized, code: "unauthorized", message: "Invalid API key."}
}

// gotrueError is how GoTrue states one of our codes: its status (0:
// ours) and error_code.
type gotrueError struct {
	status int
	code   string
}

// supabaseCodes are GoTrue's codes for ours (SPEC §6). A wrong code, an
// expired one and nothing to verify are one answer, as in GoTrue: a
// token-less caller learns nothing of whether a number has a code open.
var supabaseCodes = map[string]gotrueError{
	"invalid_code":              {http.StatusForbidden, "otp_expired"},
	"code_expired":              {http.StatusForbidden, "otp_expired"},
	"no_pending_verification":   {http.StatusForbidden, "otp_expired"},
	"too_many_attempts":         {0, "over_request_rate_limit"},
	"rate_limited":              {0, "over_sms_send_rate_limit"},
	"phone_number_in_use":       {http.StatusUnprocessableEntity, "phone_exists"},
	"invalid_request":           {0, "validation_failed"},
	"invalid_phone_number":      {0, "validation_failed"},
	"phone_number_not_allowed":  {0, "validation_failed"},
	"channel_not_allowed":       {0, "validation_failed"},
	"payload_too_large":         {0, "validation_failed"},
	"reauthentication_required": {0, "reauthentication_needed"},
	"sms_delivery_failed":       {0, "sms_send_failed"},
	"conflict":                  {0, "conflict"},
}

// gotrueCode is GoTrue's status and error_code for e.
func (d supabase) gotrueCode(e *apiError) (int, string) {
	if e.code == "unauthorized" {
		if strings.Contains(e.challenge, "invalid_token") {
			return e.status, "bad_jwt"
		}
		return e.status, "no_authorization"
	}
	if e.code == "rate_limited" && d.verify {
		return e.status, "over_request_rate_limit"
	}
	if g, ok := supabaseCodes[e.code]; ok {
		if g.status == 0 {
			return e.status, g.code
		}
		return g.status, g.code
	}
	if e.status >= http.StatusInternalServerError {
		return e.status, "unexpected_failure"
	}
	return e.status, e.code
}

// errorBody is GoTrue's HTTPError, {"code": status, "error_code", "msg"},
// which auth-js turns into an AuthApiError (error.code is error_code);
// retry_after goes with a limit. attempts_left is left out: it would tell
// a wrong code from nothing to verify.
func (d supabase) errorBody(e *apiError) (int, any) {
	status, code := d.gotrueCode(e)
	msg := e.message
	if code == "otp_expired" {
		msg = "Token has expired or is invalid" // GoTrue's words, whichever it was
	}
	body := map[string]any{"code": status, "error_code": code, "msg": msg}
	for _, f := range e.fields {
		if f.k == "retry_after" {
			body["retry_after"] = f.v
		}
	}
	return status, body
}

// supabaseConfirmedAt is phone_confirmed_at for a verified number: the
// store keeps whether a number is verified, not when, so a verified one
// shows this fixed time (the README says so).
const supabaseConfirmedAt = "1970-01-01T00:00:00Z"

// supabaseUserBody is GoTrue's user, with what this module knows: the
// phone fields. Numbers go without their +, as GoTrue stores them; the
// phone fields are null where GoTrue leaves them out.
type supabaseUserBody struct {
	ID                string         `json:"id"`
	Aud               string         `json:"aud"`
	Role              string         `json:"role"`
	Email             string         `json:"email"`
	Phone             string         `json:"phone"`
	PhoneConfirmedAt  *string        `json:"phone_confirmed_at"`
	ConfirmedAt       *string        `json:"confirmed_at,omitempty"`
	NewPhone          *string        `json:"new_phone"`
	PhoneChangeSentAt *string        `json:"phone_change_sent_at"`
	AppMetadata       map[string]any `json:"app_metadata"`
	UserMetadata      map[string]any `json:"user_metadata"`
	Identities        []any          `json:"identities"`
	IsAnonymous       bool           `json:"is_anonymous"`
}

// supabaseUserOf is u's GoTrue user, with the pending change (number and
// when its code was issued) if any.
func supabaseUserOf(u store.User, pending string, sentAt time.Time) supabaseUserBody {
	b := supabaseUserBody{ID: u.ID, Aud: "authenticated", Role: "authenticated",
		Phone: strings.TrimPrefix(u.PhoneNumber, "+"), AppMetadata: map[string]any{},
		UserMetadata: map[string]any{}, Identities: []any{}}
	if u.Verified && u.PhoneNumber != "" {
		at := supabaseConfirmedAt
		b.PhoneConfirmedAt, b.ConfirmedAt = &at, &at
	}
	if pending != "" {
		n := strings.TrimPrefix(pending, "+")
		b.NewPhone = &n
		if !sentAt.IsZero() {
			at := sentAt.UTC().Format(time.RFC3339)
			b.PhoneChangeSentAt = &at
		}
	}
	return b
}

// supabaseGetUser is GET /auth/v1/user (auth.getUser, and auth.setSession
// with a token that has not expired): the token's user, read afresh.
func (p *Phone) supabaseGetUser(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	st, err := p.service.Status(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, supabaseUserOf(st.User, st.PendingNumber, st.PendingSentAt))
	return nil
}

// supabaseBody reads a JSON object of any fields: auth-js adds its own
// (gotrue_meta_security, code_challenge, options …) to every body.
func supabaseBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := decodeJSON(w, r, &fields, true); err != nil {
		return nil, err
	}
	return fields, nil
}

// supabaseString is the string field name of fields; "" when absent or null.
func supabaseString(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errInvalid("Field "+strconv.Quote(name)+" has the wrong type.", name)
	}
	return s, nil
}

// gotruePhone is a number as GoTrue takes it: E.164 with or without its
// + (GoTrue stores it without); national forms are not GoTrue's.
func gotruePhone(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && s[0] >= '1' && s[0] <= '9' {
		return "+" + s
	}
	return s
}

// supabaseUnsupported are the updateUser attributes this module does not
// hold: refused rather than dropped, so the app is not told they changed.
var supabaseUnsupported = []string{"email", "password", "current_password", "nonce", "data"}

// supabaseUpdateUser is PUT /auth/v1/user (auth.updateUser({phone})): the
// update rules of SPEC §4 for the token's user; the answer is the user,
// the new number as new_phone while it is pending. Without a phone it
// changes nothing and answers the user, as GoTrue does.
func (p *Phone) supabaseUpdateUser(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	fields, err := supabaseBody(w, r)
	if err != nil {
		return err
	}
	for _, name := range supabaseUnsupported {
		if raw, ok := fields[name]; ok && string(raw) != "null" {
			return errInvalid("Only the phone number can be changed here; "+name+" stays with the app's own sign-in.", name)
		}
	}
	phone, err := supabaseString(fields, "phone")
	if err != nil {
		return err
	}
	// GoTrue's channel ("sms", "whatsapp"): the flow refuses one not
	// under `channels` with 422 channel_not_allowed.
	channel, err := supabaseString(fields, "channel")
	if err != nil {
		return err
	}
	if phone == "" {
		return p.supabaseGetUser(w, r, id)
	}
	res, err := p.update(r, flow.UpdateRequest{UserID: id.UserID, PhoneNumber: gotruePhone(phone), Channel: channel}, "supabase")
	if err != nil {
		return err
	}
	var sentAt time.Time
	if res.PendingNumber != "" {
		sentAt = time.Now()
	}
	writeJSON(w, http.StatusOK, supabaseUserOf(res.User, res.PendingNumber, sentAt))
	return nil
}

// supabaseOTPRequest is what verifyOtp and resend send for a phone.
func supabaseOTPRequest(w http.ResponseWriter, r *http.Request, wantToken bool) (phone, token string, err error) {
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, nil) // the anon key proves no user
	}
	fields, err := supabaseBody(w, r)
	if err != nil {
		return "", "", err
	}
	typ, err := supabaseString(fields, "type")
	if err != nil {
		return "", "", err
	}
	if phone, err = supabaseString(fields, "phone"); err != nil {
		return "", "", err
	}
	if wantToken {
		if token, err = supabaseString(fields, "token"); err != nil {
			return "", "", err
		}
	}
	switch {
	case typ != "phone_change":
		return "", "", errInvalid(`Only type "phone_change" is served here.`, "type")
	case phone == "":
		return "", "", errMissing("phone")
	case wantToken && token == "":
		return "", "", errMissing("token")
	}
	return gotruePhone(phone), token, nil
}

// supabaseVerifyOTP is POST /auth/v1/verify {type: "phone_change", phone,
// token} (auth.verifyOtp): no user token; the code verifies the challenge
// the number reaches (flow.VerifyByNumber), guarded as Descope's
// token-less verify. The answer is {"user"}; no session is minted.
func (p *Phone) supabaseVerifyOTP(w http.ResponseWriter, r *http.Request, _ *bearer.Identity) error {
	phone, token, err := supabaseOTPRequest(w, r, true)
	if err != nil {
		return err
	}
	u, err := p.service.VerifyByNumber(r.Context(), flow.NumberVerifyRequest{PhoneNumber: phone, Code: token,
		ClientIP: clientIP(r)})
	observe("verify", err)
	if err != nil {
		return err
	}
	p.logger.Info("phone verified", zap.String("user_id", u.ID), zap.String("phone", numbers.Mask(u.PhoneNumber)),
		viaField("supabase"))
	writeJSON(w, http.StatusOK, map[string]any{"user": supabaseUserOf(u, "", time.Time{})})
	return nil
}

// supabaseResendOTP is POST /auth/v1/resend {type: "phone_change", phone}
// (auth.resend): a new code for the challenge the number reaches,
// spending per_number and per_ip, not the owner's per_user. A number
// that reaches nothing answers {} as GoTrue does for an unknown one.
func (p *Phone) supabaseResendOTP(w http.ResponseWriter, r *http.Request, _ *bearer.Identity) error {
	phone, _, err := supabaseOTPRequest(w, r, false)
	if err != nil {
		return err
	}
	_, err = p.service.ResendByNumber(r.Context(), flow.NumberResendRequest{PhoneNumber: phone, ClientIP: clientIP(r)})
	observe("resend", err)
	switch {
	case errors.Is(err, flow.ErrNoPending):
		writeJSON(w, http.StatusOK, map[string]any{})
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message_id": supabaseMessageID()})
	return nil
}

// supabaseMessageID is an opaque ID for resend's message_id (GoTrue passes
// its SMS provider's on): random, tied to nothing else.
func supabaseMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+: it panics rather than return an error)
	return hex.EncodeToString(b[:])
}
