package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// reachfivePrefix is where @reachfive/identity-core sends its calls.
const reachfivePrefix = "/identity/v1/"

// The ReachFive routes served (SPEC §6): identity-core's remote settings
// and its ProfileClient phone calls. Other paths under reachfivePrefix
// pass through.
const (
	reachfiveConfigPath = "/identity/v1/config"
	reachfiveUpdatePath = "/identity/v1/update-phone-number"
	reachfiveSendPath   = "/identity/v1/send-phone-number-verification"
	reachfiveVerifyPath = "/identity/v1/verify-phone-number"
)

// serveReachFive answers ReachFive's phone routes (SPEC §6). identity-core
// sends snake_case JSON (application/json;charset=UTF-8) and the access
// token as "Authorization: Bearer"; it parses every answer but a 204 as
// JSON and rejects with the camelCased error body. Error bodies carry
// ReachFive's error_description / error_user_msg beside ours.
func (p *Phone) serveReachFive(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	method := http.MethodPost
	var handle func(http.ResponseWriter, *http.Request, *bearer.Identity)
	switch r.URL.Path {
	case reachfiveConfigPath:
		method = http.MethodGet
	case reachfiveUpdatePath:
		handle = p.reachfiveUpdate
	case reachfiveSendPath:
		handle = p.reachfiveSend
	case reachfiveVerifyPath:
		handle = p.reachfiveVerify
	default:
		return p.passThrough(w, r, next)
	}
	stripPhoneHeaders(r.Header)
	ew := &errorExtender{ResponseWriter: w, extend: reachfiveErrorFields}
	if !methodOK(ew, r, method) {
		return nil
	}
	if handle == nil {
		reachfiveConfig(ew, r)
		return nil
	}
	id, ok := p.authenticate(ew, r)
	if !ok {
		return nil
	}
	handle(ew, r, id)
	return nil
}

// reachfiveErrorFields adds ReachFive's ErrorResponse texts (identity-core
// hands them to the caller as errorDescription / errorUserMsg).
func reachfiveErrorFields(body map[string]any) {
	body["error_description"] = body["message"]
	body["error_user_msg"] = body["message"]
}

// reachfiveConfig is GET /identity/v1/config?client_id=…: the remote
// settings identity-core fetches before any call (it fails every call if
// this fails). Only what it reads is given: no SSO cookies, a public
// client, the language asked for (lang) if any.
func reachfiveConfig(w http.ResponseWriter, r *http.Request) {
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
func (p *Phone) reachfiveUpdate(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	if !p.freshSignIn(w, id) {
		return
	}
	var req reachfiveUpdateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.PhoneNumber == nil || *req.PhoneNumber == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "phone_number is required.", nil)
		return
	}
	res, err := p.service.Update(r.Context(), flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.PhoneNumber,
		Locale: reachfiveLocale(r), ClientIP: clientIP(r)})
	observe("update", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone update", zap.String("user_id", id.UserID), zap.String("status", res.Status),
		zap.String("to", numbers.Mask(res.SentTo)), zap.String("via", "reachfive"))
	status, body := updateAnswer(res)
	writeJSON(w, status, reachfiveUpdateBody{updateBody: body, PhoneNumberVerified: res.User.Verified})
}

// reachfiveSend is POST /identity/v1/send-phone-number-verification (the
// SDK sends no body): a new code for the open challenge, or a first one for
// an unverified current number.
func (p *Phone) reachfiveSend(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	var req struct{}
	if !decodeOptionalBody(w, r, &req) {
		return
	}
	res, err := p.service.Resend(r.Context(), flow.ResendRequest{UserID: id.UserID, Locale: reachfiveLocale(r),
		ClientIP: clientIP(r), OpenForUnverified: true})
	observe("resend", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "sent", "masked_phone": numbers.Mask(res.SentTo),
		"expires_in": seconds(res.ExpiresIn), "resend_after": seconds(res.ResendAfter)})
}

type reachfiveVerifyRequest struct {
	PhoneNumber      string  `json:"phone_number"`
	VerificationCode *string `json:"verification_code"`
}

// reachfiveVerify is POST /identity/v1/verify-phone-number
// {phone_number, verification_code}: phone_number, when given, must be the
// number the code went to.
func (p *Phone) reachfiveVerify(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	var req reachfiveVerifyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.VerificationCode == nil || *req.VerificationCode == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "verification_code is required.", nil)
		return
	}
	u, err := p.service.Verify(r.Context(), flow.VerifyRequest{UserID: id.UserID, Code: *req.VerificationCode,
		PhoneNumber: req.PhoneNumber, ClientIP: clientIP(r)})
	observe("verify", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone verified", zap.String("user_id", id.UserID), zap.String("phone", numbers.Mask(u.PhoneNumber)),
		zap.String("via", "reachfive"))
	writeJSON(w, http.StatusOK, map[string]any{"status": "verified", "phone_number": u.PhoneNumber, "verified": true,
		"phone_number_verified": true})
}
