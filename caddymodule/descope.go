package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// descopePrefix is where @descope/core-js-sdk sends its OTP calls.
const descopePrefix = "/v1/auth/otp/"

// The two Descope routes served (SPEC §6); core-js-sdk's apiPaths.otp plus
// the delivery method. Other paths under descopePrefix pass through.
const (
	descopeUpdatePath = "/v1/auth/otp/update/phone/sms"
	descopeVerifyPath = "/v1/auth/otp/verify/sms"
)

// serveDescope answers Descope's OTP update and verify routes (SPEC §6):
// what sdk.otp.update.phone.sms and sdk.otp.verify.sms send. Error bodies
// carry Descope's errorCode / errorDescription / errorMessage beside ours.
func (p *Phone) serveDescope(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var handle func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case descopeUpdatePath:
		handle = p.descopeUpdate
	case descopeVerifyPath:
		handle = p.descopeVerify
	default:
		return p.passThrough(w, r, next)
	}
	stripPhoneHeaders(r.Header)
	ew := &errorExtender{ResponseWriter: w, extend: descopeErrorFields}
	if !methodOK(ew, r, http.MethodPost) {
		return nil
	}
	handle(ew, r)
	return nil
}

// descopeErrorFields adds the fields core-js-sdk hands to its caller as
// SdkResponse.error: errorCode is our error code, the two texts our message.
func descopeErrorFields(body map[string]any) {
	body["errorCode"] = body["error"]
	body["errorDescription"] = body["message"]
	body["errorMessage"] = body["message"]
}

// descopeUpdateRequest is core-js-sdk's {loginId, phone, ...UpdateOptions}.
type descopeUpdateRequest struct {
	LoginID            *string                    `json:"loginId"`
	Phone              *string                    `json:"phone"`
	AddToLoginIDs      *bool                      `json:"addToLoginIDs"`      // to the events
	OnMergeUseExisting *bool                      `json:"onMergeUseExisting"` // to the events
	ProviderID         string                     `json:"providerId"`
	TemplateOptions    map[string]json.RawMessage `json:"templateOptions"`
	TemplateID         string                     `json:"templateId"` // accepted; templates are chosen by locale
	Locale             string                     `json:"locale"`
	MFA                *bool                      `json:"mfa"` // accepted; no session is issued here
}

// descopeUpdate is POST /v1/auth/otp/update/phone/sms with
// "Bearer <project_id>:<jwt>": the update rules of SPEC §4 for the token's
// user, who must be the loginId. 200 {"maskedPhone"} whatever the rule.
func (p *Phone) descopeUpdate(w http.ResponseWriter, r *http.Request) {
	id, ok := p.authenticate(w, r)
	if !ok || !p.freshSignIn(w, id) {
		return
	}
	var req descopeUpdateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	switch {
	case req.LoginID == nil || *req.LoginID == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "loginId is required.", nil)
		return
	case req.Phone == nil || *req.Phone == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "phone is required.", nil)
		return
	case *req.LoginID != id.UserID:
		writeError(w, http.StatusForbidden, "forbidden", "loginId is not the signed-in user.", nil)
		return
	}
	opts := templateOptions(req.TemplateOptions)
	// addToLoginIDs / onMergeUseExisting travel in the events (SPEC §8).
	res, err := p.service.Update(r.Context(), flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.Phone,
		Locale: req.Locale, TemplateOptions: opts, ProviderID: req.ProviderID, ClientIP: clientIP(r),
		AddToLoginIDs: req.AddToLoginIDs, OnMergeUseExisting: req.OnMergeUseExisting})
	observe("update", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone update", zap.String("user_id", id.UserID), zap.String("status", res.Status),
		zap.String("to", numbers.Mask(res.SentTo)), zap.String("via", "descope"))
	masked := res.SentTo
	if masked == "" {
		masked = res.User.PhoneNumber
	}
	writeJSON(w, http.StatusOK, map[string]string{"maskedPhone": numbers.Mask(masked)})
}

// templateOptions turns Descope's templateOptions (Record<string,string>,
// though JavaScript callers pass numbers and booleans too) into strings:
// a JSON string as its value, anything else as its JSON text.
func templateOptions(in map[string]json.RawMessage) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, raw := range in {
		var s string
		if json.Unmarshal(raw, &s) != nil && string(raw) != "null" {
			var b bytes.Buffer
			if json.Compact(&b, raw) == nil {
				s = b.String()
			}
		}
		out[k] = s
	}
	return out
}

// descopeVerifyRequest is core-js-sdk's otp.verify body.
type descopeVerifyRequest struct {
	LoginID *string `json:"loginId"`
	Code    *string `json:"code"`
}

// descopeVerify is POST /v1/auth/otp/verify/sms. The SDK sends only
// "Bearer <project_id>" here: the code proves possession for loginId, and
// the attempt limits guard it. A full "<project_id>:<jwt>" is accepted too,
// for its own user only.
func (p *Phone) descopeVerify(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	var id *bearer.Identity
	if !p.verifier.ProjectOnly(auth) {
		var ok bool
		if id, ok = p.authenticate(w, r); !ok {
			return
		}
	} else if repl := replacer(r); repl != nil {
		setAuthUser(repl, nil) // the project proves no user
	}
	var req descopeVerifyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	switch {
	case req.LoginID == nil || !validLoginID(*req.LoginID):
		writeError(w, http.StatusBadRequest, "invalid_request", "loginId is required.", nil)
		return
	case req.Code == nil || *req.Code == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "code is required.", nil)
		return
	case id != nil && id.UserID != *req.LoginID:
		writeError(w, http.StatusForbidden, "forbidden", "loginId is not the signed-in user.", nil)
		return
	}
	user := *req.LoginID
	u, err := p.service.Verify(r.Context(), flow.VerifyRequest{UserID: user, Code: *req.Code, ClientIP: clientIP(r)})
	observe("verify", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone verified", zap.String("user_id", user), zap.String("phone", numbers.Mask(u.PhoneNumber)),
		zap.String("via", "descope"))
	// Descope answers a JWTResponse; no session is issued here, so only
	// its user part is filled (withCookie in node-sdk copes with that).
	writeJSON(w, http.StatusOK, map[string]any{
		"user": map[string]any{"loginIds": []string{user}, "userId": user, "phone": u.PhoneNumber,
			"verifiedPhone": true},
		"firstSeen": false,
	})
}

// validLoginID accepts what the bearer package accepts as a user claim:
// not blank, no control characters.
func validLoginID(s string) bool {
	return strings.TrimSpace(s) != "" && strings.IndexFunc(s, unicode.IsControl) < 0
}

// freshSignIn enforces max_auth_age on the update twins (SPEC §4): 401
// reauthentication_required when the sign-in is too old.
func (p *Phone) freshSignIn(w http.ResponseWriter, id *bearer.Identity) bool {
	if p.maxAge <= 0 {
		return true
	}
	if signIn := id.SignInTime(); signIn.IsZero() || time.Since(signIn) > p.maxAge {
		unauthorized(w, true, "reauthentication_required", "Sign in again to change your phone number.")
		return false
	}
	return true
}

// errorExtender carries a product's extra error fields down to writeError,
// so the one mapping of SPEC §5 in api.go serves the compat routes too.
type errorExtender struct {
	http.ResponseWriter
	extend func(body map[string]any)
}

// Unwrap lets http.ResponseController reach the real writer.
func (e *errorExtender) Unwrap() http.ResponseWriter { return e.ResponseWriter }
