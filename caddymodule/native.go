package caddymodule

import (
	"net/http"
	"strings"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
)

// native is our own API under the prefix (SPEC §4, §5).
type native struct{ p *Phone }

// nativeRoutes are the user API's routes, by their path below the prefix.
var nativeRoutes = map[string]route{
	"":         {method: http.MethodGet, handle: (*Phone).handleStatus},
	"/update":  {method: http.MethodPost, fresh: true, handle: (*Phone).handleUpdate},
	"/verify":  {method: http.MethodPost, handle: (*Phone).handleVerify},
	"/resend":  {method: http.MethodPost, handle: (*Phone).handleResend},
	"/pending": {method: http.MethodDelete, handle: (*Phone).handleCancel},
	// The static page (ui.go): no token needed.
	uiPath: {method: http.MethodGet, open: true, handle: func(_ *Phone, w http.ResponseWriter, r *http.Request, _ *bearer.Identity) error {
		serveUI(w, r)
		return nil
	}},
}

// serve routes first (404, 405), then authenticates (401), then reads the
// body (400, 413), then applies the rules.
func (n native) serve(w http.ResponseWriter, r *http.Request) error {
	rest, under := strings.CutPrefix(r.URL.Path, n.p.Prefix)
	if !under {
		return errNotFound()
	}
	return n.p.serveRoute(w, r, nativeRoutes, rest)
}

// errorBody is SPEC §5's body: {"error","message"} and the fields that go
// with them. The vendor dialects add theirs to it.
func (native) errorBody(e *apiError) (int, any) {
	return e.status, flatBody(nativePairs(make([]flatPair, 0, 2+len(e.fields)), e))
}

// appendErrorBody appends errorBody's JSON to b, building no value on the
// heap first (flatErrorBody): every refusal of a flood writes one.
func (native) appendErrorBody(b []byte, e *apiError) ([]byte, bool) {
	if len(e.fields) > maxErrorFields {
		return b, false
	}
	var pairs [2 + maxErrorFields]flatPair
	return appendFlatPairs(b, nativePairs(pairs[:0], e))
}

// maxErrorFields bounds the fields appendErrorBody takes; an error with
// more (none has) goes through errorBody.
const maxErrorFields = 4

// nativePairs appends to dst the pairs of our error body: error, message
// and the fields the error carries (which cannot replace those two).
func nativePairs(dst []flatPair, e *apiError) []flatPair {
	dst = append(dst, flatPair{k: "error", s: e.code}, flatPair{k: "message", s: e.message})
	for _, f := range e.fields {
		if f.k != "error" && f.k != "message" {
			dst = append(dst, f)
		}
	}
	return dst
}

// nativeErrorBody is errorBody as a map, which the vendor dialects add
// their fields to.
func nativeErrorBody(e *apiError) map[string]any {
	body := flatBody(e.fields).toMap()
	body["error"], body["message"] = e.code, e.message
	return body
}

// statusBody is GET /phone.
type statusBody struct {
	UserID           string  `json:"user_id"`
	PhoneNumber      *string `json:"phone_number"`
	Verified         bool    `json:"verified"`
	PendingNumber    *string `json:"pending_phone_number"`
	PendingExpiresAt *string `json:"pending_expires_at"`
}

func (p *Phone) handleStatus(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	st, err := p.service.Status(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	body := statusBody{UserID: id.UserID, PhoneNumber: nullable(st.User.PhoneNumber),
		Verified: st.User.Verified, PendingNumber: nullable(st.PendingNumber)}
	if !st.PendingExpiresAt.IsZero() {
		t := st.PendingExpiresAt.UTC().Format(time.RFC3339)
		body.PendingExpiresAt = &t
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type updateRequest struct {
	PhoneNumber     *string           `json:"phone_number"`
	Locale          string            `json:"locale"`
	TemplateOptions map[string]string `json:"template_options"`
	ProviderID      string            `json:"provider_id"`
	Channel         string            `json:"channel"`
}

func (*updateRequest) flatKnows(key string) bool {
	return key == "phone_number" || key == "locale" || key == "provider_id" || key == "channel"
}

func (r *updateRequest) setFlat(key, value string) {
	switch key {
	case "phone_number":
		r.PhoneNumber = &value
	case "locale":
		r.Locale = value
	case "provider_id":
		r.ProviderID = value
	case "channel":
		r.Channel = value
	}
}

type updateBody struct {
	Status        string  `json:"status"`
	PhoneNumber   *string `json:"phone_number"`
	Verified      bool    `json:"verified"`
	PendingNumber *string `json:"pending_phone_number"`
	MaskedPhone   *string `json:"masked_phone"`
	Channel       *string `json:"channel"` // how the code went; null when none was sent
	ExpiresIn     int     `json:"expires_in"`
	ResendAfter   int     `json:"resend_after"`
}

func (p *Phone) handleUpdate(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req updateRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.PhoneNumber == nil {
		return errInvalid("phone_number is required.", "phone_number")
	}
	res, err := p.update(r, flow.UpdateRequest{UserID: id.UserID, PhoneNumber: *req.PhoneNumber,
		Locale: req.Locale, TemplateOptions: req.TemplateOptions, ProviderID: req.ProviderID, Channel: req.Channel}, "")
	if err != nil {
		return err
	}
	status, body := updateAnswer(res)
	writeJSON(w, status, body)
	return nil
}

// updateAnswer is the status and body of a successful update: 202 for a
// pending change, 200 otherwise.
func updateAnswer(res flow.UpdateResult) (int, updateBody) {
	body := updateBody{Status: res.Status, PhoneNumber: nullable(res.User.PhoneNumber), Verified: res.User.Verified,
		PendingNumber: nullable(res.PendingNumber), ExpiresIn: seconds(res.ExpiresIn), ResendAfter: seconds(res.ResendAfter),
		Channel: nullable(res.Channel)}
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

func (*verifyRequest) flatKnows(key string) bool { return key == "code" || key == "phone_number" }

func (r *verifyRequest) setFlat(key, value string) {
	if key == "code" {
		r.Code = &value
	} else {
		r.PhoneNumber = value
	}
}

func (p *Phone) handleVerify(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req verifyRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.Code == nil || *req.Code == "" {
		return errInvalid("code is required.", "code")
	}
	u, err := p.verify(r, flow.VerifyRequest{UserID: id.UserID, Code: *req.Code, PhoneNumber: req.PhoneNumber}, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "verified", "phone_number": u.PhoneNumber, "verified": true})
	return nil
}

type resendRequest struct {
	Locale  string `json:"locale"`
	Channel string `json:"channel"` // switches the challenge's; "" keeps it
}

func (p *Phone) handleResend(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	var req resendRequest
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	res, err := p.resend(r, flow.ResendRequest{UserID: id.UserID, Locale: req.Locale, Channel: req.Channel})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sentBody(res))
	return nil
}

// sentBody is the answer to a resend.
func sentBody(res flow.ResendResult) map[string]any {
	return map[string]any{"status": "sent", "masked_phone": numbers.Mask(res.SentTo), "channel": res.Channel,
		"expires_in": seconds(res.ExpiresIn), "resend_after": seconds(res.ResendAfter)}
}

func (p *Phone) handleCancel(w http.ResponseWriter, r *http.Request, id *bearer.Identity) error {
	if err := p.service.Cancel(r.Context(), id.UserID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "canceled"})
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
