package caddymodule

import (
	"testing"
)

// The user API takes "channel" on update and resend, answers with it, and
// refuses a channel not enabled (422) or unknown (400) before sending.
func TestUserAPIChannels(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"channels":["sms","whatsapp"]`))
	u := compatUser(t, "u")
	tok := "Bearer " + h.tok(u)
	number := compatNumber()

	body := decoded(t, h.call("POST", "/phone/update", tok, `{"phone_number":"`+number+`","channel":"voice"}`), 422)
	if body["error"] != "channel_not_allowed" || body["message"] != "The voice channel is not enabled." {
		t.Fatalf("voice: %v", body)
	}
	body = decoded(t, h.call("POST", "/phone/update", tok, `{"phone_number":"`+number+`","channel":"carrier-pigeon"}`), 400)
	if body["error"] != "invalid_request" || body["message"] != "Invalid request: channel must be one of sms, whatsapp, voice." {
		t.Fatalf("unknown: %v", body)
	}
	decoded(t, h.call("POST", "/phone/update", tok, `{"phone_number":"`+number+`","channel":7}`), 400)
	if len(h.sink.msgs) != 0 {
		t.Fatalf("a refused channel sent %d messages", len(h.sink.msgs))
	}
	st := decoded(t, h.call("GET", "/phone", tok, ""), 200)
	if st["phone_number"] != nil {
		t.Fatalf("a refused channel stored the number: %v", st)
	}

	body = decoded(t, h.call("POST", "/phone/update", tok, `{"phone_number":"`+number+`","channel":"whatsapp"}`), 200)
	if body["channel"] != "whatsapp" || body["status"] != "updated" {
		t.Fatalf("update: %v", body)
	}
	first := h.sink.last(t, u)
	if first.Channel != "whatsapp" {
		t.Fatalf("message channel %q", first.Channel)
	}
	// Resend may switch the channel (after the cooldown, 60 s here: a
	// resend at once is refused, and so is a channel not enabled).
	decoded(t, h.call("POST", "/phone/resend", tok, `{"channel":"voice"}`), 422)
	body = decoded(t, h.call("POST", "/phone/resend", tok, `{"channel":"sms"}`), 429)
	if body["error"] != "rate_limited" {
		t.Fatalf("resend at once: %v", body)
	}
	if len(h.sink.msgs) != 1 {
		t.Fatalf("%d messages", len(h.sink.msgs))
	}
	body = decoded(t, h.call("POST", "/phone/verify", tok, `{"code":"`+first.Code+`"}`), 200)
	if body["verified"] != true {
		t.Fatalf("verify: %v", body)
	}
	// Unchanged: no code sent, channel null.
	body = decoded(t, h.call("POST", "/phone/update", tok, `{"phone_number":"`+number+`","channel":"whatsapp"}`), 200)
	if v, ok := body["channel"]; !ok || v != nil || body["status"] != "unchanged" {
		t.Fatalf("unchanged: %v", body)
	}
}

// Descope's voice and WhatsApp routes are its SMS routes on those
// channels; a channel not enabled is 422 there too.
func TestDescopeChannelRoutes(t *testing.T) {
	h := newCompatHandler(t, compatConfig(`,"channels":["sms","whatsapp"]`))
	u := compatUser(t, "u")
	number := compatNumber()
	rec := h.call("POST", "/v1/auth/otp/update/phone/voice", "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"`+number+`"}`)
	wantDescopeError(t, rec, 422, "channel_not_allowed", "E011001")
	rec = h.call("POST", "/v1/auth/otp/verify/voice", "Bearer P2abc", `{"loginId":"`+u+`","code":"123456"}`)
	wantDescopeError(t, rec, 422, "channel_not_allowed", "E011001")
	if len(h.sink.msgs) != 0 {
		t.Fatal("a refused channel sent a message")
	}

	body := decoded(t, h.call("POST", "/v1/auth/otp/update/phone/whatsapp", "Bearer P2abc:"+h.tok(u), `{"loginId":"`+u+`","phone":"`+number+`"}`), 200)
	if body["maskedPhone"] == nil {
		t.Fatalf("update: %v", body)
	}
	m := h.sink.last(t, u)
	if m.Channel != "whatsapp" {
		t.Fatalf("channel %q", m.Channel)
	}
	rec = h.call("POST", "/v1/auth/otp/verify/whatsapp", "Bearer P2abc", `{"loginId":"`+u+`","code":"`+wrongCode(m.Code)+`"}`)
	wantDescopeError(t, rec, 400, "invalid_code", "E061102")
	decoded(t, h.call("POST", "/v1/auth/otp/verify/whatsapp", "Bearer P2abc", `{"loginId":"`+u+`","code":"`+m.Code+`"}`), 200)
	st := decoded(t, h.call("GET", "/phone", "Bearer "+h.tok(u), ""), 200)
	if st["phone_number"] != number || st["verified"] != true {
		t.Fatalf("status %v", st)
	}
	// The project alone never opens the update route, whatever the channel.
	rec = h.call("POST", "/v1/auth/otp/update/phone/whatsapp", "Bearer P2abc", `{"loginId":"`+u+`","phone":"`+number+`"}`)
	wantDescopeError(t, rec, 401, "unauthorized", "E011001")
}
