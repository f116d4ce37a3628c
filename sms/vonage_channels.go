package sms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// vonageWhatsApp is a Messages API request on the whatsapp channel: a
// text, or an approved template with the code as its one parameter.
type vonageWhatsApp struct {
	MessageType string           `json:"message_type"` // "text" or "template"
	Text        string           `json:"text,omitempty"`
	Template    *vonageTemplate  `json:"template,omitempty"`
	WhatsApp    *vonageWAOptions `json:"whatsapp,omitempty"`
	To          string           `json:"to"`
	From        string           `json:"from"`
	Channel     string           `json:"channel"`
	ClientRef   string           `json:"client_ref,omitempty"`
}

type vonageTemplate struct {
	Name       string   `json:"name"`
	Parameters []string `json:"parameters"`
}

type vonageWAOptions struct {
	Policy string `json:"policy"`
	Locale string `json:"locale"`
}

// sendWhatsApp POSTs {messages} the Messages API request: Basic auth with
// the API key and secret, or the application's JWT without them. 202
// Accepted means sent.
func (v *vonage) sendWhatsApp(ctx context.Context, m Message) error {
	if v.whatsappFrom == "" {
		return fmt.Errorf("%w: vonage: no whatsapp_from configured", ErrDeliveryFailed)
	}
	r := vonageWhatsApp{MessageType: "text", Text: m.Body, To: msisdn(m.To), From: v.whatsappFrom,
		Channel: ChannelWhatsApp, ClientRef: truncate(m.ID, 40)}
	if v.template != "" {
		r.MessageType, r.Text = "template", ""
		r.Template = &vonageTemplate{Name: v.template, Parameters: []string{m.Code}}
		r.WhatsApp = &vonageWAOptions{Policy: "deterministic", Locale: whatsAppLanguage(m.Locale)}
	}
	header := http.Header{}
	if v.apiKey != "" {
		req := http.Request{Header: header}
		req.SetBasicAuth(v.apiKey, v.apiSecret)
	} else {
		tok, err := v.jwt()
		if err != nil {
			return err
		}
		header.Set("Authorization", "Bearer "+tok)
	}
	return v.postJSON(ctx, v.messages, r, header)
}

// vonageCall is a Voice API call with its NCCO inline.
type vonageCall struct {
	To               []vonageEndpoint `json:"to"`
	From             *vonageEndpoint  `json:"from,omitempty"`
	RandomFromNumber bool             `json:"random_from_number,omitempty"`
	NCCO             []vonageTalk     `json:"ncco"`
}

type vonageEndpoint struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

// vonageTalk is the NCCO "talk" action: text-to-speech, loop times.
type vonageTalk struct {
	Action   string `json:"action"`
	Text     string `json:"text"`
	Language string `json:"language"`
	Loop     int    `json:"loop"`
}

// call POSTs {calls} a call whose NCCO reads the text twice in the
// message's language, with the application's JWT. 201 Created means the
// call is placed.
func (v *vonage) call(ctx context.Context, m Message) error {
	if v.key == nil {
		return fmt.Errorf("%w: vonage: no application_id and private_key_file configured", ErrDeliveryFailed)
	}
	r := vonageCall{
		To:   []vonageEndpoint{{Type: "phone", Number: msisdn(m.To)}},
		NCCO: []vonageTalk{{Action: "talk", Text: m.Body, Language: VoiceLanguage(m.Locale), Loop: 2}},
	}
	if isE164("+" + v.frm) {
		r.From = &vonageEndpoint{Type: "phone", Number: v.frm}
	} else {
		r.RandomFromNumber = true // an alphanumeric id cannot call
	}
	tok, err := v.jwt()
	if err != nil {
		return err
	}
	return v.postJSON(ctx, v.calls, r, http.Header{"Authorization": {"Bearer " + tok}})
}

// postJSON sends one JSON request to the Messages or Voice API; any 2xx
// answer means accepted. Their errors are RFC 7807 problems whose title
// and detail are never read: they may repeat the number.
func (v *vonage) postJSON(ctx context.Context, url string, body any, header http.Header) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: vonage: encoding request: %w", ErrDeliveryFailed, err)
	}
	status, _, err := apiCall{provider: "vonage", url: url, contentType: "application/json", body: b, header: header}.do(ctx, v.client)
	if err != nil {
		return err
	}
	if !is2xx(status) {
		return fmt.Errorf("%w: vonage: status %d", ErrDeliveryFailed, status)
	}
	return nil
}

// vonageJWTLife bounds a signed token: one per request, short-lived.
const vonageJWTLife = 5 * time.Minute

// jwt signs the application's token (RS256; application_id, iat, exp and
// a random jti), as Vonage's Voice and Messages APIs want it.
func (v *vonage) jwt() (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"application_id": v.appID,
		"iat":            now.Unix(),
		"exp":            now.Add(vonageJWTLife).Unix(),
		"jti":            hex.EncodeToString(jti[:]),
	}).SignedString(v.key)
	if err != nil {
		return "", fmt.Errorf("%w: vonage: signing the application JWT: %w", ErrDeliveryFailed, err)
	}
	return tok, nil
}

// parseRSAKey reads an RSA private key in PEM (PKCS #1 or PKCS #8), as
// the Vonage dashboard hands it out.
func parseRSAKey(pem []byte) (*rsa.PrivateKey, error) {
	key, err := jwt.ParseRSAPrivateKeyFromPEM(pem)
	if err != nil {
		return nil, errors.New("not an RSA private key in PEM")
	}
	return key, nil
}
