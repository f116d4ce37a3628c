package sms

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiRequest is what a fake provider API received.
type apiRequest struct {
	method, path, query string
	header              http.Header
	body                string
}

// fakeAPI is a provider's API on 127.0.0.1: it records each request and
// answers status and body.
type fakeAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []apiRequest
	status int
	answer string
}

func newFakeAPI(t *testing.T, status int, answer string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{status: status, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, apiRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)})
		status, answer := f.status, f.answer
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// set changes what the API answers from now on.
func (f *fakeAPI) set(status int, answer string) {
	f.mu.Lock()
	f.status, f.answer = status, answer
	f.mu.Unlock()
}

// only returns the one request received, failing unless there was exactly one.
func (f *fakeAPI) only(t *testing.T) apiRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 1 {
		t.Fatalf("%d requests, want 1", len(f.got))
	}
	return f.got[0]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// hangingAPI never answers until the client gives up or the test ends.
func hangingAPI(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client hanging up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}

// assertSecretsKept checks an error names none of the message (body,
// code, number) and none of the secrets.
func assertSecretsKept(t *testing.T, err error, secrets ...string) {
	t.Helper()
	assertNoLeak(t, err)
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %q", s, err)
		}
	}
	if strings.Contains(err.Error(), "33612345678") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error leaks the number or the URL: %q", err)
	}
}

// assertFails checks err is a delivery failure naming every part of want.
func assertFails(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrDeliveryFailed) {
		t.Fatalf("err = %v, want ErrDeliveryFailed", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestDefaultClientBoundsEachCall(t *testing.T) {
	tw, _ := NewTwilio(TwilioConfig{AccountSID: "AC1", AuthToken: "t", From: "+15550001111"}, nil)
	vg, _ := NewVonage(VonageConfig{APIKey: "k", APISecret: "s", From: "Acme"}, nil)
	mb, _ := NewMessageBird(MessageBirdConfig{AccessKey: "k", Originator: "Acme"}, nil)
	for name, c := range map[string]*http.Client{"twilio": tw.(*twilio).client, "vonage": vg.(*vonage).client, "messagebird": mb.(*messageBird).client} {
		if c.Timeout != 10*time.Second || c.CheckRedirect == nil {
			t.Errorf("%s: default client timeout %v, redirects checked %v", name, c.Timeout, c.CheckRedirect != nil)
		}
	}
	if tw.(*twilio).endpoint != "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json" ||
		vg.(*vonage).endpoint != "https://rest.nexmo.com/sms/json" ||
		mb.(*messageBird).endpoint != "https://rest.messagebird.com/messages" {
		t.Errorf("default endpoints: %s, %s, %s", tw.(*twilio).endpoint, vg.(*vonage).endpoint, mb.(*messageBird).endpoint)
	}
}

// Each provider fails (ErrDeliveryFailed) when the API does not answer
// within the client's timeout, and the error carries neither URL nor secret.
func TestProvidersTimeOut(t *testing.T) {
	srv := hangingAPI(t)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	tw, _ := NewTwilio(TwilioConfig{AccountSID: "AC1", AuthToken: "tw-token", From: "+15550001111", BaseURL: srv.URL}, client)
	vg, _ := NewVonage(VonageConfig{APIKey: "k", APISecret: "vg-secret", From: "Acme", BaseURL: srv.URL}, client)
	mb, _ := NewMessageBird(MessageBirdConfig{AccessKey: "mb-key", Originator: "Acme", BaseURL: srv.URL}, client)
	for _, p := range []Provider{tw, vg, mb} {
		start := time.Now()
		err := p.Send(context.Background(), testMessage())
		assertFails(t, err, p.Name()+": ")
		assertSecretsKept(t, err, "tw-token", "vg-secret", "mb-key")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: gave up after %v", p.Name(), d)
		}
	}
	// The request's own deadline bounds the call as well.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	assertFails(t, tw.Send(ctx, testMessage()), "twilio: ", "deadline")
}

func TestAPIURLOverride(t *testing.T) {
	for _, bad := range []string{"ftp://x", "127.0.0.1:80", "http://", "https://h/?q=1", "::"} {
		_, err := NewTwilio(TwilioConfig{AccountSID: "AC1", AuthToken: "t", From: "+1", BaseURL: bad}, nil)
		if err == nil || !strings.Contains(err.Error(), "sms twilio: api_url") {
			t.Errorf("api_url %q: err = %v", bad, err)
		}
	}
	p, err := NewVonage(VonageConfig{APIKey: "k", APISecret: "s", From: "Acme", BaseURL: "http://proxy:8080/nexmo/"}, nil)
	if err != nil || p.(*vonage).endpoint != "http://proxy:8080/nexmo/sms/json" {
		t.Errorf("proxy base: %v %v", err, p)
	}
}

func TestGSM7(t *testing.T) {
	for s, want := range map[string]bool{
		"Your Acme code is 482913. It expires in 10 min.":    true,
		"Votre code Acme est 482913. Il expire dans 10 min.": true,
		"Ihr Code für Acme: 482913 [gültig 10 min] ~ €5":     true,
		"Tu código es 482913":                                false, // ó is not in GSM 03.38
		"Ваш код 482913":                                     false,
		"code `482913`":                                      false,
		"代码 482913":                                          false,
	} {
		if got := isGSM7(s); got != want {
			t.Errorf("isGSM7(%q) = %v", s, got)
		}
	}
}

func TestSenderID(t *testing.T) {
	for in, want := range map[string]string{"+15550001111": "15550001111", "15550001111": "15550001111", "Acme": "Acme", "+Acme": "+Acme", "+": "+"} {
		if got := senderID(in); got != want {
			t.Errorf("senderID(%q) = %q, want %q", in, got, want)
		}
	}
}

// A failover chain of real providers: Twilio refuses, Vonage delivers.
func TestChainTwilioFailsVonageDelivers(t *testing.T) {
	twAPI := newFakeAPI(t, http.StatusBadRequest, `{"code":21408,"message":"Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +33612345678","more_info":"https://www.twilio.com/docs/errors/21408","status":400}`)
	vgAPI := newFakeAPI(t, http.StatusOK, `{"message-count":"1","messages":[{"to":"33612345678","message-id":"0C000000217B7F02","status":"0","remaining-balance":"15.53590000","message-price":"0.03330000","network":"20801"}]}`)
	tw, err := NewTwilio(TwilioConfig{AccountSID: "AC1", AuthToken: "tw-token", From: "+15550001111", BaseURL: twAPI.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vg, err := NewVonage(VonageConfig{APIKey: "k", APISecret: "vg-secret", From: "Acme", BaseURL: vgAPI.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	chain := NewChain(tw, vg)
	if err := chain.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if twAPI.count() != 1 || vgAPI.count() != 1 {
		t.Fatalf("twilio %d calls, vonage %d calls", twAPI.count(), vgAPI.count())
	}
	if text := vgAPI.only(t).body; !strings.Contains(text, "text=Your+Acme+code+is+482913") {
		t.Errorf("vonage got %s", text)
	}
	// Both down: the chain's error names both, and leaks nothing.
	vgAPI.set(http.StatusOK, `{"message-count":"1","messages":[{"status":"9","error-text":"Quota Exceeded - rejected"}]}`)
	err = chain.Send(context.Background(), testMessage())
	assertFails(t, err, "twilio: twilio: status 400, code 21408", "vonage: vonage: status 200, error 9")
	assertSecretsKept(t, err, "tw-token", "vg-secret", "Quota", "Permission")
}
