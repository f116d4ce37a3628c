package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// apiError is an error as the API states it (SPEC §5): a status, a code,
// a human sentence, the request field at fault and what goes with it.
// Handlers return one for the refusals they decide themselves (a bad body,
// an unknown route, a missing token); writeError makes one from any other
// error through errorTable. Each dialect restates it in its own shape.
type apiError struct {
	status  int
	code    string
	message string
	// param names the request field at fault (Clerk's meta.param_name).
	param string
	// missing says the field param names was absent (Descope's
	// missingArguments, Clerk's form_param_missing); code stays
	// invalid_request.
	missing bool
	// fields go into the body beside error and message (attempts_left,
	// retry_after): pairs, not a map, which every 429 would allocate.
	fields []flatPair
	// The headers that go with it: Retry-After (seconds; "" for none),
	// WWW-Authenticate on a 401, Allow on a 405.
	retryAfter, challenge, allow string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// The refusals the HTTP layer decides before or beside the rules.

func errInvalid(msg, param string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: msg, param: param}
}

// errMissing refuses a request without the field param, which it needs.
func errMissing(param string) *apiError {
	e := errInvalid(param+" is required.", param)
	e.missing = true
	return e
}

// errTooLarge refuses a body over maxBody.
func errTooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", message: "The body is over 16 KiB."}
}

func errNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", message: "No such route."}
}

// errMethod is a 405 that says which methods to use; allow lists them
// for the Allow header ("GET, HEAD" where use says "GET").
func errMethod(use, allow string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "Use " + use + " on this route.",
		allow: allow}
}

// errUnauthorized is a 401 with its challenge; presented says a
// credential was sent (and refused).
func errUnauthorized(presented bool, code, msg string) *apiError {
	challenge := `Bearer realm="phone"`
	if presented {
		challenge += `, error="invalid_token"`
	}
	return &apiError{status: http.StatusUnauthorized, code: code, message: msg, challenge: challenge}
}

// errBadToken is the one 401 every bearer-token failure shares.
func errBadToken(presented bool) *apiError {
	return errUnauthorized(presented, "unauthorized", "A valid bearer token is required.")
}

// errReauth refuses an update whose sign-in is older than max_auth_age.
func errReauth() *apiError {
	return errUnauthorized(true, "reauthentication_required", "Sign in again to change your phone number.")
}

func errForbidden(msg string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "forbidden", message: msg}
}

// errPhoneNotVerified is require_verified's refusal.
func errPhoneNotVerified() *apiError {
	return &apiError{status: http.StatusForbidden, code: "phone_not_verified", message: "A verified phone number is required here."}
}

func errNotSupported(msg string) *apiError {
	return &apiError{status: http.StatusNotImplemented, code: "not_supported", message: msg}
}

// errorKind is how the API states one domain error.
type errorKind struct {
	is      error // matched with errors.Is, in table order
	status  int
	code    string
	message string // "" states the error's own reason (sentence)
	param   string
	// level and logMsg, when logMsg is set, log the error: what an
	// operator must hear of. The errors logged carry no code, token or
	// whole number.
	level  zapcore.Level
	logMsg string
	// detail adds the fields and headers the error carries.
	detail func(err error, e *apiError)
}

// errorTable maps the rules' and the stores' outcomes to SPEC §5, in one
// place, for every dialect; the first match wins.
var errorTable = []errorKind{
	{is: flow.ErrInvalidCode, status: http.StatusBadRequest, code: "invalid_code", message: "The code is not correct.",
		detail: func(err error, e *apiError) {
			if ce := (*flow.CodeError)(nil); errors.As(err, &ce) {
				e.fields = []flatPair{{k: "attempts_left", v: ce.AttemptsLeft}}
			}
		}},
	{is: numbers.ErrInvalid, status: http.StatusBadRequest, code: "invalid_phone_number",
		message: "The phone number is not valid.", param: "phone_number"},
	{is: numbers.ErrNotAllowed, status: http.StatusUnprocessableEntity, code: "phone_number_not_allowed", param: "phone_number"},
	{is: flow.ErrInvalidRequest, status: http.StatusBadRequest, code: "invalid_request"},
	{is: flow.ErrChannelNotAllowed, status: http.StatusUnprocessableEntity, code: "channel_not_allowed", param: "channel"},
	{is: flow.ErrNoPending, status: http.StatusConflict, code: "no_pending_verification",
		message: "There is no pending verification."},
	{is: flow.ErrExpired, status: http.StatusGone, code: "code_expired", message: "The code has expired; ask for a new one."},
	{is: flow.ErrTooManyAttempts, status: http.StatusTooManyRequests, code: "too_many_attempts",
		message: "Too many wrong codes; start again with a new update."},
	{is: flow.ErrRateLimited, status: http.StatusTooManyRequests, code: "rate_limited",
		message: "Too many requests; try again later.", detail: func(err error, e *apiError) {
			secs, _ := flow.RetryAfter(err)
			e.retryAfter, e.fields = strconv.Itoa(secs), []flatPair{{k: "retry_after", v: secs}}
		}},
	{is: store.ErrPhoneInUse, status: http.StatusConflict, code: "phone_number_in_use",
		message: "This phone number is already in use by another account.", param: "phone_number"},
	{is: flow.ErrDeliveryFailed, status: http.StatusBadGateway, code: "sms_delivery_failed",
		message: "The code could not be sent; try again.", level: zapcore.WarnLevel, logMsg: "sms delivery failed"},
	// The admin endpoints' outcomes (SPEC §7).
	{is: store.ErrNotFound, status: http.StatusNotFound, code: "not_found", message: "No phone number has this ID."},
	{is: store.ErrPhoneExists, status: http.StatusConflict, code: "phone_number_in_use",
		message: "This user already has this phone number.", param: "phone_number"},
	{is: store.ErrNotVerified, status: http.StatusUnprocessableEntity, code: "phone_number_not_verified",
		message: "Only a verified phone number can be reserved for second factor authentication.",
		param:   "reserved_for_second_factor"},
	{is: store.ErrKeepPrimary, status: http.StatusBadRequest, code: "invalid_request",
		message: "A primary phone number stays primary until another number of the user is made primary.", param: "primary"},
	{is: store.ErrNotSupported, status: http.StatusNotImplemented, code: "not_supported",
		message: "This user store keeps one phone number per user."},
	{is: store.ErrCacheFull, status: http.StatusServiceUnavailable, code: "store_unavailable",
		message: "The service is at capacity; try again later.", level: zapcore.WarnLevel,
		logMsg: "cache full: write refused so that no live challenge or counter is evicted (raise the cache's max_size)",
		detail: func(_ error, e *apiError) { e.retryAfter = "30" }},
	{is: store.ErrUnavailable, status: http.StatusServiceUnavailable, code: "store_unavailable",
		message: "The user store is unavailable; try again shortly.", level: zapcore.ErrorLevel, logMsg: "user store unavailable",
		detail: func(_ error, e *apiError) { e.retryAfter = "5" }},
}

// internalError is any error the table does not know.
var internalError = errorKind{status: http.StatusInternalServerError, code: "internal_error",
	message: "Something went wrong.", level: zapcore.ErrorLevel, logMsg: "phone request failed"}

// kindOf is err's row of errorTable: the first row whose sentinel
// errors.Is finds in err. Every refusal asks it (twice: the metrics and
// the answer), and errors.Is row by row walked err's chain once per row;
// firstRow walks it once, comparing each link with every row's sentinel,
// which gives the same row unless a link has an Is method of its own
// (then errors.Is decides).
func kindOf(err error) *errorKind {
	row, plain := firstRow(err, len(errorTable))
	if !plain {
		row = len(errorTable)
		for i := range errorTable {
			if errors.Is(err, errorTable[i].is) {
				row = i
				break
			}
		}
	}
	if row < len(errorTable) {
		return &errorTable[row]
	}
	return &internalError
}

// firstRow is the lowest row below best whose sentinel is a link of
// err's chain (depth first, as errors.Is walks it), or best. plain is
// false when a link has its own Is method, which equality cannot answer
// for. Comparing a link with a sentinel (a pointer) never panics, even
// when the link's type is not comparable: differing types are unequal.
func firstRow(err error, best int) (row int, plain bool) {
	for err != nil {
		if _, ok := err.(interface{ Is(error) bool }); ok {
			return best, false
		}
		for i := range best {
			if err == errorTable[i].is {
				best = i
				break
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if best, plain = firstRow(e, best); !plain {
					return best, false
				}
			}
			return best, true
		default:
			return best, true
		}
	}
	return best, true
}

// errorCode is the §5 error code err is stated with.
func errorCode(err error) string { return kindOf(err).code }

// writeError is the one way an error reaches HTTP: it states err as an
// apiError (through errorTable unless it is one), logs what an operator
// must hear of, sets the headers it carries and writes the body dialect d
// gives it.
func (p *Phone) writeError(w http.ResponseWriter, d dialect, err error) {
	// Most errors are an apiError or a RetryError (which never wraps one);
	// errors.As finds the wrapped apiErrors.
	e, ok := err.(*apiError)
	if _, refusal := err.(*flow.RetryError); refusal || (!ok && !errors.As(err, &e)) {
		k := kindOf(err)
		if k.logMsg != "" {
			if ce := p.logger.Check(k.level, k.logMsg); ce != nil {
				ce.Write(zap.Error(err))
			}
		}
		e = &apiError{status: k.status, code: k.code, message: k.message, param: k.param}
		if e.message == "" {
			e.message = sentence(err)
		}
		if k.detail != nil {
			k.detail(err, e)
		}
	}
	h := w.Header()
	if e.retryAfter != "" {
		h["Retry-After"] = []string{e.retryAfter}
	}
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	if e.allow != "" {
		h.Set("Allow", e.allow)
	}
	if f, ok := d.(flatErrorBody); ok {
		if b, ok := f.appendErrorBody(make([]byte, 0, 128), e); ok {
			writeBody(w, e.status, b)
			return
		}
	}
	status, body := d.errorBody(e)
	writeJSON(w, status, body)
}

// flatErrorBody is a dialect that can append its error body (a flat
// object, at e.status) to a buffer, where errorBody builds a value that
// writeJSON then encodes. ok is false when it cannot; errorBody is asked.
type flatErrorBody interface {
	appendErrorBody(b []byte, e *apiError) (body []byte, ok bool)
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

// writeJSON writes v as the whole answer, with its length.
func writeJSON(w http.ResponseWriter, status int, v any) {
	switch m := v.(type) {
	case map[string]any:
		if b, ok := appendFlatJSON(make([]byte, 0, 128), m); ok {
			writeBody(w, status, b)
			return
		}
	case flatBody:
		if b, ok := appendFlatPairs(make([]byte, 0, 128), m); ok {
			writeBody(w, status, b)
			return
		}
		v = m.toMap()
	}
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal_error","message":"Something went wrong."}`)
	}
	writeBody(w, status, b)
}

// The constant headers of every answer, shared: Header.Set would
// canonicalise the key and allocate the value's slice on every answer.
// A handler replaces a header's slice (Set, Add append to a full slice),
// never writes into it.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// writeBody answers with the JSON in b.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
