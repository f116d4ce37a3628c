package sms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const vonageAppID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"

// vonageAccepted is the Messages API's 202 answer; vonageCallCreated the
// Voice API's 201.
const (
	vonageAccepted    = `{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}`
	vonageCallCreated = `{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","status":"started","direction":"outbound","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}`
)

var (
	vonageKeyOnce sync.Once
	vonageRSA     *rsa.PrivateKey
	vonagePEM     []byte
)

// testVonageKey is an application key, made once (RSA is slow), as PKCS #8
// PEM: what the Vonage dashboard hands out.
func testVonageKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	vonageKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		vonageRSA, vonagePEM = k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	})
	return vonageRSA, vonagePEM
}

// checkVonageJWT checks a Bearer token as Vonage does: RS256 signed by the
// application's key, with application_id, iat, exp and a jti.
func checkVonageJWT(t *testing.T, header string) {
	t.Helper()
	key, _ := testVonageKey(t)
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		t.Fatalf("Authorization %q: want a Bearer token", header)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil || !tok.Valid {
		t.Fatalf("JWT: %v", err)
	}
	if claims["application_id"] != vonageAppID {
		t.Errorf("application_id %v", claims["application_id"])
	}
	if jti, _ := claims["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %v", claims["jti"])
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat == nil || exp == nil || time.Since(iat.Time) > time.Minute || exp.Sub(iat.Time) > 15*time.Minute {
		t.Errorf("iat %v exp %v", iat, exp)
	}
}

func checkJSONRequest(t *testing.T, r apiRequest, path, want string) {
	t.Helper()
	if r.method != http.MethodPost || r.path != path || r.query != "" {
		t.Errorf("request %s %s?%s, want POST %s", r.method, r.path, r.query, path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
}

func TestVonageWhatsAppText(t *testing.T) {
	api := newFakeAPI(t, http.StatusAccepted, vonageAccepted)
	p, err := NewVonage(VonageConfig{APIKey: vonageKey, APISecret: vonageSecret, WhatsAppFrom: "+15550002222", BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), whatsAppMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkJSONRequest(t, r, "/v1/messages",
		`{"message_type":"text","text":"Your Acme code is 482913. It expires in 10 min.","to":"33612345678","from":"15550002222","channel":"whatsapp","client_ref":"msg_1"}`)
	if got, want := r.header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte(vonageKey+":"+vonageSecret)); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if Carries(p, ChannelSMS) || Carries(p, ChannelVoice) {
		t.Error("a WhatsApp-only Vonage carries sms or voice")
	}
}

// whatsapp_template sends the approved template, the code its parameter;
// without an API key the application's JWT authenticates.
func TestVonageWhatsAppTemplateWithJWT(t *testing.T) {
	_, keyPEM := testVonageKey(t)
	api := newFakeAPI(t, http.StatusAccepted, vonageAccepted)
	p, err := NewVonage(VonageConfig{WhatsAppFrom: "15550002222", WhatsAppTemplate: "acme_otp",
		ApplicationID: vonageAppID, PrivateKeyPEM: keyPEM, BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := whatsAppMessage()
	m.Locale = "fr-CA"
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := api.only(t)
	checkJSONRequest(t, r, "/v1/messages",
		`{"message_type":"template","template":{"name":"acme_otp","parameters":["482913"]},"whatsapp":{"policy":"deterministic","locale":"fr_CA"},"to":"33612345678","from":"15550002222","channel":"whatsapp","client_ref":"msg_1"}`)
	checkVonageJWT(t, r.header.Get("Authorization"))
}

// Voice places a call with a talk NCCO read twice, signed by the
// application's JWT; an alphanumeric sender lets Vonage pick the caller.
func TestVonageVoice(t *testing.T) {
	_, keyPEM := testVonageKey(t)
	for _, tt := range []struct {
		from, wantFrom string
	}{
		{"+15550001111", `"from":{"type":"phone","number":"15550001111"}`},
		{"Acme", `"random_from_number":true`},
	} {
		api := newFakeAPI(t, http.StatusCreated, vonageCallCreated)
		p, err := NewVonage(VonageConfig{APIKey: vonageKey, APISecret: vonageSecret, From: tt.from,
			ApplicationID: vonageAppID, PrivateKeyPEM: keyPEM, BaseURL: api.srv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := testMessage()
		m.Channel, m.Locale, m.Body = ChannelVoice, "de", "Ihr Acme-Code ist 4, 8, 2, 9, 1, 3."
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		r := api.only(t)
		checkJSONRequest(t, r, "/v1/calls", `{"to":[{"type":"phone","number":"33612345678"}],`+tt.wantFrom+
			`,"ncco":[{"action":"talk","text":"Ihr Acme-Code ist 4, 8, 2, 9, 1, 3.","language":"de-DE","loop":2}]}`)
		checkVonageJWT(t, r.header.Get("Authorization"))
		if !Carries(p, ChannelSMS) || Carries(p, ChannelWhatsApp) || !Carries(p, ChannelVoice) {
			t.Error("channels carried")
		}
	}
}

func TestVonageChannelErrors(t *testing.T) {
	_, keyPEM := testVonageKey(t)
	api := newFakeAPI(t, http.StatusUnauthorized, `{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized","detail":"You did not provide correct credentials for +33612345678"}`)
	p, err := NewVonage(VonageConfig{APIKey: vonageKey, APISecret: vonageSecret, WhatsAppFrom: "15550002222",
		ApplicationID: vonageAppID, PrivateKeyPEM: keyPEM, BaseURL: api.srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Send(context.Background(), whatsAppMessage())
	assertFails(t, err, "vonage: status 401")
	assertSecretsKept(t, err, vonageSecret, "33612345678", "credentials")
	m := testMessage()
	m.Channel = ChannelVoice
	assertFails(t, p.Send(context.Background(), m), "vonage: status 401")
	m.Channel = ChannelSMS // no from: not carried, nothing sent
	assertFails(t, p.Send(context.Background(), m), "vonage: no sms sender")
	if api.count() != 2 {
		t.Errorf("%d requests, want 2", api.count())
	}

	for _, tt := range []struct {
		cfg  VonageConfig
		want string
	}{
		{VonageConfig{ApplicationID: vonageAppID}, "sms vonage: application_id and private_key_file go together"},
		{VonageConfig{APIKey: "k", APISecret: "s", From: "Acme", PrivateKeyPEM: keyPEM}, "sms vonage: application_id and private_key_file go together"},
		{VonageConfig{ApplicationID: vonageAppID, PrivateKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")},
			"sms vonage: private_key_file: not an RSA private key in PEM"},
		{VonageConfig{WhatsAppFrom: "15550002222"}, "sms vonage: api_key is required"},
		{VonageConfig{APIKey: "k", APISecret: "s", WhatsAppFrom: "Acme"}, "sms vonage: whatsapp_from must be a phone number"},
		{VonageConfig{APIKey: "k", APISecret: "s", From: "Acme", WhatsAppTemplate: "t"}, "sms vonage: whatsapp_template needs whatsapp_from"},
	} {
		if _, err := NewVonage(tt.cfg, nil); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	// Voice alone needs no API key.
	if p, err := NewVonage(VonageConfig{ApplicationID: vonageAppID, PrivateKeyPEM: keyPEM}, nil); err != nil || !Carries(p, ChannelVoice) || Carries(p, ChannelSMS) {
		t.Errorf("voice only: %v", err)
	}
}
