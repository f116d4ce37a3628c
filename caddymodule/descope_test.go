package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
)

// compatConfig serves both SDK shapes; extra is spliced into the JSON.
func compatConfig(extra string) string {
	return `{"jwt":{"secret":"` + benchSecret + `","project_id":"P2abc"},"store":{"backend":"memory"},
	"sms":[{"provider":"log"}],"compat":["descope","reachfive"],"templates":{"fr":"Code {app} : {code}"}` + extra + `}`
}

// captureSink keeps every message sent.
type captureSink struct {
	mu   sync.Mutex
	msgs []sms.Message
}

func (s *captureSink) Send(_ context.Context, m sms.Message) error {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	return nil
}

// last is the last message sent to user.
func (s *captureSink) last(t *testing.T, user string) sms.Message {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.msgs) - 1; i >= 0; i-- {
		if s.msgs[i].UserID == user {
			return s.msgs[i]
		}
	}
	t.Fatalf("no SMS for %s", user)
	return sms.Message{}
}

func (s *captureSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// compatHandler is a provisioned handler whose SMS go to a captureSink.
type compatHandler struct {
	t      *testing.T
	p      *Phone
	sink   *captureSink
	nexted int // requests handed to next
}

func newCompatHandler(t *testing.T, cfg string) *compatHandler {
	t.Helper()
	h := &compatHandler{t: t, p: provisionPhone(t, cfg), sink: &captureSink{}}
	fc, err := h.p.rules()
	if err != nil {
		t.Fatal(err)
	}
	h.p.service, err = flow.New(fc, flow.Deps{Users: h.p.users, Cache: h.p.cache.cache, Sender: h.sink, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// call sends a request with Authorization auth ("" for none) and headers
// given as name, value pairs.
func (h *compatHandler) call(method, path, auth, body string, hdr ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	r := caddyRequest(method, path, body)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		h.nexted++
		w.WriteHeader(299)
		return nil
	})
	if err := h.p.ServeHTTP(rec, r, next); err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// tok mints a fresh HS256 token for user.
func (h *compatHandler) tok(user string) string {
	h.t.Helper()
	s, err := mintToken(benchSecret, user, "HS256", "", "", time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// compatNumber is a French mobile number no other test uses: the memory
// store is shared by the whole process, and a verified number is taken.
func compatNumber() string {
	return fmt.Sprintf("+3361%07d", (time.Now().UnixNano()/1000+numberSeq.Add(1))%10000000)
}

var numberSeq atomic.Int64

func compatUser(t *testing.T, name string) string {
	return fmt.Sprintf("%s-%s-%d", t.Name(), name, time.Now().UnixNano())
}

// decoded checks the status and returns the JSON body.
func decoded(t *testing.T, rec *httptest.ResponseRecorder, status int) map[string]any {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return body
}

// wantDescopeError checks an error answer in Descope's shape.
func wantDescopeError(t *testing.T, rec *httptest.ResponseRecorder, status int, code, descopeCode string) map[string]any {
	t.Helper()
	body := decoded(t, rec, status)
	msg, _ := body["message"].(string)
	if body["error"] != code || msg == "" || body["errorCode"] != descopeCode || body["errorDescription"] != msg || body["errorMessage"] != msg {
		t.Fatalf("want %s (%s) in Descope's shape, got %s", code, descopeCode, rec.Body)
	}
	if rec.Header().Get("Content-Length") != fmt.Sprint(rec.Body.Len()) {
		t.Fatalf("Content-Length %q for %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
	}
	return body
}

const (
	descopeUpdate = "/v1/auth/otp/update/phone/sms"
	descopeVerify = "/v1/auth/otp/verify/sms"
)

// The SDK's two calls: update with "<project_id>:<jwt>", then verify with
// the project alone; the number ends verified.
func TestDescopeUpdateThenVerify(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u, fr := compatUser(t, "u"), compatNumber()
	body := decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u),
		`{"loginId":"`+u+`","phone":"`+fr+`"}`), 200)
	if len(body) != 1 || body["maskedPhone"] != numbers.Mask(fr) {
		t.Fatalf("update body %v", body)
	}
	msg := h.sink.last(t, u)
	if msg.To != fr || msg.Purpose != "update" {
		t.Fatalf("sms %+v", msg)
	}
	body = decoded(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+u+`","code":"`+msg.Code+`"}`), 200)
	user, _ := body["user"].(map[string]any)
	if user["userId"] != u || user["phone"] != fr || user["verifiedPhone"] != true || body["firstSeen"] != false {
		t.Fatalf("verify body %v", body)
	}
	if strings.Contains(h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+u+`","code":"`+msg.Code+`"}`).Body.String(), msg.Code) {
		t.Fatal("a code in a response")
	}
	st := decoded(t, h.call("GET", "/phone", "Bearer "+h.tok(u), ""), 200)
	if st["phone_number"] != fr || st["verified"] != true {
		t.Fatalf("status %v", st)
	}
	// A verified number changed through Descope is held pending; the
	// answer is still 200 {"maskedPhone"} of the number the code went to.
	body = decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"+14155552671"}`), 200)
	if body["maskedPhone"] != "+1******2671" {
		t.Fatalf("pending update body %v", body)
	}
	st = decoded(t, h.call("GET", "/phone", "Bearer "+h.tok(u), ""), 200)
	if st["phone_number"] != fr || st["pending_phone_number"] != "+14155552671" {
		t.Fatalf("status %v", st)
	}
	// The same verified number again: unchanged, no SMS, its mask.
	n := h.sink.count()
	body = decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"`+fr+`"}`), 200)
	if body["maskedPhone"] != numbers.Mask(fr) || h.sink.count() != n {
		t.Fatalf("unchanged: %v, %d SMS", body, h.sink.count()-n)
	}
}

// templateOptions (any JSON values, stringified), providerId and locale
// reach the sender; templateId, mfa, addToLoginIDs and onMergeUseExisting
// are accepted.
func TestDescopeUpdateOptions(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u := compatUser(t, "u")
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"+33612345678",
		"addToLoginIDs":true,"onMergeUseExisting":false,"providerId":"backup","templateId":"t1","mfa":false,"locale":"fr-FR",
		"templateOptions":{"name":"Ann","count":5,"ok":true,"none":null,"obj":{"a": [1, 2]}}}`), 200)
	msg := h.sink.last(t, u)
	want := map[string]string{"name": "Ann", "count": "5", "ok": "true", "none": "", "obj": `{"a":[1,2]}`}
	if fmt.Sprint(msg.TemplateOptions) != fmt.Sprint(want) || msg.ProviderID != "backup" || msg.Locale != "fr" ||
		!strings.HasPrefix(msg.Body, "Code ") {
		t.Fatalf("sms %+v", msg)
	}
}

func TestDescopeErrors(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	u, other := compatUser(t, "u"), compatUser(t, "other")
	tok := h.tok(u)
	upd := func(login, phone string) string { return `{"loginId":"` + login + `","phone":"` + phone + `"}` }
	for _, c := range []struct {
		name, method, path, auth, body string
		status                         int
		code, descopeCode              string
	}{
		{"update without token", "POST", descopeUpdate, "", upd(u, "+33612345678"), 401, "unauthorized", "E011001"},
		{"update with the project only", "POST", descopeUpdate, "Bearer P2abc", upd(u, "+33612345678"), 401, "unauthorized", "E011001"},
		{"update with another project", "POST", descopeUpdate, "Bearer P2xyz:" + tok, upd(u, "+33612345678"), 401, "unauthorized", "E011001"},
		{"update for another loginId", "POST", descopeUpdate, "Bearer P2abc:" + tok, upd(other, "+33612345678"), 403, "forbidden", "E011001"},
		{"update without phone", "POST", descopeUpdate, "Bearer P2abc:" + tok, `{"loginId":"` + u + `"}`, 400, "invalid_request", "E011002"},
		{"update without loginId", "POST", descopeUpdate, "Bearer P2abc:" + tok, `{"phone":"+33612345678"}`, 400, "invalid_request", "E011002"},
		{"update with an unknown field", "POST", descopeUpdate, "Bearer P2abc:" + tok, `{"loginId":"` + u + `","phone":"+33612345678","x":1}`, 400, "invalid_request", "E011003"},
		{"update with a wrong type", "POST", descopeUpdate, "Bearer P2abc:" + tok, `{"loginId":"` + u + `","phone":5}`, 400, "invalid_request", "E011003"},
		{"update with a bad number", "POST", descopeUpdate, "Bearer P2abc:" + tok, upd(u, "+1"), 400, "invalid_phone_number", "E011003"},
		{"update body too large", "POST", descopeUpdate, "Bearer P2abc:" + tok, `{"loginId":"` + strings.Repeat("a", 17<<10) + `"}`, 413, "payload_too_large", "E011001"},
		{"update with GET", "GET", descopeUpdate, "Bearer P2abc:" + tok, "", 405, "method_not_allowed", "E011001"},
		{"verify without token", "POST", descopeVerify, "", `{"loginId":"` + u + `","code":"123456"}`, 401, "unauthorized", "E011001"},
		{"verify with another project", "POST", descopeVerify, "Bearer P2xyz", `{"loginId":"` + u + `","code":"123456"}`, 401, "unauthorized", "E011001"},
		{"verify with another user's token", "POST", descopeVerify, "Bearer P2abc:" + h.tok(other), `{"loginId":"` + u + `","code":"123456"}`, 403, "forbidden", "E011001"},
		{"verify without code", "POST", descopeVerify, "Bearer P2abc", `{"loginId":"` + u + `"}`, 400, "invalid_request", "E011002"},
		{"verify without loginId", "POST", descopeVerify, "Bearer P2abc", `{"code":"123456"}`, 400, "invalid_request", "E011002"},
		{"verify with a control character in loginId", "POST", descopeVerify, "Bearer P2abc", `{"loginId":"a\u0001b","code":"123456"}`, 400, "invalid_request", "E011003"},
		{"verify with nothing open", "POST", descopeVerify, "Bearer P2abc", `{"loginId":"` + u + `","code":"123456"}`, 409, "no_pending_verification", "E062108"},
		{"verify with PUT", "PUT", descopeVerify, "Bearer P2abc", "", 405, "method_not_allowed", "E011001"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := h.call(c.method, c.path, c.auth, c.body)
			wantDescopeError(t, rec, c.status, c.code, c.descopeCode)
			switch c.status {
			case 401:
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="phone"`) {
					t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
				}
			case 405:
				if rec.Header().Get("Allow") != "POST" {
					t.Fatalf("Allow %q", rec.Header().Get("Allow"))
				}
			}
		})
	}
	if h.sink.count() != 0 {
		t.Fatal("an SMS went out")
	}
}

// A wrong code is 400 invalid_code with attempts_left; the cooldown is 429
// with Retry-After kept; both in Descope's shape.
func TestDescopeCodeErrors(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"otp":{"max_attempts":2}`))
	u := compatUser(t, "u")
	update := func() *httptest.ResponseRecorder {
		return h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"+33612345678"}`)
	}
	decoded(t, update(), 200)
	code := h.sink.last(t, u).Code
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)

	body := wantDescopeError(t, update(), 429, "rate_limited", "E130429")
	if ra := update().Header().Get("Retry-After"); ra == "" || body["retry_after"] == nil {
		t.Fatalf("429 without Retry-After: %q %v", ra, body)
	}
	verify := func(c string) *httptest.ResponseRecorder {
		return h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+u+`","code":"`+c+`"}`)
	}
	body = wantDescopeError(t, verify(wrong), 400, "invalid_code", "E061102")
	if body["attempts_left"] != float64(1) {
		t.Fatalf("attempts_left %v", body)
	}
	wantDescopeError(t, verify(wrong), 400, "invalid_code", "E061102")
	wantDescopeError(t, verify(code), 429, "too_many_attempts", "E061103")
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// max_auth_age applies to the Descope update as to /phone/update.
func TestDescopeMaxAuthAge(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"jwt":{"secret":"`+benchSecret+`","project_id":"P2abc","max_auth_age":60000000000}`))
	u := compatUser(t, "u")
	old, err := mintToken(benchSecret, u, "HS256", "", "", time.Hour, time.Now().Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rec := h.call("POST", descopeUpdate, "Bearer P2abc:"+old, `{"loginId":"`+u+`","phone":"+33612345678"}`)
	wantDescopeError(t, rec, 401, "reauthentication_required", "E011001")
	if rec.Header().Get("WWW-Authenticate") != `Bearer realm="phone", error="invalid_token"` {
		t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
	}
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"+33612345678"}`), 200)
}

// Other Descope paths, and the Descope paths without `compat descope`,
// go to the next handler untouched.
func TestDescopePassThrough(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	for _, path := range []string{"/v1/auth/otp/signin/sms", "/v1/auth/otp/update/email", "/v1/auth/otp/verify/email", "/v1/auth/otp/update/phone/fax"} {
		if rec := h.call("POST", path, "Bearer P2abc", `{}`); rec.Code != 299 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	plain := newCompatHandler(t, `{"jwt":{"secret":"`+benchSecret+`","project_id":"P2abc"},"store":{"backend":"memory"},"sms":[{"provider":"log"}]}`)
	if rec := plain.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"x","code":"1"}`); rec.Code != 299 || plain.nexted != 1 {
		t.Fatalf("without compat: %d %s", rec.Code, rec.Body)
	}
}

// recordEvents keeps the events the rules emit.
type recordEvents struct {
	mu  sync.Mutex
	got []events.Event
}

func (r *recordEvents) Emit(_ context.Context, e events.Event) error {
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
	return nil
}

// addToLoginIDs and onMergeUseExisting of the Descope update travel to
// the phone.verified event of that change (SPEC §6, §8).
func TestDescopeFlagsReachEvents(t *testing.T) {
	h := newCompatHandler(t, compatConfig(""))
	rec := &recordEvents{}
	fc, err := h.p.rules()
	if err != nil {
		t.Fatal(err)
	}
	h.p.service, err = flow.New(fc, flow.Deps{Users: h.p.users, Cache: h.p.cache.cache, Sender: h.sink,
		Numbers: numbers.Policy{}, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	u, fr := compatUser(t, "u"), compatNumber()
	decoded(t, h.call("POST", descopeUpdate, "Bearer P2abc:"+h.tok(u),
		`{"loginId":"`+u+`","phone":"`+fr+`","addToLoginIDs":true,"onMergeUseExisting":false}`), 200)
	decoded(t, h.call("POST", descopeVerify, "Bearer P2abc", `{"loginId":"`+u+`","code":"`+h.sink.last(t, u).Code+`"}`), 200)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.got {
		if e.Type == events.TypeVerified && e.UserID == u {
			want := []events.Attr{{Name: "add_to_login_ids", Value: json.RawMessage(`true`)},
				{Name: "on_merge_use_existing", Value: json.RawMessage(`false`)}}
			if !reflect.DeepEqual(e.Attributes, want) {
				t.Fatalf("phone.verified attributes: %+v", e.Attributes)
			}
			b, err := json.Marshal(e)
			if err != nil || !strings.HasSuffix(string(b), `,"add_to_login_ids":true,"on_merge_use_existing":false}`) {
				t.Fatalf("phone.verified JSON: %s, %v", b, err)
			}
			return
		}
	}
	t.Fatalf("no phone.verified event in %+v", rec.got)
}
