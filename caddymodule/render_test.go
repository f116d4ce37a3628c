package caddymodule

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// renderErrors are the domain errors of errorTable, by name.
var renderErrors = map[string]error{
	"code":         &flow.CodeError{AttemptsLeft: 1},
	"invalid":      fmt.Errorf("%w: too short", numbers.ErrInvalid),
	"notallowed":   fmt.Errorf("%w: country US is not allowed", numbers.ErrNotAllowed),
	"request":      fmt.Errorf("%w: template option %q is too long", flow.ErrInvalidRequest, "name"),
	"nopending":    flow.ErrNoPending,
	"expired":      flow.ErrExpired,
	"toomany":      flow.ErrTooManyAttempts,
	"limited":      &flow.RetryError{After: 2500 * time.Millisecond, Err: flow.ErrRateLimited, Limit: "per_user"},
	"inuse":        fmt.Errorf("set: %w", store.ErrPhoneInUse),
	"delivery":     fmt.Errorf("%w: twilio: 500", sms.ErrDeliveryFailed),
	"unavailable":  fmt.Errorf("%w: connection refused", store.ErrUnavailable),
	"boom":         errors.New("boom"),
	"notfound":     store.ErrNotFound,
	"exists":       store.ErrPhoneExists,
	"notverified":  store.ErrNotVerified,
	"keepprimary":  store.ErrKeepPrimary,
	"notsupported": store.ErrNotSupported,
}

// recordedErrorID is where ReachFive's error_id (fresh on every answer)
// stands in the recorded bodies: "ID".
var recordedErrorID = regexp.MustCompile(`"error_id":"[0-9A-Za-z]{10}"`)

// errorIDShown is the body rec holds, with a ReachFive error_id, which
// must be there (once) and of ReachFive's shape, written "ID".
func errorIDShown(t *testing.T, dialect string, rec *httptest.ResponseRecorder) string {
	t.Helper()
	body := rec.Body.String()
	if dialect != "reachfive" {
		return body
	}
	if n := len(recordedErrorID.FindAllString(body, -1)); n != 1 || strings.Count(body, `"error_id"`) != 1 {
		t.Fatalf("want one error_id of ten letters and digits: %s", body)
	}
	return recordedErrorID.ReplaceAllString(body, `"error_id":"ID"`)
}

// dialectsByName are the dialects, for the tables below (their error
// rendering uses nothing of the module).
var dialectsByName = map[string]dialect{"native": native{}, "descope": descope{}, "reachfive": reachfive{}, "clerk": clerk{}}

// Every domain error, in every dialect that can meet it, is answered with
// the same bytes as before the one renderer: the table below was written
// by the three routes it replaced (writeFlowError, errorExtender,
// writeStoreError), but for Clerk's statuses and errors[].code, which SPEC
// §7 now asks for (our code stays at the top).
func TestRenderDomainErrors(t *testing.T) {
	p := &Phone{logger: zap.NewNop()}
	for _, c := range []struct {
		dialect, err string
		status       int
		retryAfter   string
		body         string
	}{
		{"native", "code", 400, "", "{\"attempts_left\":1,\"error\":\"invalid_code\",\"message\":\"The code is not correct.\"}"},
		{"descope", "code", 400, "", "{\"attempts_left\":1,\"error\":\"invalid_code\",\"errorCode\":\"E061102\",\"errorDescription\":\"The code is not correct.\",\"errorMessage\":\"The code is not correct.\",\"message\":\"The code is not correct.\"}"},
		{"reachfive", "code", 400, "", "{\"attempts_left\":1,\"error\":\"invalid_code\",\"error_description\":\"The code is not correct.\",\"error_id\":\"ID\",\"error_message_key\":\"error.invalidCode\",\"error_user_msg\":\"The code is not correct.\",\"message\":\"The code is not correct.\"}"},
		{"native", "invalid", 400, "", "{\"error\":\"invalid_phone_number\",\"message\":\"The phone number is not valid.\"}"},
		{"descope", "invalid", 400, "", "{\"error\":\"invalid_phone_number\",\"errorCode\":\"E011003\",\"errorDescription\":\"The phone number is not valid.\",\"errorMessage\":\"The phone number is not valid.\",\"message\":\"The phone number is not valid.\"}"},
		{"reachfive", "invalid", 400, "", "{\"error\":\"invalid_phone_number\",\"error_description\":\"The phone number is not valid.\",\"error_id\":\"ID\",\"error_message_key\":\"error.invalidPhoneNumber\",\"error_user_msg\":\"The phone number is not valid.\",\"message\":\"The phone number is not valid.\"}"},
		{"clerk", "invalid", 422, "", "{\"error\":\"invalid_phone_number\",\"errors\":[{\"code\":\"form_param_format_invalid\",\"message\":\"The phone number is not valid.\",\"long_message\":\"The phone number is not valid.\",\"meta\":{\"param_name\":\"phone_number\"}}],\"message\":\"The phone number is not valid.\"}"},
		{"native", "notallowed", 422, "", "{\"error\":\"phone_number_not_allowed\",\"message\":\"Phone number not allowed: country US is not allowed.\"}"},
		{"descope", "notallowed", 422, "", "{\"error\":\"phone_number_not_allowed\",\"errorCode\":\"E011001\",\"errorDescription\":\"Phone number not allowed: country US is not allowed.\",\"errorMessage\":\"Phone number not allowed: country US is not allowed.\",\"message\":\"Phone number not allowed: country US is not allowed.\"}"},
		{"reachfive", "notallowed", 422, "", "{\"error\":\"phone_number_not_allowed\",\"error_description\":\"Phone number not allowed: country US is not allowed.\",\"error_id\":\"ID\",\"error_message_key\":\"error.phoneNumberNotAllowed\",\"error_user_msg\":\"Phone number not allowed: country US is not allowed.\",\"message\":\"Phone number not allowed: country US is not allowed.\"}"},
		{"clerk", "notallowed", 422, "", "{\"error\":\"phone_number_not_allowed\",\"errors\":[{\"code\":\"phone_number_not_allowed\",\"message\":\"Phone number not allowed: country US is not allowed.\",\"long_message\":\"Phone number not allowed: country US is not allowed.\",\"meta\":{\"param_name\":\"phone_number\"}}],\"message\":\"Phone number not allowed: country US is not allowed.\"}"},
		{"native", "request", 400, "", "{\"error\":\"invalid_request\",\"message\":\"Invalid request: template option \\\"name\\\" is too long.\"}"},
		{"descope", "request", 400, "", "{\"error\":\"invalid_request\",\"errorCode\":\"E011003\",\"errorDescription\":\"Invalid request: template option \\\"name\\\" is too long.\",\"errorMessage\":\"Invalid request: template option \\\"name\\\" is too long.\",\"message\":\"Invalid request: template option \\\"name\\\" is too long.\"}"},
		{"reachfive", "request", 400, "", "{\"error\":\"invalid_request\",\"error_description\":\"Invalid request: template option \\\"name\\\" is too long.\",\"error_id\":\"ID\",\"error_message_key\":\"error.invalidRequest\",\"error_user_msg\":\"Invalid request: template option \\\"name\\\" is too long.\",\"message\":\"Invalid request: template option \\\"name\\\" is too long.\"}"},
		{"native", "nopending", 409, "", "{\"error\":\"no_pending_verification\",\"message\":\"There is no pending verification.\"}"},
		{"descope", "nopending", 409, "", "{\"error\":\"no_pending_verification\",\"errorCode\":\"E062108\",\"errorDescription\":\"There is no pending verification.\",\"errorMessage\":\"There is no pending verification.\",\"message\":\"There is no pending verification.\"}"},
		{"reachfive", "nopending", 409, "", "{\"error\":\"no_pending_verification\",\"error_description\":\"There is no pending verification.\",\"error_id\":\"ID\",\"error_message_key\":\"error.noPendingVerification\",\"error_user_msg\":\"There is no pending verification.\",\"message\":\"There is no pending verification.\"}"},
		{"native", "expired", 410, "", "{\"error\":\"code_expired\",\"message\":\"The code has expired; ask for a new one.\"}"},
		{"descope", "expired", 410, "", "{\"error\":\"code_expired\",\"errorCode\":\"E011001\",\"errorDescription\":\"The code has expired; ask for a new one.\",\"errorMessage\":\"The code has expired; ask for a new one.\",\"message\":\"The code has expired; ask for a new one.\"}"},
		{"reachfive", "expired", 410, "", "{\"error\":\"code_expired\",\"error_description\":\"The code has expired; ask for a new one.\",\"error_id\":\"ID\",\"error_message_key\":\"error.codeExpired\",\"error_user_msg\":\"The code has expired; ask for a new one.\",\"message\":\"The code has expired; ask for a new one.\"}"},
		{"native", "toomany", 429, "", "{\"error\":\"too_many_attempts\",\"message\":\"Too many wrong codes; start again with a new update.\"}"},
		{"descope", "toomany", 429, "", "{\"error\":\"too_many_attempts\",\"errorCode\":\"E061103\",\"errorDescription\":\"Too many wrong codes; start again with a new update.\",\"errorMessage\":\"Too many wrong codes; start again with a new update.\",\"message\":\"Too many wrong codes; start again with a new update.\"}"},
		{"reachfive", "toomany", 429, "", "{\"error\":\"too_many_attempts\",\"error_description\":\"Too many wrong codes; start again with a new update.\",\"error_id\":\"ID\",\"error_message_key\":\"error.tooManyAttempts\",\"error_user_msg\":\"Too many wrong codes; start again with a new update.\",\"message\":\"Too many wrong codes; start again with a new update.\"}"},
		{"native", "limited", 429, "3", "{\"error\":\"rate_limited\",\"message\":\"Too many requests; try again later.\",\"retry_after\":3}"},
		{"descope", "limited", 429, "3", "{\"error\":\"rate_limited\",\"errorCode\":\"E130429\",\"errorDescription\":\"Too many requests; try again later.\",\"errorMessage\":\"Too many requests; try again later.\",\"message\":\"Too many requests; try again later.\",\"retry_after\":3}"},
		{"reachfive", "limited", 429, "3", "{\"error\":\"rate_limited\",\"error_description\":\"Too many requests; try again later.\",\"error_id\":\"ID\",\"error_message_key\":\"error.rateLimited\",\"error_user_msg\":\"Too many requests; try again later.\",\"message\":\"Too many requests; try again later.\",\"retry_after\":3}"},
		{"native", "inuse", 409, "", "{\"error\":\"phone_number_in_use\",\"message\":\"This phone number is already in use by another account.\"}"},
		{"descope", "inuse", 409, "", "{\"error\":\"phone_number_in_use\",\"errorCode\":\"E011001\",\"errorDescription\":\"This phone number is already in use by another account.\",\"errorMessage\":\"This phone number is already in use by another account.\",\"message\":\"This phone number is already in use by another account.\"}"},
		{"reachfive", "inuse", 409, "", "{\"error\":\"phone_number_in_use\",\"error_description\":\"This phone number is already in use by another account.\",\"error_id\":\"ID\",\"error_message_key\":\"error.phoneNumberInUse\",\"error_user_msg\":\"This phone number is already in use by another account.\",\"message\":\"This phone number is already in use by another account.\"}"},
		{"clerk", "inuse", 422, "", "{\"error\":\"phone_number_in_use\",\"errors\":[{\"code\":\"form_identifier_exists\",\"message\":\"This phone number is already in use by another account.\",\"long_message\":\"This phone number is already in use by another account.\",\"meta\":{\"param_name\":\"phone_number\"}}],\"message\":\"This phone number is already in use by another account.\"}"},
		{"native", "delivery", 502, "", "{\"error\":\"sms_delivery_failed\",\"message\":\"The code could not be sent; try again.\"}"},
		{"descope", "delivery", 502, "", "{\"error\":\"sms_delivery_failed\",\"errorCode\":\"E011001\",\"errorDescription\":\"The code could not be sent; try again.\",\"errorMessage\":\"The code could not be sent; try again.\",\"message\":\"The code could not be sent; try again.\"}"},
		{"reachfive", "delivery", 502, "", "{\"error\":\"sms_delivery_failed\",\"error_description\":\"The code could not be sent; try again.\",\"error_id\":\"ID\",\"error_message_key\":\"error.smsDeliveryFailed\",\"error_user_msg\":\"The code could not be sent; try again.\",\"message\":\"The code could not be sent; try again.\"}"},
		{"native", "unavailable", 503, "5", "{\"error\":\"store_unavailable\",\"message\":\"The user store is unavailable; try again shortly.\"}"},
		{"descope", "unavailable", 503, "5", "{\"error\":\"store_unavailable\",\"errorCode\":\"E011001\",\"errorDescription\":\"The user store is unavailable; try again shortly.\",\"errorMessage\":\"The user store is unavailable; try again shortly.\",\"message\":\"The user store is unavailable; try again shortly.\"}"},
		{"reachfive", "unavailable", 503, "5", "{\"error\":\"store_unavailable\",\"error_description\":\"The user store is unavailable; try again shortly.\",\"error_id\":\"ID\",\"error_message_key\":\"error.storeUnavailable\",\"error_user_msg\":\"The user store is unavailable; try again shortly.\",\"message\":\"The user store is unavailable; try again shortly.\"}"},
		{"clerk", "unavailable", 503, "5", "{\"error\":\"store_unavailable\",\"errors\":[{\"code\":\"store_unavailable\",\"message\":\"The user store is unavailable; try again shortly.\",\"long_message\":\"The user store is unavailable; try again shortly.\",\"meta\":{}}],\"message\":\"The user store is unavailable; try again shortly.\"}"},
		{"native", "boom", 500, "", "{\"error\":\"internal_error\",\"message\":\"Something went wrong.\"}"},
		{"descope", "boom", 500, "", "{\"error\":\"internal_error\",\"errorCode\":\"E011001\",\"errorDescription\":\"Something went wrong.\",\"errorMessage\":\"Something went wrong.\",\"message\":\"Something went wrong.\"}"},
		{"reachfive", "boom", 500, "", "{\"error\":\"internal_error\",\"error_description\":\"Something went wrong.\",\"error_id\":\"ID\",\"error_message_key\":\"error.internalError\",\"error_user_msg\":\"Something went wrong.\",\"message\":\"Something went wrong.\"}"},
		{"clerk", "boom", 500, "", "{\"error\":\"internal_error\",\"errors\":[{\"code\":\"internal_error\",\"message\":\"Something went wrong.\",\"long_message\":\"Something went wrong.\",\"meta\":{}}],\"message\":\"Something went wrong.\"}"},
		{"clerk", "notfound", 404, "", "{\"error\":\"not_found\",\"errors\":[{\"code\":\"resource_not_found\",\"message\":\"No phone number has this ID.\",\"long_message\":\"No phone number has this ID.\",\"meta\":{}}],\"message\":\"No phone number has this ID.\"}"},
		{"clerk", "exists", 422, "", "{\"error\":\"phone_number_in_use\",\"errors\":[{\"code\":\"form_identifier_exists\",\"message\":\"This user already has this phone number.\",\"long_message\":\"This user already has this phone number.\",\"meta\":{\"param_name\":\"phone_number\"}}],\"message\":\"This user already has this phone number.\"}"},
		{"clerk", "notverified", 422, "", "{\"error\":\"phone_number_not_verified\",\"errors\":[{\"code\":\"phone_number_not_verified\",\"message\":\"Only a verified phone number can be reserved for second factor authentication.\",\"long_message\":\"Only a verified phone number can be reserved for second factor authentication.\",\"meta\":{\"param_name\":\"reserved_for_second_factor\"}}],\"message\":\"Only a verified phone number can be reserved for second factor authentication.\"}"},
		{"clerk", "keepprimary", 422, "", "{\"error\":\"invalid_request\",\"errors\":[{\"code\":\"form_param_format_invalid\",\"message\":\"A primary phone number stays primary until another number of the user is made primary.\",\"long_message\":\"A primary phone number stays primary until another number of the user is made primary.\",\"meta\":{\"param_name\":\"primary\"}}],\"message\":\"A primary phone number stays primary until another number of the user is made primary.\"}"},
		{"clerk", "notsupported", 501, "", "{\"error\":\"not_supported\",\"errors\":[{\"code\":\"not_supported\",\"message\":\"This user store keeps one phone number per user.\",\"long_message\":\"This user store keeps one phone number per user.\",\"meta\":{}}],\"message\":\"This user store keeps one phone number per user.\"}"},
	} {
		t.Run(c.dialect+"/"+c.err, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.writeError(rec, dialectsByName[c.dialect], renderErrors[c.err])
			h := rec.Header()
			if got := errorIDShown(t, c.dialect, rec); rec.Code != c.status || h.Get("Retry-After") != c.retryAfter || got != c.body {
				t.Fatalf("got %d Retry-After %q %s\nwant %d Retry-After %q %s", rec.Code, h.Get("Retry-After"), rec.Body,
					c.status, c.retryAfter, c.body)
			}
			if h.Get("Content-Type") != "application/json" || h.Get("Content-Length") != fmt.Sprint(rec.Body.Len()) {
				t.Fatalf("Content-Type %q, Content-Length %q for %d bytes", h.Get("Content-Type"), h.Get("Content-Length"), rec.Body.Len())
			}
		})
	}
}

// The refusals the HTTP layer decides itself carry their headers, and the
// dialects add their fields to them as to any error.
func TestRenderRequestErrors(t *testing.T) {
	p := &Phone{logger: zap.NewNop()}
	for _, c := range []struct {
		dialect, name    string
		err              error
		status           int
		challenge, allow string
		body             string
	}{
		{"descope", "reauth", errReauth(), 401, `Bearer realm="phone", error="invalid_token"`, "",
			`{"error":"reauthentication_required","errorCode":"E011001","errorDescription":"Sign in again to change your phone number.","errorMessage":"Sign in again to change your phone number.","message":"Sign in again to change your phone number."}`},
		{"descope", "missing", errMissing("loginId"), 400, "", "",
			`{"error":"invalid_request","errorCode":"E011002","errorDescription":"loginId is required.","errorMessage":"loginId is required.","message":"loginId is required."}`},
		{"native", "missing", errMissing("phone_number"), 400, "", "",
			`{"error":"invalid_request","message":"phone_number is required."}`},
		{"native", "no token", errBadToken(false), 401, `Bearer realm="phone"`, "",
			`{"error":"unauthorized","message":"A valid bearer token is required."}`},
		{"reachfive", "405", checkMethod(httptest.NewRequest("POST", "/x", nil), "GET"), 405, "", "GET, HEAD",
			`{"error":"method_not_allowed","error_description":"Use GET on this route.","error_id":"ID","error_message_key":"error.methodNotAllowed","error_user_msg":"Use GET on this route.","message":"Use GET on this route."}`},
		{"clerk", "401", errUnauthorized(false, "unauthorized", "A valid admin API key is required."), 401, `Bearer realm="phone"`, "",
			`{"error":"unauthorized","errors":[{"code":"authentication_invalid","message":"A valid admin API key is required.","long_message":"A valid admin API key is required.","meta":{}}],"message":"A valid admin API key is required."}`},
		{"clerk", "wrong type", errInvalid(`Field "verified" has the wrong type.`, "verified"), 422, "", "",
			`{"error":"invalid_request","errors":[{"code":"form_param_format_invalid","message":"Field \"verified\" has the wrong type.","long_message":"Field \"verified\" has the wrong type.","meta":{"param_name":"verified"}}],"message":"Field \"verified\" has the wrong type."}`},
		{"clerk", "missing", errMissing("user_id"), 422, "", "",
			`{"error":"invalid_request","errors":[{"code":"form_param_missing","message":"user_id is required.","long_message":"user_id is required.","meta":{"param_name":"user_id"}}],"message":"user_id is required."}`},
		{"clerk", "no param", errInvalid("A JSON body is required.", ""), 400, "", "",
			`{"error":"invalid_request","errors":[{"code":"invalid_request","message":"A JSON body is required.","long_message":"A JSON body is required.","meta":{}}],"message":"A JSON body is required."}`},
		{"native", "param not shown", errInvalid("phone_number is required.", "phone_number"), 400, "", "",
			`{"error":"invalid_request","message":"phone_number is required."}`},
		{"native", "require_verified", errPhoneNotVerified(), 403, "", "",
			`{"error":"phone_not_verified","message":"A verified phone number is required here."}`},
		{"clerk", "405", errMethod("GET, HEAD", "GET, HEAD"), 405, "", "GET, HEAD",
			`{"error":"method_not_allowed","errors":[{"code":"method_not_allowed","message":"Use GET, HEAD on this route.","long_message":"Use GET, HEAD on this route.","meta":{}}],"message":"Use GET, HEAD on this route."}`},
	} {
		t.Run(c.dialect+"/"+c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.writeError(rec, dialectsByName[c.dialect], c.err)
			h := rec.Header()
			if rec.Code != c.status || h.Get("WWW-Authenticate") != c.challenge || h.Get("Allow") != c.allow ||
				h.Get("Retry-After") != "" || errorIDShown(t, c.dialect, rec) != c.body {
				t.Fatalf("got %d WWW-Authenticate %q Allow %q %s", rec.Code, h.Get("WWW-Authenticate"), h.Get("Allow"), rec.Body)
			}
		})
	}
}

// What an operator must hear of is logged, at its level; a client's
// mistake is not; nothing logged carries more than the error.
func TestRenderLogs(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	p := &Phone{logger: zap.New(core)}
	for _, name := range []string{"code", "limited", "invalid", "notfound", "delivery", "unavailable", "boom"} {
		p.writeError(httptest.NewRecorder(), native{}, renderErrors[name])
	}
	p.writeError(httptest.NewRecorder(), native{}, errBadToken(true))
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message+": "+e.ContextMap()["error"].(string))
	}
	want := []string{"warn sms delivery failed: " + renderErrors["delivery"].Error(),
		"error user store unavailable: " + renderErrors["unavailable"].Error(), "error phone request failed: boom"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("logged %q\nwant %q", got, want)
	}
}

// errorCode (the metrics' result label) is the code the error is answered with.
func TestErrorCode(t *testing.T) {
	for name, want := range map[string]string{"code": "invalid_code", "limited": "rate_limited", "boom": "internal_error",
		"unavailable": "store_unavailable", "exists": "phone_number_in_use"} {
		if got := errorCode(renderErrors[name]); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
