package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// descope is Descope's OTP update and verify routes (SPEC §6): what
// sdk.otp.update.phone.sms and sdk.otp.verify.sms send.
type descope struct {
	p *Phone
	// loginClaim is login_id_claim: the token claim that holds the
	// user's Descope login ID; "" for the token's user claim.
	loginClaim string
}

// descopeOptions are `compat descope { login_id_claim … }`.
type descopeOptions struct {
	LoginIDClaim string `json:"login_id_claim,omitempty"`
}

// descopeRoutes are core-js-sdk's apiPaths.otp plus the delivery method;
// other paths under /v1/auth/otp/ pass through. The update needs
// "Bearer <project_id>:<jwt>"; the verify checks its own credentials (the
// SDK sends the project alone).
var descopeRoutes = map[string]route{
	"/v1/auth/otp/update/phone/sms": {method: http.MethodPost, fresh: true, handle: (*Phone).descopeUpdate},
	"/v1/auth/otp/verify/sms":       {method: http.MethodPost, open: true, handle: (*Phone).descopeVerify},
}

func init() {
	registerVendor(vendorDialect{name: "descope", prefix: "/v1/auth/otp/", routes: descopeRoutes,
		options: func() (any, map[string]setting) {
			o := new(descopeOptions)
			return o, map[string]setting{"login_id_claim": str(&o.LoginIDClaim)}
		},
		open: func(p *Phone, opts any) (dialect, error) {
			// Descope's SDK sends "Bearer <project_id>[:<jwt>]": without a
			// project_id every call would be a 401.
			if p.JWT == nil || p.JWT.ProjectID == "" {
				return nil, errors.New("compat descope: needs jwt { project_id … }")
			}
			claim := opts.(*descopeOptions).LoginIDClaim
			if claim != "" && !validLoginID(claim) || strings.TrimSpace(claim) != claim {
				return nil, errors.New("compat descope: login_id_claim must name a claim")
			}
			p.indexLoginIDs = claim != "" // a resend keeps the loginId's entry alive
			return descope{p: p, loginClaim: claim}, nil
		}})
}

func (d descope) serve(w http.ResponseWriter, r *http.Request) error {
	return d.p.serveRoute(w, r, descopeRoutes, r.URL.Path)
}

// Descope's error codes (SPEC §6); the SDK exports most of them as
// DescopeErrors (badRequest, missingArguments, invalidRequest,
// wrongOTPCode, tooManyOTPAttempts, userNotFound).
const (
	descopeBadRequest       = "E011001"
	descopeMissingArguments = "E011002"
	descopeInvalidRequest   = "E011003"
	descopeWrongOTPCode     = "E061102"
	descopeTooManyAttempts  = "E061103"
	descopeUserNotFound     = "E062108"
	descopeRateLimited      = "E130429"
)

// descopeCodes are Descope's codes for ours; any other is badRequest.
// A verify finds no open challenge for an unknown loginId as for a known
// one without a challenge: both are Descope's userNotFound.
var descopeCodes = map[string]string{
	"invalid_request":         descopeInvalidRequest,
	"invalid_phone_number":    descopeInvalidRequest,
	"invalid_code":            descopeWrongOTPCode,
	"too_many_attempts":       descopeTooManyAttempts,
	"rate_limited":            descopeRateLimited,
	"no_pending_verification": descopeUserNotFound,
}

// descopeCode is Descope's errorCode for e.
func descopeCode(e *apiError) string {
	if e.missing {
		return descopeMissingArguments
	}
	if c, ok := descopeCodes[e.code]; ok {
		return c
	}
	return descopeBadRequest
}

// errorBody adds the fields core-js-sdk hands to its caller as
// SdkResponse.error: errorCode is Descope's code for ours (SPEC §6), the
// two texts our message; error keeps our code.
func (descope) errorBody(e *apiError) (int, any) {
	body := nativeErrorBody(e)
	body["errorCode"] = descopeCode(e)
	body["errorDescription"] = e.message
	body["errorMessage"] = e.message
	return e.status, body
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
// user, who must be the loginId (the token's login_id_claim, with one).
// 200 {"maskedPhone"} whatever the rule.
func (p *Phone) descopeUpdate(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req descopeUpdateRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.LoginID == nil || *req.LoginID == "":
		return errMissing("loginId")
	case req.Phone == nil || *req.Phone == "":
		return errMissing("phone")
	case *req.LoginID != p.descopeLoginID(id):
		return errForbidden("loginId is not the signed-in user.")
	}
	opts := templateOptions(req.TemplateOptions)
	if err := flow.CheckTemplateOptions("templateOptions", opts); err != nil {
		return err
	}
	if p.descopeLoginClaim() != "" {
		// So that the token-less verify finds the user by this loginId.
		if err := p.service.NoteLoginID(r.Context(), *req.LoginID, id.UserID); err != nil {
			return err
		}
	}
	// addToLoginIDs / onMergeUseExisting travel in the events (SPEC §8).
	res, err := p.update(r, flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.Phone,
		Locale: req.Locale, TemplateOptions: opts, ProviderID: req.ProviderID,
		Attributes: descopeAttributes(req.AddToLoginIDs, req.OnMergeUseExisting), Channel: descopeChannel(r)}, "descope")
	if err != nil {
		return err
	}
	masked := res.SentTo
	if masked == "" {
		masked = res.User.PhoneNumber
	}
	writeJSON(w, http.StatusOK, map[string]string{"maskedPhone": numbers.Mask(masked)})
	return nil
}

// descopeAttributes are the event attributes of Descope's update options:
// add_to_login_ids and on_merge_use_existing, each only when given.
func descopeAttributes(addToLoginIDs, onMergeUseExisting *bool) []flow.Attr {
	var attrs []flow.Attr
	if addToLoginIDs != nil {
		attrs = append(attrs, flow.Attr{Name: "add_to_login_ids", Value: json.RawMessage(strconv.FormatBool(*addToLoginIDs))})
	}
	if onMergeUseExisting != nil {
		attrs = append(attrs, flow.Attr{Name: "on_merge_use_existing", Value: json.RawMessage(strconv.FormatBool(*onMergeUseExisting))})
	}
	return attrs
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
// the token-less guard of flow.VerifyRequest.Tokenless bounds the guesses. A full "<project_id>:<jwt>" is accepted too,
// for its own user only. With login_id_claim, the user is the one whose
// update named loginId (flow's login ID index).
func (p *Phone) descopeVerify(w http.ResponseWriter, r *http.Request, _ *bearer.Identity) error {
	var id *bearer.Identity
	if !p.verifier.ProjectOnly(r.Header.Get("Authorization")) {
		var err error
		if id, err = p.authenticate(r); err != nil {
			return err
		}
	} else if repl := replacer(r); repl != nil {
		setAuthUser(repl, nil) // the project proves no user
	}
	var req descopeVerifyRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.LoginID == nil || strings.TrimSpace(*req.LoginID) == "":
		return errMissing("loginId")
	case !validLoginID(*req.LoginID):
		return errInvalid("loginId is not a valid login ID.", "loginId")
	case req.Code == nil || *req.Code == "":
		return errMissing("code")
	case id != nil && p.descopeLoginID(id) != *req.LoginID:
		return errForbidden("loginId is not the signed-in user.")
	}
	user := *req.LoginID
	switch {
	case id != nil:
		user = id.UserID
	case p.descopeLoginClaim() != "":
		// The user whose update named this loginId (login_id_claim).
		var err error
		if user, err = p.service.LoginUser(r.Context(), *req.LoginID, clientIP(r)); err != nil {
			observe("verify", err)
			return err
		}
	}
	// With the project alone the caller proved nothing: its guesses have
	// a budget of their own and never lock the owner out (SPEC §6).
	u, err := p.verify(r, flow.VerifyRequest{UserID: user, Code: *req.Code, Tokenless: id == nil}, "descope")
	if err != nil {
		return err
	}
	// Descope answers a JWTResponse; no session is issued here, so only
	// its user part is filled (withCookie in node-sdk copes with that).
	writeJSON(w, http.StatusOK, map[string]any{
		"user": map[string]any{"loginIds": []string{*req.LoginID}, "userId": user, "phone": u.PhoneNumber,
			"verifiedPhone": true},
		"firstSeen": false,
	})
	return nil
}

// validLoginID accepts what the bearer package accepts as a user claim:
// not blank, no control characters.
func validLoginID(s string) bool {
	return strings.TrimSpace(s) != "" && strings.IndexFunc(s, unicode.IsControl) < 0
}

// descopeLoginClaim is the dialect's login_id_claim ("" without one).
func (p *Phone) descopeLoginClaim() string {
	for _, v := range p.vendors {
		if d, ok := v.dialect.(descope); ok {
			return d.loginClaim
		}
	}
	return ""
}

// descopeLoginID is the login ID the token vouches for: its
// login_id_claim (a string claim; "" when absent), else its user.
func (p *Phone) descopeLoginID(id *bearer.Identity) string {
	claim := p.descopeLoginClaim()
	if claim == "" {
		return id.UserID
	}
	v, _ := id.Claim(claim) // string claims are always kept
	s, _ := v.(string)
	return s
}
