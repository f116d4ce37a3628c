package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// adminAPI is what `admin { }` provisions: the Clerk-shaped admin
// endpoints of SPEC §7, under <prefix>/v1/, so that @clerk/backend's
// createClerkClient({secretKey, apiUrl: "<site><prefix>"}) drives them
// unmodified.
type adminAPI struct {
	// keyHash is the SHA-256 of the API key: comparing hashes in constant
	// time leaks neither the key nor its length.
	keyHash [sha256.Size]byte
	// numbers is nil when the user store keeps one number per user (http).
	numbers store.PhoneNumbers
	norm    interface{ Normalize(string) (string, error) }
	logger  *zap.Logger
	// escapedRoot is <prefix>/v1/ as it appears in an escaped path.
	escapedRoot string
	// change runs a write of the user's numbers under the rules
	// (flow.Service.AdminChange): the user's lock, and, when the write
	// changed the number GET /phone shows, the open challenge dropped and
	// the app told.
	change func(ctx context.Context, userID string, write func(context.Context) error) error
	// hasKey is false when only admin tokens open the endpoints.
	hasKey bool
	// claim, when set, lets a valid JWT carrying it open the endpoints:
	// true, or claimValue (a string, or one item of an array).
	claim, claimValue string
	verifier          *bearer.Verifier
}

// adminClaim reports whether a verified token carries the admin claim.
func (a *adminAPI) adminClaim(id *bearer.Identity) bool {
	v, ok := id.Claims[a.claim]
	if !ok {
		return false
	}
	if a.claimValue == "" {
		b, isBool := v.(bool)
		return isBool && b
	}
	switch v := v.(type) {
	case string:
		return v == a.claimValue
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok && s == a.claimValue {
				return true
			}
		}
	}
	return false
}

// minAdminKeyLength keeps the key out of guessing range.
const minAdminKeyLength = 16

// checkAdmin checks the `admin` settings and returns the expanded key.
// It runs before anything is opened.
func (p *Phone) checkAdmin(repl *caddy.Replacer) (string, error) {
	if p.Admin == nil {
		return "", nil
	}
	key := repl.ReplaceKnown(p.Admin.APIKey, "")
	switch {
	case key == "" && p.Admin.Claim == "":
		return "", errors.New("admin: api_key is required (or a claim that marks admin tokens)")
	case key == "":
		// Claim only: no key can match (the hash of "" is never compared
		// against an empty bearer, which authenticate refuses first).
	case len(key) < minAdminKeyLength:
		return "", fmt.Errorf("admin: api_key must be at least %d characters", minAdminKeyLength)
	case strings.ContainsAny(key, ". \t\r\n"):
		// No dot: a bearer value without one can never pass for a JWT on
		// the user routes, whatever keys the jwt block trusts.
		return "", errors.New("admin: api_key must not contain dots or white space")
	case p.JWT != nil && key == repl.ReplaceKnown(p.JWT.ProjectID, ""):
		return "", errors.New("admin: api_key must differ from jwt.project_id")
	}
	return key, nil
}

// provisionAdmin opens the store's phone numbers for the admin endpoints.
// It runs once the user store is open and the rules are built; writes go
// through the rules (flow.Service.AdminChange) and drop the read cache's
// copy (cached, nil when there is none).
func (p *Phone) provisionAdmin(ctx context.Context, c checked, cached *store.CachedUsers) error {
	if p.Admin == nil {
		return nil
	}
	key := c.adminKey
	a := &adminAPI{keyHash: sha256.Sum256([]byte(key)), hasKey: key != "", norm: c.numbers, logger: p.logger.Named("admin"),
		escapedRoot: (&url.URL{Path: p.routeAdmin}).EscapedPath(), claim: p.Admin.Claim,
		claimValue: p.Admin.ClaimValue, verifier: p.verifier, change: p.service.AdminChange}
	p.admin = a
	if p.backend.Numbers == nil {
		a.logger.Info("the user store keeps one number per user: the phone number endpoints answer 501 not_supported")
		return nil
	}
	pn, err := p.backend.Numbers(ctx)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if cached != nil {
		pn = cached.ForgetOnWrite(pn)
	}
	a.numbers = pn
	return nil
}

// adminRoute is one admin endpoint matched against a request.
type adminRoute struct {
	allow  string // the Allow header: the methods of this path
	handle func(a *adminAPI, w http.ResponseWriter, r *http.Request)
}

// serveAdmin answers the Clerk-shaped admin endpoints (SPEC §7): routing
// first (404, 405), then the API key (401), then the store (501), then
// the body (400, 413) and the rules.
func (p *Phone) serveAdmin(w http.ResponseWriter, r *http.Request) error {
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, nil) // the caller is no user
	}
	a := p.admin
	if a == nil { // not provisioned: cannot happen once Provision succeeded
		writeAdminError(w, http.StatusNotImplemented, "not_supported", "The admin endpoints are not available.", "")
		return nil
	}
	route, ok := a.route(r)
	if !ok {
		writeAdminError(w, http.StatusNotFound, "not_found", "No such route.", "")
		return nil
	}
	if route.handle == nil {
		w.Header().Set("Allow", route.allow)
		writeAdminError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use "+route.allow+" on this route.", "")
		return nil
	}
	if !a.authenticate(w, r) {
		return nil
	}
	if a.numbers == nil {
		writeAdminError(w, http.StatusNotImplemented, "not_supported",
			"This user store keeps one phone number per user; use the user store's own API.", "")
		return nil
	}
	route.handle(a, w, r)
	return nil
}

// Path segments of the admin routes.
const (
	segPhoneNumbers = "phone_numbers"
	segUsers        = "users"
)

// route matches the path below <prefix>/v1/; a route with a nil handle is
// a known path asked with the wrong method. Segments are split on the
// escaped path, so an ID holding an encoded "/" stays one segment.
func (a *adminAPI) route(r *http.Request) (adminRoute, bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), a.escapedRoot)
	if !ok {
		return adminRoute{}, false
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return adminRoute{}, false
		}
		segs[i] = u
	}
	m := r.Method
	switch {
	case len(segs) == 1 && segs[0] == segPhoneNumbers:
		rt := adminRoute{allow: http.MethodPost}
		if m == http.MethodPost {
			rt.handle = (*adminAPI).create
		}
		return rt, true
	case len(segs) == 2 && segs[0] == segPhoneNumbers:
		rt := adminRoute{allow: "GET, HEAD, PATCH, DELETE"}
		id := segs[1]
		switch m {
		case http.MethodGet, http.MethodHead:
			rt.handle = func(a *adminAPI, w http.ResponseWriter, r *http.Request) { a.get(w, r, id) }
		case http.MethodPatch:
			rt.handle = func(a *adminAPI, w http.ResponseWriter, r *http.Request) { a.update(w, r, id) }
		case http.MethodDelete:
			rt.handle = func(a *adminAPI, w http.ResponseWriter, r *http.Request) { a.delete(w, r, id) }
		}
		return rt, true
	case len(segs) == 3 && segs[0] == segUsers && segs[2] == segPhoneNumbers:
		rt := adminRoute{allow: "GET, HEAD"}
		user := segs[1]
		if m == http.MethodGet || m == http.MethodHead {
			rt.handle = func(a *adminAPI, w http.ResponseWriter, r *http.Request) { a.list(w, r, user) }
		}
		return rt, true
	}
	return adminRoute{}, false
}

// authenticate accepts exactly "Bearer <api key>" (the scheme in any
// case), comparing in constant time. A user's JWT is not the key: 401.
func (a *adminAPI) authenticate(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(auth, " ")
	if found && strings.EqualFold(scheme, "Bearer") && tok != "" {
		got := sha256.Sum256([]byte(tok))
		if a.hasKey && subtle.ConstantTimeCompare(got[:], a.keyHash[:]) == 1 {
			return true
		}
		if a.claim != "" && strings.Count(tok, ".") == 2 {
			if id, err := a.verifier.Verify(r.Context(), auth); err == nil && a.adminClaim(id) {
				return true
			}
		}
	}
	if ce := a.logger.Check(zapcore.DebugLevel, "admin key refused"); ce != nil {
		ce.Write(zap.Bool("presented", auth != ""))
	}
	challenge := `Bearer realm="phone"`
	if auth != "" {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeAdminError(w, http.StatusUnauthorized, "unauthorized", "A valid admin API key is required.", "")
	return false
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

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req adminCreateRequest
	if !decodeAdminBody(w, r, &req, false) {
		return
	}
	switch {
	case req.UserID == nil || *req.UserID == "":
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "user_id is required.", "user_id")
		return
	case len(*req.UserID) > maxAdminUserID || !utf8.ValidString(*req.UserID):
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "user_id is not a valid user ID.", "user_id")
		return
	case req.PhoneNumber == nil:
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "phone_number is required.", "phone_number")
		return
	}
	number, err := a.norm.Normalize(*req.PhoneNumber)
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), *req.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.CreatePhoneNumber(ctx, store.NewPhoneNumber{UserID: *req.UserID, PhoneNumber: number,
			Verified: isTrue(req.Verified), Primary: isTrue(req.Primary), ReservedForSecondFactor: isTrue(req.ReservedForSecondFactor)})
		return err
	})
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	a.logger.Info("phone number created", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.String("phone", numbers.Mask(n.PhoneNumber)), zap.Bool("primary", n.Primary), zap.Bool("verified", n.Verified))
	writeJSON(w, http.StatusOK, clerkNumber(n))
}

func (a *adminAPI) get(w http.ResponseWriter, r *http.Request, id string) {
	n, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, clerkNumber(n))
}

func (a *adminAPI) update(w http.ResponseWriter, r *http.Request, id string) {
	var req adminUpdateRequest
	if !decodeAdminBody(w, r, &req, true) {
		return
	}
	old, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), old.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.UpdatePhoneNumber(ctx, id, store.PhoneNumberChange{Primary: req.Primary,
			Verified: req.Verified, ReservedForSecondFactor: req.ReservedForSecondFactor})
		return err
	})
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	a.logger.Info("phone number updated", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.Bool("primary", n.Primary), zap.Bool("verified", n.Verified), zap.Bool("reserved", n.ReservedForSecondFactor))
	writeJSON(w, http.StatusOK, clerkNumber(n))
}

func (a *adminAPI) delete(w http.ResponseWriter, r *http.Request, id string) {
	old, err := a.numbers.GetPhoneNumber(r.Context(), id)
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	var n store.PhoneNumber
	err = a.change(r.Context(), old.UserID, func(ctx context.Context) (err error) {
		n, err = a.numbers.DeletePhoneNumber(ctx, id)
		return err
	})
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	a.logger.Info("phone number deleted", zap.String("user_id", n.UserID), zap.String("id", n.ID),
		zap.Bool("was_primary", n.Primary))
	writeJSON(w, http.StatusOK, clerkDeleted{Object: "phone_number", ID: n.ID, Deleted: true})
}

func (a *adminAPI) list(w http.ResponseWriter, r *http.Request, user string) {
	if len(user) > maxAdminUserID || !utf8.ValidString(user) {
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "The user ID is not valid.", "user_id")
		return
	}
	rows, err := a.numbers.ListPhoneNumbers(r.Context(), user)
	if err != nil {
		a.writeStoreError(w, err)
		return
	}
	out := clerkList{Data: make([]clerkPhoneNumber, len(rows)), TotalCount: len(rows)}
	for i, n := range rows {
		out.Data[i] = clerkNumber(n)
	}
	writeJSON(w, http.StatusOK, out)
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

// writeAdminError writes our error body (SPEC §5) with Clerk's errors list
// beside it, which @clerk/backend turns into ClerkAPIResponseError.errors.
func writeAdminError(w http.ResponseWriter, status int, code, msg, param string) {
	writeJSON(w, status, map[string]any{
		"error":   code,
		"message": msg,
		"errors":  []clerkError{{Code: code, Message: msg, LongMessage: msg, Meta: clerkErrorMeta{ParamName: param}}},
	})
}

// writeStoreError maps the number rules' outcomes to SPEC §5, in one place.
func (a *adminAPI) writeStoreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, numbers.ErrInvalid):
		writeAdminError(w, http.StatusBadRequest, "invalid_phone_number", "The phone number is not valid.", "phone_number")
	case errors.Is(err, numbers.ErrNotAllowed):
		writeAdminError(w, http.StatusUnprocessableEntity, "phone_number_not_allowed", sentence(err), "phone_number")
	case errors.Is(err, store.ErrNotFound):
		writeAdminError(w, http.StatusNotFound, "not_found", "No phone number has this ID.", "")
	case errors.Is(err, store.ErrPhoneInUse):
		writeAdminError(w, http.StatusConflict, "phone_number_in_use",
			"This phone number is already in use by another account.", "phone_number")
	case errors.Is(err, store.ErrPhoneExists):
		writeAdminError(w, http.StatusConflict, "phone_number_in_use", "This user already has this phone number.", "phone_number")
	case errors.Is(err, store.ErrNotVerified):
		writeAdminError(w, http.StatusUnprocessableEntity, "phone_number_not_verified",
			"Only a verified phone number can be reserved for second factor authentication.", "reserved_for_second_factor")
	case errors.Is(err, store.ErrKeepPrimary):
		writeAdminError(w, http.StatusBadRequest, "invalid_request",
			"A primary phone number stays primary until another number of the user is made primary.", "primary")
	case errors.Is(err, store.ErrNotSupported):
		writeAdminError(w, http.StatusNotImplemented, "not_supported",
			"This user store keeps one phone number per user.", "")
	case errors.Is(err, store.ErrUnavailable):
		a.logger.Error("user store unavailable", zap.Error(err))
		w.Header().Set("Retry-After", "5")
		writeAdminError(w, http.StatusServiceUnavailable, "store_unavailable",
			"The user store is unavailable; try again shortly.", "")
	default:
		a.logger.Error("admin request failed", zap.Error(err))
		writeAdminError(w, http.StatusInternalServerError, "internal_error", "Something went wrong.", "")
	}
}

// decodeAdminBody reads one JSON object of known fields, at most maxBody
// bytes. @clerk/backend sends no body when there is nothing to send (an
// update with no field), so an empty body is an empty object when
// emptyOK.
func decodeAdminBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeAdminError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "The body is over 16 KiB.", "")
		return false
	case err != nil:
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "The body could not be read.", "")
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return true
		}
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "A JSON body is required.", "")
		return false
	}
	if !utf8.Valid(data) {
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "The body is not valid UTF-8.", "")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		param := ""
		if errors.As(err, &typeErr) {
			param = typeErr.Field
		}
		writeAdminError(w, http.StatusBadRequest, "invalid_request", jsonProblem(err), param)
		return false
	}
	if dec.More() {
		writeAdminError(w, http.StatusBadRequest, "invalid_request", "The body must hold one JSON object.", "")
		return false
	}
	return true
}
