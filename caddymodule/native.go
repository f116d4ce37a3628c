package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// maxBody bounds every JSON request body (SPEC §5: 413 above it).
const maxBody = 16 << 10

// serveAPI routes first (404, 405), then authenticates (401), then reads
// the body (400, 413), then applies the rules.
func (p *Phone) serveAPI(w http.ResponseWriter, r *http.Request) error {
	stripPhoneHeaders(r.Header)
	if p.isUIPath(r.URL.Path) { // the static page (ui.go): no token needed
		serveUI(w, r)
		return nil
	}
	var method string
	var handle func(http.ResponseWriter, *http.Request, *bearer.Identity)
	switch r.URL.Path {
	case p.routeStatus:
		method, handle = http.MethodGet, p.handleStatus
	case p.routeUpdate:
		method, handle = http.MethodPost, p.handleUpdate
	case p.routeVerify:
		method, handle = http.MethodPost, p.handleVerify
	case p.routeResend:
		method, handle = http.MethodPost, p.handleResend
	case p.routePending:
		method, handle = http.MethodDelete, p.handleCancel
	default:
		writeError(w, http.StatusNotFound, "not_found", "No such route.", nil)
		return nil
	}
	if !methodOK(w, r, method) {
		return nil
	}
	id, ok := p.authenticate(w, r)
	if !ok {
		return nil
	}
	handle(w, r, id)
	return nil
}

// methodOK answers 405 with Allow unless r uses method (HEAD counts as
// GET).
func methodOK(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", allowed(method))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use "+method+" on this route.", nil)
	return false
}

func allowed(method string) string {
	if method == http.MethodGet {
		return "GET, HEAD"
	}
	return method
}

// authenticate checks the bearer token; on failure it writes the one 401
// every reason shares and logs the reason at debug level only.
func (p *Phone) authenticate(w http.ResponseWriter, r *http.Request) (*bearer.Identity, bool) {
	auth := r.Header.Get("Authorization")
	id, err := p.verifier.Verify(r.Context(), auth)
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, id)
	}
	if err == nil {
		return id, true
	}
	if ce := p.logger.Check(zapcore.DebugLevel, "bearer token refused"); ce != nil {
		ce.Write(zap.String("reason", err.Error()))
	}
	unauthorized(w, !errors.Is(err, bearer.ErrMissing), "unauthorized", "A valid bearer token is required.")
	return nil, false
}

func unauthorized(w http.ResponseWriter, presented bool, code, msg string) {
	challenge := `Bearer realm="phone"`
	if presented {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, code, msg, nil)
}

// statusBody is GET /phone.
type statusBody struct {
	UserID           string  `json:"user_id"`
	PhoneNumber      *string `json:"phone_number"`
	Verified         bool    `json:"verified"`
	PendingNumber    *string `json:"pending_phone_number"`
	PendingExpiresAt *string `json:"pending_expires_at"`
}

func (p *Phone) handleStatus(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	st, err := p.service.Status(r.Context(), id.UserID)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	body := statusBody{UserID: id.UserID, PhoneNumber: nullable(st.User.PhoneNumber),
		Verified: st.User.Verified, PendingNumber: nullable(st.PendingNumber)}
	if !st.PendingExpiresAt.IsZero() {
		t := st.PendingExpiresAt.UTC().Format(time.RFC3339)
		body.PendingExpiresAt = &t
	}
	writeJSON(w, http.StatusOK, body)
}

type updateRequest struct {
	PhoneNumber     *string           `json:"phone_number"`
	Locale          string            `json:"locale"`
	TemplateOptions map[string]string `json:"template_options"`
	ProviderID      string            `json:"provider_id"`
}

type updateBody struct {
	Status        string  `json:"status"`
	PhoneNumber   *string `json:"phone_number"`
	Verified      bool    `json:"verified"`
	PendingNumber *string `json:"pending_phone_number"`
	MaskedPhone   *string `json:"masked_phone"`
	ExpiresIn     int     `json:"expires_in"`
	ResendAfter   int     `json:"resend_after"`
}

func (p *Phone) handleUpdate(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	if p.maxAge > 0 {
		signIn := id.SignInTime()
		if signIn.IsZero() || time.Since(signIn) > p.maxAge {
			unauthorized(w, true, "reauthentication_required", "Sign in again to change your phone number.")
			return
		}
	}
	var req updateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.PhoneNumber == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "phone_number is required.", nil)
		return
	}
	res, err := p.service.Update(r.Context(), flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.PhoneNumber,
		Locale: req.Locale, TemplateOptions: req.TemplateOptions, ProviderID: req.ProviderID, ClientIP: clientIP(r)})
	observe("update", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone update", zap.String("user_id", id.UserID), zap.String("status", res.Status),
		zap.String("to", numbers.Mask(res.SentTo)))
	status, body := updateAnswer(res)
	writeJSON(w, status, body)
}

// updateAnswer is the status and body of a successful update: 202 for a
// pending change, 200 otherwise.
func updateAnswer(res flow.UpdateResult) (int, updateBody) {
	body := updateBody{Status: res.Status, PhoneNumber: nullable(res.User.PhoneNumber), Verified: res.User.Verified,
		PendingNumber: nullable(res.PendingNumber), ExpiresIn: seconds(res.ExpiresIn), ResendAfter: seconds(res.ResendAfter)}
	if res.SentTo != "" {
		m := numbers.Mask(res.SentTo)
		body.MaskedPhone = &m
	}
	if res.Status == flow.StatusPending {
		return http.StatusAccepted, body
	}
	return http.StatusOK, body
}

type verifyRequest struct {
	Code        *string `json:"code"`
	PhoneNumber string  `json:"phone_number"`
}

func (p *Phone) handleVerify(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	var req verifyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Code == nil || *req.Code == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "code is required.", nil)
		return
	}
	u, err := p.service.Verify(r.Context(), flow.VerifyRequest{UserID: id.UserID, Code: *req.Code, PhoneNumber: req.PhoneNumber, ClientIP: clientIP(r)})
	observe("verify", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	p.logger.Info("phone verified", zap.String("user_id", id.UserID), zap.String("phone", numbers.Mask(u.PhoneNumber)))
	writeJSON(w, http.StatusOK, map[string]any{"status": "verified", "phone_number": u.PhoneNumber, "verified": true})
}

type resendRequest struct {
	Locale string `json:"locale"`
}

func (p *Phone) handleResend(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	var req resendRequest
	if !decodeOptionalBody(w, r, &req) {
		return
	}
	res, err := p.service.Resend(r.Context(), flow.ResendRequest{UserID: id.UserID, Locale: req.Locale, ClientIP: clientIP(r)})
	observe("resend", err)
	if err != nil {
		p.writeFlowError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "sent", "masked_phone": numbers.Mask(res.SentTo),
		"expires_in": seconds(res.ExpiresIn), "resend_after": seconds(res.ResendAfter)})
}

func (p *Phone) handleCancel(w http.ResponseWriter, r *http.Request, id *bearer.Identity) {
	if err := p.service.Cancel(r.Context(), id.UserID); err != nil {
		p.writeFlowError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "canceled"})
}

// errorCode is the §5 error code writeFlowError answers for err.
func errorCode(err error) string {
	var ce *flow.CodeError
	switch {
	case errors.As(err, &ce):
		return "invalid_code"
	case errors.Is(err, numbers.ErrInvalid):
		return "invalid_phone_number"
	case errors.Is(err, numbers.ErrNotAllowed):
		return "phone_number_not_allowed"
	case errors.Is(err, flow.ErrInvalidRequest):
		return "invalid_request"
	case errors.Is(err, flow.ErrNoPending):
		return "no_pending_verification"
	case errors.Is(err, flow.ErrExpired):
		return "code_expired"
	case errors.Is(err, flow.ErrTooManyAttempts):
		return "too_many_attempts"
	case errors.Is(err, flow.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, flow.ErrPhoneInUse):
		return "phone_number_in_use"
	case errors.Is(err, flow.ErrDeliveryFailed):
		return "sms_delivery_failed"
	case errors.Is(err, flow.ErrUnavailable):
		return "store_unavailable"
	}
	return "internal_error"
}

// flowErrors gives each §5 error code its status and message.
var flowErrors = map[string]struct {
	status int
	msg    string
}{
	"invalid_code":             {http.StatusBadRequest, "The code is not correct."},
	"invalid_phone_number":     {http.StatusBadRequest, "The phone number is not valid."},
	"phone_number_not_allowed": {http.StatusUnprocessableEntity, ""}, // the reason
	"invalid_request":          {http.StatusBadRequest, ""},          // the reason
	"no_pending_verification":  {http.StatusConflict, "There is no pending verification."},
	"code_expired":             {http.StatusGone, "The code has expired; ask for a new one."},
	"too_many_attempts":        {http.StatusTooManyRequests, "Too many wrong codes; start again with a new update."},
	"rate_limited":             {http.StatusTooManyRequests, "Too many requests; try again later."},
	"phone_number_in_use":      {http.StatusConflict, "This phone number is already in use by another account."},
	"sms_delivery_failed":      {http.StatusBadGateway, "The code could not be sent; try again."},
	"store_unavailable":        {http.StatusServiceUnavailable, "The user store is unavailable; try again shortly."},
	"internal_error":           {http.StatusInternalServerError, "Something went wrong."},
}

// writeFlowError maps the rules' outcomes to SPEC §5, in one place.
func (p *Phone) writeFlowError(w http.ResponseWriter, err error) {
	code := errorCode(err)
	e := flowErrors[code]
	msg := e.msg
	var extra map[string]any
	switch code {
	case "invalid_code":
		var ce *flow.CodeError
		errors.As(err, &ce)
		extra = map[string]any{"attempts_left": ce.AttemptsLeft}
	case "phone_number_not_allowed", "invalid_request":
		msg = sentence(err)
	case "rate_limited":
		secs, _ := flow.RetryAfter(err)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		extra = map[string]any{"retry_after": secs}
	case "sms_delivery_failed":
		p.logger.Warn("sms delivery failed", zap.Error(err))
	case "store_unavailable":
		p.logger.Error("user store unavailable", zap.Error(err))
		w.Header().Set("Retry-After", "5")
	default:
		if e.status >= 500 {
			p.logger.Error("phone request failed", zap.Error(err))
		}
	}
	writeError(w, e.status, code, msg, extra)
}

// sentence turns a wrapped error into a message: the reason after the
// sentinel's text, capitalised, with a full stop.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return "Request refused."
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	if b[len(b)-1] != '.' {
		b = append(b, '.')
	}
	return string(b)
}

// decodeBody reads exactly one JSON object of known fields, at most
// maxBody bytes, into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "A JSON body is required.", nil)
		return false
	}
	return unmarshalStrict(w, data, v)
}

// decodeOptionalBody is decodeBody for routes whose body may be empty.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return true
	}
	return unmarshalStrict(w, data, v)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "The body is over 16 KiB.", nil)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "The body could not be read.", nil)
		return nil, false
	}
	return data, true
}

func unmarshalStrict(w http.ResponseWriter, data []byte, v any) bool {
	if !utf8.Valid(data) {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body is not valid UTF-8.", nil)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", jsonProblem(err), nil)
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body must hold one JSON object.", nil)
		return false
	}
	return true
}

// jsonProblem describes a decode error without echoing the input.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return "Field " + strconv.Quote(typeErr.Field) + " has the wrong type."
	case errors.As(err, &typeErr):
		return "The body must be a JSON object."
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return "The body is not valid JSON."
	}
	const unknown = "json: unknown field "
	if s := err.Error(); len(s) > len(unknown) && s[:len(unknown)] == unknown {
		return "Unknown field " + s[len(unknown):] + "."
	}
	return "The body is not valid JSON."
}

func writeError(w http.ResponseWriter, status int, code, msg string, extra map[string]any) {
	body := make(map[string]any, 2+len(extra))
	for k, v := range extra {
		body[k] = v
	}
	body["error"], body["message"] = code, msg
	if x, ok := w.(*errorExtender); ok {
		x.extend(body)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal_error","message":"Something went wrong."}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

func replacer(r *http.Request) *caddy.Replacer {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return repl
}
