package sms

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type captured struct {
	method, contentType, signature string
	body                           []byte
}

// recorder is a gateway that records each request and answers status.
func recorder(t *testing.T, status int) (*httptest.Server, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{r.Method, r.Header.Get("Content-Type"), r.Header.Get(SignatureHeader), b})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

func testMessage() Message {
	return Message{
		ID:      "msg_1",
		To:      "+33612345678",
		Body:    "Your Acme code is 482913. It expires in 10 min.",
		Code:    "482913",
		Purpose: "update",
		UserID:  "user_42",
	}
}

func TestWebhookBodyAndSignature(t *testing.T) {
	srv, got := recorder(t, http.StatusOK)
	secret := "s3cret"
	p := NewWebhook("gw", srv.URL+"/send", secret, nil)
	if p.Name() != "gw" {
		t.Errorf("Name() = %q", p.Name())
	}
	before := time.Now()
	if err := p.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.contentType != "application/json" {
		t.Errorf("method %q, content type %q", r.method, r.contentType)
	}
	// All nine fields, locale defaulted, template_options an empty object,
	// channel sms when the message names none.
	want := `{"id":"msg_1","to":"+33612345678","body":"Your Acme code is 482913. It expires in 10 min.","code":"482913","locale":"en","purpose":"update","user_id":"user_42","template_options":{},"channel":"sms"}`
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	if err := VerifySignature([]byte(secret), r.signature, r.body, time.Now(), time.Minute); err != nil {
		t.Errorf("signature %q does not verify: %v", r.signature, err)
	}
	if !strings.HasPrefix(r.signature, "t=") || !strings.Contains(r.signature, ",v1=") {
		t.Errorf("signature header shape: %q", r.signature)
	}
	if r.signature != Sign([]byte(secret), before, r.body) && r.signature != Sign([]byte(secret), time.Now(), r.body) {
		t.Errorf("signature %q is not Sign's", r.signature)
	}
	if err := VerifySignature([]byte("other"), r.signature, r.body, time.Now(), time.Minute); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("wrong secret verified: %v", err)
	}
}

func TestWebhookKeepsLocaleAndOptions(t *testing.T) {
	srv, got := recorder(t, http.StatusAccepted)
	m := testMessage()
	m.Locale = "fr-CA"
	m.Purpose = "resend"
	m.TemplateOptions = map[string]string{"brand": "Acme <FR>"}
	m.ProviderID = "gw" // not part of the body
	m.Channel = ChannelVoice
	if err := NewWebhook("gw", srv.URL, "k", nil).Send(context.Background(), m); err != nil {
		t.Fatalf("202 should count as sent: %v", err)
	}
	want := `{"id":"msg_1","to":"+33612345678","body":"Your Acme code is 482913. It expires in 10 min.","code":"482913","locale":"fr-CA","purpose":"resend","user_id":"user_42","template_options":{"brand":"Acme \u003cFR\u003e"},"channel":"voice"}`
	if b := string(got()[0].body); b != want {
		t.Errorf("body\n got %s\nwant %s", b, want)
	}
}

func TestWebhookUnsignedWithoutSecret(t *testing.T) {
	srv, got := recorder(t, http.StatusOK)
	if err := NewWebhook("", srv.URL, "", nil).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if s := got()[0].signature; s != "" {
		t.Errorf("signature %q sent without a secret", s)
	}
	if n := NewWebhook("", srv.URL, "", nil).Name(); n != "webhook" {
		t.Errorf("default name %q", n)
	}
}

// assertNoLeak checks an error names neither the code nor the body.
func assertNoLeak(t *testing.T, err error) {
	t.Helper()
	m := testMessage()
	if s := err.Error(); strings.Contains(s, m.Code) || strings.Contains(s, m.Body) || strings.Contains(s, m.To) {
		t.Errorf("error leaks the message: %q", s)
	}
}

func TestWebhookNon2xxFails(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest, http.StatusFound, http.StatusNotModified} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if status == http.StatusFound {
				http.Redirect(w, r, "/elsewhere", status)
				return
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20)) // larger than we drain
		}))
		err := NewWebhook("gw", srv.URL, "k", nil).Send(context.Background(), testMessage())
		srv.Close()
		if !errors.Is(err, ErrDeliveryFailed) {
			t.Fatalf("status %d: err = %v, want ErrDeliveryFailed", status, err)
		}
		if !strings.Contains(err.Error(), "status "+strconv.Itoa(status)) {
			t.Errorf("status %d: error %q does not name the status", status, err)
		}
		assertNoLeak(t, err)
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	client := &http.Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	err := NewWebhook("slow", srv.URL, "k", client).Send(context.Background(), testMessage())
	if !errors.Is(err, ErrDeliveryFailed) {
		t.Fatalf("err = %v, want ErrDeliveryFailed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v despite a 100ms timeout", d)
	}
	assertNoLeak(t, err)

	// The caller's context bounds the call too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = NewWebhook("slow", srv.URL, "k", nil).Send(ctx, testMessage())
	if !errors.Is(err, ErrDeliveryFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrDeliveryFailed and DeadlineExceeded", err)
	}
}

func TestWebhookUnreachableHidesURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = NewWebhook("gw", "http://user:pw@"+addr+"/send?token=TOPSECRET", "k", nil).Send(context.Background(), testMessage())
	if !errors.Is(err, ErrDeliveryFailed) {
		t.Fatalf("err = %v", err)
	}
	if s := err.Error(); strings.Contains(s, "TOPSECRET") || strings.Contains(s, "pw") {
		t.Errorf("error leaks the URL: %q", s)
	}
	if err := NewWebhook("gw", "://bad", "k", nil).Send(context.Background(), testMessage()); !errors.Is(err, ErrDeliveryFailed) {
		t.Errorf("bad URL: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("k")
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	good := Sign(secret, now, body)
	// Known vector: HMAC-SHA256("k", `1700000000.{"a":1}`), computed independently.
	if good != "t=1700000000,v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3" {
		t.Fatalf("Sign = %q", good)
	}
	other := Sign([]byte("old"), now, body)
	_, otherV1, _ := strings.Cut(other, ",")
	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"valid", good, body, now, true},
		{"valid with spaces", strings.ReplaceAll(good, ",", ", "), body, now, true},
		{"within tolerance after", good, body, now.Add(4 * time.Minute), true},
		{"within tolerance before", good, body, now.Add(-4 * time.Minute), true},
		{"rotation: second v1 matches", "t=1700000000," + otherV1 + "," + strings.Split(good, ",")[1], body, now, true},
		{"unknown key ignored", good + ",v0=abc", body, now, true},
		{"stale", good, body, now.Add(6 * time.Minute), false},
		{"future", good, body, now.Add(-6 * time.Minute), false},
		{"tampered body", good, []byte(`{"a":2}`), now, false},
		{"wrong secret", other, body, now, false},
		{"tampered time", strings.Replace(good, "t=1700000000", "t=1700000001", 1), body, now, false},
		{"empty", "", body, now, false},
		{"no v1", "t=1700000000", body, now, false},
		{"no t", strings.Split(good, ",")[1], body, now, false},
		{"two t", "t=1700000000," + good, body, now, false},
		{"bad hex", "t=1700000000,v1=zz", body, now, false},
		{"short mac", "t=1700000000,v1=abcd", body, now, false},
		{"bad time", "t=abc,v1=" + hex.EncodeToString(mac(secret, "abc", body)), body, now, false},
		{"no equals", "garbage", body, now, false},
	}
	for _, tt := range tests {
		err := VerifySignature(secret, tt.header, tt.body, tt.now, 5*time.Minute)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("%s: err = %v, want ErrInvalidSignature", tt.name, err)
		}
	}
}
