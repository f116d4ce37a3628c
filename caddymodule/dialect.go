package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// dialect is one shape of the API: ours under the prefix (native.go), a
// vendor SDK's (descope.go, reachfive.go) or Clerk's admin endpoints
// (clerk.go). Each owns its routes and its request decoding, and states
// errors its own way; writeError (render.go) is the one way in which an
// error reaches HTTP. A dialect value wraps a pointer, so passing one
// around allocates nothing.
type dialect interface {
	// serve answers a request on one of the dialect's paths. It writes a
	// success itself and returns any error instead of writing it.
	serve(w http.ResponseWriter, r *http.Request) error
	// errorBody is the status and JSON body that state e in this dialect.
	errorBody(e *apiError) (status int, body any)
}

// dialectFor is the dialect that answers path, or nil: the request passes
// through. The user API and Clerk's endpoints answer everything under the
// prefix (404 for what they do not know); a vendor dialect only its routes.
func (p *Phone) dialectFor(path string) dialect {
	switch {
	case p.underPrefix(path):
		if p.Admin != nil && strings.HasPrefix(path, p.routeAdmin) {
			return clerk{p}
		}
		return native{p}
	}
	for _, v := range p.vendors {
		if strings.HasPrefix(path, v.prefix) {
			if _, ok := v.routeKey(path); ok {
				return v.dialect
			}
		}
	}
	return nil
}

// routeKey is the key in v.routes of the route that answers path: path
// itself, or what v.match makes of it for a vendor whose paths hold
// variables.
func (v *vendorDialect) routeKey(path string) (string, bool) {
	if v.match != nil {
		return v.match(path)
	}
	_, ok := v.routes[path]
	return path, ok
}

// vendorDialect is a vendor SDK's dialect, turned on by `compat <name>`.
// Each registers itself from its own file (descope.go, reachfive.go), so a
// new vendor touches no other file.
type vendorDialect struct {
	name   string
	prefix string           // where the SDK sends its calls
	routes map[string]route // by path (or by match's key); other paths under prefix pass through
	// match, for a vendor whose paths hold variables (kii.go's
	// /api/apps/{app}/users/{userID}/…), names the route of a path under
	// prefix, by its key in routes; nil: routes are keyed by exact path.
	match func(path string) (routeKey string, ok bool)
	// options returns a new value of the vendor's options (a pointer to
	// a struct with JSON tags) and the Caddyfile settings that fill it, for
	// `compat <name> { … }`; nil: the vendor takes no options.
	options func() (opts any, settings map[string]setting)
	// open makes the dialect for p with its options (the value options
	// returned, decoded from compat_options; nil without options),
	// refusing settings it cannot work with.
	open func(p *Phone, opts any) (dialect, error)
}

// activeVendor is a vendor dialect `compat` turned on, with its options.
type activeVendor struct {
	vendorDialect
	dialect dialect
}

// vendorDialects are the registered vendors, by name.
var vendorDialects = map[string]vendorDialect{}

func registerVendor(v vendorDialect) { vendorDialects[v.name] = v }

// vendorNames lists the vendors `compat` may name, for messages.
func vendorNames() string {
	return strings.Join(slices.Sorted(maps.Keys(vendorDialects)), ", ")
}

// route is one endpoint of a dialect that runs the user rules.
type route struct {
	method string // the one method it answers; GET answers HEAD too
	// open routes need no bearer token: the handler checks what it needs
	// itself, and id is nil.
	open bool
	// fresh marks an update: the sign-in must be younger than
	// max_auth_age (SPEC §4), ours and every vendor's twin alike.
	fresh  bool
	handle func(p *Phone, w http.ResponseWriter, r *http.Request, id *bearer.Identity) error
}

// serveRoute finds key in routes (404), checks the method (405), then the
// bearer token unless the route is open (401) and its age on an update,
// then runs the handler.
func (p *Phone) serveRoute(w http.ResponseWriter, r *http.Request, routes map[string]route, key string) error {
	rt, ok := routes[key]
	if !ok {
		return errNotFound()
	}
	if err := checkMethod(r, rt.method); err != nil {
		return err
	}
	var id *bearer.Identity
	if !rt.open {
		var err error
		if id, err = p.authenticate(r); err != nil {
			return err
		}
		if rt.fresh {
			if err := p.freshSignIn(id); err != nil {
				return err
			}
		}
	}
	return rt.handle(p, w, r, id)
}

// checkMethod refuses with 405 and Allow unless r uses method (HEAD counts
// as GET).
func checkMethod(r *http.Request, method string) error {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return nil
	}
	if method == http.MethodGet {
		return errMethod(method, "GET, HEAD")
	}
	return errMethod(method, method)
}

// authenticate checks the bearer token; every reason for a refusal shares
// one 401, and is logged at debug level only.
func (p *Phone) authenticate(r *http.Request) (*bearer.Identity, error) {
	id, err := p.verifier.Verify(r.Context(), r.Header.Get("Authorization"))
	if repl := replacer(r); repl != nil {
		setAuthUser(repl, id)
	}
	if err == nil {
		return id, nil
	}
	if ce := p.logger.Check(zapcore.DebugLevel, "bearer token refused"); ce != nil {
		ce.Write(zap.String("reason", err.Error()))
	}
	return nil, errBadToken(!errors.Is(err, bearer.ErrMissing))
}

// freshSignIn enforces max_auth_age (SPEC §4).
func (p *Phone) freshSignIn(id *bearer.Identity) error {
	if p.maxAge <= 0 {
		return nil
	}
	if signIn := id.SignInTime(); signIn.IsZero() || time.Since(signIn) > p.maxAge {
		return errReauth()
	}
	return nil
}

// update, verify and resend run the rules for every user dialect: they
// count the outcome and log a success; via names a vendor dialect in the
// log ("" for ours).
func (p *Phone) update(r *http.Request, req flow.UpdateRequest, via string) (flow.UpdateResult, error) {
	req.ClientIP = clientIP(r)
	res, err := p.service.Update(r.Context(), req)
	observe("update", err)
	if err == nil {
		p.logger.Info("phone update", zap.String("user_id", req.UserID), zap.String("status", res.Status),
			zap.String("to", numbers.Mask(res.SentTo)), zap.String("channel", res.Channel), viaField(via))
	}
	return res, err
}

func (p *Phone) verify(r *http.Request, req flow.VerifyRequest, via string) (store.User, error) {
	req.ClientIP = clientIP(r)
	u, err := p.service.Verify(r.Context(), req)
	observe("verify", err)
	if err == nil {
		p.logger.Info("phone verified", zap.String("user_id", req.UserID), zap.String("phone", numbers.Mask(u.PhoneNumber)),
			viaField(via))
	}
	return u, err
}

func (p *Phone) resend(r *http.Request, req flow.ResendRequest) (flow.ResendResult, error) {
	req.ClientIP = clientIP(r)
	res, err := p.service.Resend(r.Context(), req)
	observe("resend", err)
	return res, err
}

func viaField(via string) zap.Field {
	if via == "" {
		return zap.Skip()
	}
	return zap.String("via", via)
}

// maxBody bounds every JSON request body (SPEC §5: 413 above it).
const maxBody = 16 << 10

// decodeJSON reads r's body into v: at most maxBody bytes of valid UTF-8
// holding exactly one JSON object of known fields. An empty body is an
// error unless emptyOK (v is then left as it is). Every dialect decodes
// its bodies here; a field of the wrong type is named as the error's
// param.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return nil
		}
		return errInvalid("A JSON body is required.", "")
	}
	if !utf8.Valid(data) {
		return errInvalid("The body is not valid UTF-8.", "")
	}
	if f, ok := v.(flatFields); ok && decodeFlat(data, f) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		param := ""
		if errors.As(err, &typeErr) {
			param = typeErr.Field
		}
		return errInvalid(jsonProblem(err), param)
	}
	if dec.More() {
		return errInvalid("The body must hold one JSON object.", "")
	}
	return nil
}

// readBody reads the whole body, at most maxBody bytes (413 above). A
// body whose length the request states is read in one go, into a buffer
// of that size: io.ReadAll's growing buffer and its extra read for the
// end cost a refusal under a flood more than the decoding (issue 13).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= maxBody && r.Body != nil {
		data := make([]byte, n)
		if _, err := io.ReadFull(r.Body, data); err != nil {
			return nil, errInvalid("The body could not be read.", "")
		}
		return data, nil
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, errTooLarge()
	case err != nil:
		return nil, errInvalid("The body could not be read.", "")
	}
	return data, nil
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

func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

func replacer(r *http.Request) *caddy.Replacer {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return repl
}
