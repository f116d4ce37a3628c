package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the HMAC of a webhook body (SPEC §8).
const SignatureHeader = "X-Phone-Signature"

// DefaultWebhookTimeout bounds one webhook call when no client is given.
const DefaultWebhookTimeout = 10 * time.Second

// maxDrain bounds how much of a gateway's answer is read (and discarded) so
// the connection can be reused without trusting the peer's size.
const maxDrain = 64 << 10

// ErrInvalidSignature: a signature header is malformed, stale or wrong.
var ErrInvalidSignature = errors.New("invalid signature")

type webhook struct {
	name   string
	url    string
	secret []byte
	client *http.Client
}

// NewWebhook returns a provider that POSTs each Message as JSON to url,
// signed with secret in X-Phone-Signature (unsigned when secret is "").
// A nil client means one with a 10 s timeout that does not follow redirects.
func NewWebhook(name, url, secret string, client *http.Client) Provider {
	if name == "" {
		name = "webhook"
	}
	if client == nil {
		client = &http.Client{
			Timeout: DefaultWebhookTimeout,
			// A redirected POST would be replayed or turned into a GET; a
			// gateway that redirects is misconfigured, so treat it as a failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &webhook{name: name, url: url, secret: []byte(secret), client: client}
}

func (w *webhook) Name() string { return w.name }

// webhookBody fills the defaults SPEC §8 promises: every field present,
// template_options an object, locale "en".
func webhookBody(m Message) ([]byte, error) {
	if m.TemplateOptions == nil {
		m.TemplateOptions = map[string]string{}
	}
	m.Locale = localeOrDefault(m.Locale)
	return json.Marshal(m)
}

func (w *webhook) Send(ctx context.Context, m Message) error {
	body, err := webhookBody(m)
	if err != nil {
		return fmt.Errorf("%w: webhook: encoding message: %w", ErrDeliveryFailed, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		// The URL may hold credentials: do not echo it.
		return fmt.Errorf("%w: webhook: invalid request", ErrDeliveryFailed)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-phone")
	if len(w.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.secret, time.Now(), body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error repeats the URL (query tokens included); keep the cause only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%w: webhook: %w", ErrDeliveryFailed, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: webhook: status %d", ErrDeliveryFailed, resp.StatusCode)
	}
	return nil
}

// Sign returns the X-Phone-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifySignature checks a header made by Sign: its time must be within
// tolerance of now (either way) and one of its v1 values must match, so a
// sender may list several during a secret rotation. Errors wrap
// ErrInvalidSignature.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed header", ErrInvalidSignature)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: repeated timestamp", ErrInvalidSignature)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: malformed v1", ErrInvalidSignature)
			}
			sigs = append(sigs, sig)
		}
		// Other keys are ignored so a future scheme can be added alongside.
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: missing t or v1", ErrInvalidSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp outside tolerance", ErrInvalidSignature)
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching v1", ErrInvalidSignature)
}
