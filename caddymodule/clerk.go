package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// clerk is the Clerk-shaped admin endpoints of SPEC §7 under <prefix>/v1/
// (admin.go provisions them): @clerk/backend's
// createClerkClient({secretKey, apiUrl: "<site><prefix>"}) drives them
// unmodified.
type clerk struct{ p *Phone }

// clerkRoute is one admin endpoint matched against a request.
type clerkRoute struct {
	allow string // the Allow header: the methods of this path
	// handle is nil for a known path asked with the wrong method; arg is
	// the ID in the path.
	handle func(a *adminAPI, w http.ResponseWriter, r *http.Request, arg string) error
	arg    string
}

// serve answers the admin endpoints: routing first (404, 405), then the
// API key (401), then the store (501), then the body (400, 413) and the
// rules.
func (c clerk) serve(w http.ResponseWriter, r *http.Request) error {
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, nil) // the caller is no user
	}
	a := c.p.admin
	if a == nil { // not provisioned: cannot happen once Provision succeeded
		return errNotSupported("The admin endpoints are not available.")
	}
	route, ok := a.route(r)
	if !ok {
		return errNotFound()
	}
	if route.handle == nil {
		return errMethod(route.allow, route.allow)
	}
	if err := a.authenticate(r); err != nil {
		return err
	}
	if a.numbers == nil {
		return errNotSupported("This user store keeps one phone number per user; use the user store's own API.")
	}
	return route.handle(a, w, r, route.arg)
}

// errorBody is our error body (SPEC §5) with Clerk's errors list beside
// it, which @clerk/backend turns into ClerkAPIResponseError.errors; a
// field at fault is its meta.param_name. The top-level error stays our
// code; the list's code and the HTTP status are Clerk's (clerkStatus).
func (clerk) errorBody(e *apiError) (int, any) {
	status, code := clerkStatus(e)
	body := nativeErrorBody(e)
	body["errors"] = []clerkError{{Code: code, Message: e.message, LongMessage: e.message,
		Meta: clerkErrorMeta{ParamName: e.param}}}
	return status, body
}

// Clerk's error codes (SPEC §7), as its Backend API answers them.
const (
	clerkNotFound       = "resource_not_found"
	clerkFormatInvalid  = "form_param_format_invalid"
	clerkParamMissing   = "form_param_missing"
	clerkIdentifierUsed = "form_identifier_exists"
	clerkUnauthorized   = "authentication_invalid"
)

// clerkStatus is the status and code Clerk states e with (SPEC §7): 404
// resource_not_found, 422 form_param_missing for an absent field, 422
// form_param_format_invalid for a bad number or another field at fault,
// 422 form_identifier_exists for a number already held, 401
// authentication_invalid. Our own refusals Clerk has no code for
// (not_supported, phone_number_not_verified, a body that is not
// one JSON object, 405, 413, 429, 503…) keep their status and our code.
func clerkStatus(e *apiError) (int, string) {
	switch e.code {
	case "not_found":
		return http.StatusNotFound, clerkNotFound
	case "invalid_phone_number":
		return http.StatusUnprocessableEntity, clerkFormatInvalid
	case "invalid_request":
		switch {
		case e.missing:
			return http.StatusUnprocessableEntity, clerkParamMissing
		case e.param != "":
			return http.StatusUnprocessableEntity, clerkFormatInvalid
		}
	case "phone_number_in_use":
		return http.StatusUnprocessableEntity, clerkIdentifierUsed
	case "unauthorized":
		return http.StatusUnauthorized, clerkUnauthorized
	}
	return e.status, e.code
}

// Path segments of the admin routes.
const (
	segPhoneNumbers = "phone_numbers"
	segUsers        = "users"
	// segCount is Clerk's users/count: no user ID can be "count" here.
	segCount = "count"
)

// route matches the path below <prefix>/v1/. Segments are split on the
// escaped path, so an ID holding an encoded "/" stays one segment.
func (a *adminAPI) route(r *http.Request) (clerkRoute, bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), a.escapedRoot)
	if !ok {
		return clerkRoute{}, false
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return clerkRoute{}, false
		}
		segs[i] = u
	}
	m := r.Method
	switch {
	case len(segs) == 1 && segs[0] == segPhoneNumbers:
		rt := clerkRoute{allow: http.MethodPost}
		if m == http.MethodPost {
			rt.handle = (*adminAPI).create
		}
		return rt, true
	case len(segs) == 2 && segs[0] == segPhoneNumbers:
		rt := clerkRoute{allow: "GET, HEAD, PATCH, DELETE", arg: segs[1]}
		switch m {
		case http.MethodGet, http.MethodHead:
			rt.handle = (*adminAPI).get
		case http.MethodPatch:
			rt.handle = (*adminAPI).update
		case http.MethodDelete:
			rt.handle = (*adminAPI).delete
		}
		return rt, true
	case len(segs) == 1 && segs[0] == segUsers:
		return getRoute(m, (*adminAPI).listUsers, ""), true
	case len(segs) == 2 && segs[0] == segUsers && segs[1] == segCount:
		return getRoute(m, (*adminAPI).countUsers, ""), true
	case len(segs) == 2 && segs[0] == segUsers:
		rt := clerkRoute{allow: "GET, HEAD, PATCH", arg: segs[1]}
		switch m {
		case http.MethodGet, http.MethodHead:
			rt.handle = (*adminAPI).getUser
		case http.MethodPatch:
			rt.handle = (*adminAPI).updateUser
		}
		return rt, true
	case len(segs) == 3 && segs[0] == segUsers && segs[2] == segPhoneNumbers:
		rt := clerkRoute{allow: "GET, HEAD", arg: segs[1]}
		if m == http.MethodGet || m == http.MethodHead {
			rt.handle = (*adminAPI).list
		}
		return rt, true
	}
	return clerkRoute{}, false
}

// getRoute is a read-only route: GET and HEAD.
func getRoute(method string, h func(a *adminAPI, w http.ResponseWriter, r *http.Request, arg string) error, arg string) clerkRoute {
	rt := clerkRoute{allow: "GET, HEAD", arg: arg}
	if method == http.MethodGet || method == http.MethodHead {
		rt.handle = h
	}
	return rt
}

// authenticate accepts exactly "Bearer <api key>" (the scheme in any
// case), comparing in constant time, or a valid JWT with the admin claim.
// A user's JWT is not the key: 401.
func (a *adminAPI) authenticate(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(auth, " ")
	if found && strings.EqualFold(scheme, "Bearer") && tok != "" {
		got := sha256.Sum256([]byte(tok))
		if a.hasKey && subtle.ConstantTimeCompare(got[:], a.keyHash[:]) == 1 {
			return nil
		}
		if a.claim != "" && strings.Count(tok, ".") == 2 {
			if id, err := a.verifier.Verify(r.Context(), auth); err == nil && a.adminClaim(id) {
				return nil
			}
		}
	}
	if ce := a.logger.Check(zapcore.DebugLevel, "admin key refused"); ce != nil {
		ce.Write(zap.Bool("presented", auth != ""))
	}
	return errUnauthorized(auth != "", "unauthorized", "A valid admin API key is required.")
}

// --- handlers -------------------------------------------------------------

// maxAdminUserID bounds user IDs, as JWT user claims are in practice.
const maxAdminUserID = 255

type adminCreateRequest struct {
	UserID                  *string `json:"user_id"`
	PhoneNumber             *string `json:"phone_number"`
	Verified                *bool   `json:"verified"`
	Primary                 *bool   `json:"primary"`
	ReservedForSecondFactor *bool   `json:"reserved_for_second_factor"`
}

type adminUpdateRequest struct {
	Primary                 *bool `json:"primary"`
	Verified                *bool `json:"verified"`
	ReservedForSecondFactor *bool `json:"reserved_for_second_factor"`
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request, _ string) error {
	var req adminCreateRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.UserID == nil || *req.UserID == "":
		return errMissing("user_id")
	case len(*req.UserID) > maxAdminUserID || !utf8.ValidString(*req.UserID):
		return errInvalid("user_id is not a valid user ID.", "user_id")
	case req.PhoneNumber == nil:
		return errMissing("phone_number")
	}
	number, err := a.norm.Normalize(*req.PhoneNumber)
	if err != nil {
		return err
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), *req.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.CreatePhoneNumber(ctx, store.NewPhoneNumber{UserID: *req.UserID, PhoneNumber: number,
			Verified: isTrue(req.Verified), Primary: isTrue(req.Primary), ReservedForSecondFactor: isTrue(req.ReservedForSecondFactor)})
		return err
	})
	if err != nil {
		return err
	}
	a.logger.Info("phone number created", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.String("phone", numbers.Mask(n.PhoneNumber)), zap.Bool("primary", n.Primary), zap.Bool("verified", n.Verified))
	writeJSON(w, http.StatusOK, clerkNumber(n))
	return nil
}

func (a *adminAPI) get(w http.ResponseWriter, r *http.Request, id string) error {
	n, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, clerkNumber(n))
	return nil
}

func (a *adminAPI) update(w http.ResponseWriter, r *http.Request, id string) error {
	// @clerk/backend sends no body when there is nothing to send (an
	// update with no field): an empty body is an empty object.
	var req adminUpdateRequest
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	old, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		return err
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), old.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.UpdatePhoneNumber(ctx, id, store.PhoneNumberChange{Primary: req.Primary,
			Verified: req.Verified, ReservedForSecondFactor: req.ReservedForSecondFactor})
		return err
	})
	if err != nil {
		return err
	}
	a.logger.Info("phone number updated", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.Bool("primary", n.Primary), zap.Bool("verified", n.Verified), zap.Bool("reserved", n.ReservedForSecondFactor))
	writeJSON(w, http.StatusOK, clerkNumber(n))
	return nil
}

func (a *adminAPI) delete(w http.ResponseWriter, r *http.Request, id string) error {
	old, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		return err
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), old.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.DeletePhoneNumber(ctx, id)
		return err
	})
	if err != nil {
		return err
	}
	a.logger.Info("phone number deleted", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.Bool("was_primary", n.Primary))
	writeJSON(w, http.StatusOK, clerkDeleted{Object: "phone_number", ID: n.ID, Deleted: true})
	return nil
}

func (a *adminAPI) list(w http.ResponseWriter, r *http.Request, user string) error {
	if len(user) > maxAdminUserID || !utf8.ValidString(user) {
		return errInvalid("The user ID is not valid.", "user_id")
	}
	rows, err := a.numbers.ListPhoneNumbers(r.Context(), user)
	if err != nil {
		return err
	}
	out := clerkList{Data: make([]clerkPhoneNumber, len(rows)), TotalCount: len(rows)}
	for i, n := range rows {
		out.Data[i] = clerkNumber(n)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// --- Clerk's shapes -------------------------------------------------------

// clerkPhoneNumber is Clerk's phone_number object. @clerk/backend reads
// linked_to unconditionally, so it is always present.
type clerkPhoneNumber struct {
	Object                  string             `json:"object"`
	ID                      string             `json:"id"`
	PhoneNumber             string             `json:"phone_number"`
	ReservedForSecondFactor bool               `json:"reserved_for_second_factor"`
	DefaultSecondFactor     bool               `json:"default_second_factor"`
	Verification            *clerkVerification `json:"verification"`
	LinkedTo                []struct{}         `json:"linked_to"`
	UserID                  string             `json:"user_id"`
	Primary                 bool               `json:"primary"`
	Verified                bool               `json:"verified"`
	CreatedAt               int64              `json:"created_at"` // Unix milliseconds
	UpdatedAt               int64              `json:"updated_at"`
}

// clerkVerification is how a number was verified. attempts and expire_at
// belong to a code in flight, which this object does not track: null.
type clerkVerification struct {
	Status   string `json:"status"`
	Strategy string `json:"strategy"`
	Attempts *int   `json:"attempts"`
	ExpireAt *int64 `json:"expire_at"`
}

type clerkDeleted struct {
	Object  string `json:"object"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

type clerkList struct {
	Data       []clerkPhoneNumber `json:"data"`
	TotalCount int                `json:"total_count"`
}

func clerkNumber(n store.PhoneNumber) clerkPhoneNumber {
	c := clerkPhoneNumber{Object: "phone_number", ID: n.ID, PhoneNumber: n.PhoneNumber,
		ReservedForSecondFactor: n.ReservedForSecondFactor, DefaultSecondFactor: n.DefaultSecondFactor,
		LinkedTo: []struct{}{}, UserID: n.UserID, Primary: n.Primary, Verified: n.Verified,
		CreatedAt: n.CreatedAt.UnixMilli(), UpdatedAt: n.UpdatedAt.UnixMilli()}
	if n.Strategy != "" {
		status := "unverified"
		if n.Verified {
			status = "verified"
		}
		c.Verification = &clerkVerification{Status: status, Strategy: n.Strategy}
	}
	return c
}

// clerkError is one entry of Clerk's errors list.
type clerkError struct {
	Code        string         `json:"code"`
	Message     string         `json:"message"`
	LongMessage string         `json:"long_message"`
	Meta        clerkErrorMeta `json:"meta"`
}

type clerkErrorMeta struct {
	ParamName string `json:"param_name,omitempty"`
}
