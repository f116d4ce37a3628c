package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
)

// kii is Kii Cloud's user phone routes (SPEC §6), as kii-cloud-sdk 2.4.19
// sends them after Kii.initializeWithSite(appID, appKey,
// "https://<this site>/api"): KiiUser.authenticateWithToken and refresh
// (GET users/me, users/{userID}), changePhone (PUT …/phone-number),
// resendPhoneNumberVerification and verifyPhoneNumber. The SDK adds
// x-kii-appid, x-kii-appkey and x-kii-sdk headers and a disable_cache
// query to every call, sends application/vnd.kii.*+json bodies, and reads
// an error from {"errorCode","message"}.
type kii struct {
	p     *Phone
	appID string
}

// kiiOptions are `compat kii { app_id … }`.
type kiiOptions struct {
	// AppID is the Kii application ID the SDK was initialised with: the
	// {app} of every path and its x-kii-appid header.
	AppID string `json:"app_id,omitempty"`
}

// kiiPrefix is where the SDK's base URL (<site>/api) puts /apps/{app}.
const kiiPrefix = "/api/apps/"

// The routes' keys, after /api/apps/{app}/users/{userID}.
const (
	kiiUserRoute   = ""
	kiiPhoneRoute  = "/phone-number"
	kiiResendRoute = "/phone-number/resend-verification"
	kiiVerifyRoute = "/phone-number/verify"
)

// kiiRoutes are by the path's tail after the user ID ({userID} may be
// "me"); other paths under /api/apps/ pass through.
var kiiRoutes = map[string]route{
	kiiUserRoute:   {method: http.MethodGet, handle: (*Phone).kiiUser},
	kiiPhoneRoute:  {method: http.MethodPut, fresh: true, handle: (*Phone).kiiChangePhone},
	kiiResendRoute: {method: http.MethodPost, handle: (*Phone).kiiResend},
	kiiVerifyRoute: {method: http.MethodPost, handle: (*Phone).kiiVerify},
}

// kiiTails are the route keys, longest first, as kiiPath tries them.
var kiiTails = []string{kiiResendRoute, kiiVerifyRoute, kiiPhoneRoute}

func init() {
	registerVendor(vendorDialect{name: "kii", prefix: kiiPrefix, routes: kiiRoutes,
		match: func(path string) (string, bool) {
			_, _, key, ok := kiiPath(path)
			return key, ok
		},
		options: func() (any, map[string]setting) {
			o := new(kiiOptions)
			return o, map[string]setting{"app_id": str(&o.AppID)}
		},
		open: func(p *Phone, opts any) (dialect, error) {
			o := opts.(*kiiOptions)
			if o.AppID == "" {
				return nil, errors.New("compat kii: needs app_id (the Kii application ID the SDK is initialised with)")
			}
			if strings.ContainsAny(o.AppID, "/?#") || strings.TrimSpace(o.AppID) != o.AppID {
				return nil, errors.New("compat kii: app_id must be one path segment, without spaces")
			}
			return kii{p: p, appID: o.AppID}, nil
		}})
}

// kiiPath splits /api/apps/{app}/users/{userID}{tail}, the tail being a
// route key. The SDK does not escape the user ID, so one holding a / has
// no route here: the path is the legacy app's.
func kiiPath(path string) (app, user, key string, ok bool) {
	rest, ok := strings.CutPrefix(path, kiiPrefix)
	if !ok {
		return "", "", "", false
	}
	app, rest, ok = strings.Cut(rest, "/")
	if !ok || app == "" {
		return "", "", "", false
	}
	if rest, ok = strings.CutPrefix(rest, "users/"); !ok {
		return "", "", "", false
	}
	for _, tail := range kiiTails {
		if u, found := strings.CutSuffix(rest, tail); found {
			rest, key = u, tail
			break
		}
	}
	if rest == "" || strings.Contains(rest, "/") {
		return "", "", "", false
	}
	return app, rest, key, true
}

// serve checks the application, in the path and in x-kii-appid, before
// the route's method and token: Kii answers APP_NOT_FOUND first.
func (k kii) serve(w http.ResponseWriter, r *http.Request) error {
	app, _, key, _ := kiiPath(r.URL.Path)
	if app != k.appID || r.Header.Get("X-Kii-Appid") != k.appID {
		return &apiError{status: http.StatusNotFound, code: "app_not_found", message: "No application has this ID."}
	}
	return k.p.serveRoute(w, r, kiiRoutes, key)
}

// kiiCodes are Kii's error codes for ours (SPEC §6); any other is ours in
// Kii's upper case (RATE_LIMITED, TOO_MANY_ATTEMPTS, CODE_EXPIRED…).
var kiiCodes = map[string]string{
	"invalid_code":              "INVALID_VERIFICATION_CODE",
	"no_pending_verification":   "INVALID_ACCOUNT_STATUS",
	"unauthorized":              "UNAUTHORIZED",
	"reauthentication_required": "UNAUTHORIZED",
	"phone_number_in_use":       "PHONE_NUMBER_ALREADY_EXISTS",
	"invalid_request":           "INVALID_INPUT_DATA",
	"invalid_phone_number":      "INVALID_INPUT_DATA",
	"app_not_found":             "APP_NOT_FOUND",
	"user_not_found":            "USER_NOT_FOUND",
}

// kiiCode is Kii's errorCode for ours.
func kiiCode(code string) string {
	if c, ok := kiiCodes[code]; ok {
		return c
	}
	return strings.ToUpper(code)
}

// errorBody is Kii's {"errorCode","message"} with the fields the error
// carries (attempts_left, retry_after). The SDK URI-decodes an error body
// before it parses it, so a % is written as \u0025: the message reaches
// the app as sent.
func (kii) errorBody(e *apiError) (int, any) {
	body := flatBody(e.fields).toMap()
	body["errorCode"], body["message"] = kiiCode(e.code), e.message
	b, err := json.Marshal(body)
	if err != nil {
		return e.status, body
	}
	return e.status, json.RawMessage(bytes.ReplaceAll(b, []byte("%"), []byte(`\u0025`)))
}

// kiiOwnUser refuses a {userID} other than the token's user ("me" is
// always it), the same way whether or not that user exists.
func kiiOwnUser(r *http.Request, id *bearer.Identity) error {
	if _, user, _, _ := kiiPath(r.URL.Path); user != "me" && user != id.UserID {
		return &apiError{status: http.StatusNotFound, code: "user_not_found",
			message: "No user with this ID is visible to this token."}
	}
	return nil
}

// kiiUserBody is the user as Kii shows it, with the fields the SDK reads
// into KiiUser (userID, phoneNumber, phoneNumberVerified,
// _phoneNumberPending); a user without a number has no phone fields.
func kiiUserBody(userID string, st flow.Status) map[string]any {
	body := map[string]any{"userID": userID}
	if st.User.PhoneNumber != "" {
		body["phoneNumber"], body["phoneNumberVerified"] = st.User.PhoneNumber, st.User.Verified
	}
	if st.PendingNumber != "" {
		body["_phoneNumberPending"] = st.PendingNumber
	}
	return body
}

// kiiUser is GET /api/apps/{app}/users/{me|userID}: the token's user read
// afresh (authenticateWithToken, refresh).
func (p *Phone) kiiUser(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	if err := kiiOwnUser(r, id); err != nil {
		return err
	}
	st, err := p.service.Status(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, kiiUserBody(id.UserID, st))
	return nil
}

type kiiPhoneRequest struct {
	PhoneNumber *string `json:"phoneNumber"`
}

// kiiChangePhone is PUT …/users/{userID}/phone-number {"phoneNumber"}
// (changePhone): the update rules of SPEC §4, answered as Kii does, 204
// whatever the rule; refresh shows the outcome.
func (p *Phone) kiiChangePhone(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	if err := kiiOwnUser(r, id); err != nil {
		return err
	}
	var req kiiPhoneRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.PhoneNumber == nil || *req.PhoneNumber == "" {
		return errMissing("phoneNumber")
	}
	if _, err := p.update(r, flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.PhoneNumber,
		Locale: acceptLanguage(r)}, "kii"); err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}

// kiiResend is POST …/users/{userID}/phone-number/resend-verification (no
// body): a new code for the open challenge, or a first one for an
// unverified current number, as Kii resends a sign-up's code. 204.
func (p *Phone) kiiResend(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	if err := kiiOwnUser(r, id); err != nil {
		return err
	}
	var req struct{}
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	if _, err := p.resend(r, flow.ResendRequest{UserID: id.UserID, Locale: acceptLanguage(r),
		OpenForUnverified: true}); err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}

type kiiVerifyRequest struct {
	VerificationCode *string `json:"verificationCode"`
}

// kiiVerify is POST …/users/{me|userID}/phone-number/verify
// {"verificationCode"} (verifyPhoneNumber): 200 and the user, verified.
func (p *Phone) kiiVerify(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	if err := kiiOwnUser(r, id); err != nil {
		return err
	}
	var req kiiVerifyRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.VerificationCode == nil || *req.VerificationCode == "" {
		return errMissing("verificationCode")
	}
	u, err := p.verify(r, flow.VerifyRequest{UserID: id.UserID, Code: *req.VerificationCode}, "kii")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, kiiUserBody(id.UserID, flow.Status{User: u}))
	return nil
}

// writeNoContent answers 204, not to be cached.
func writeNoContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
