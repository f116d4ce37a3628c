package sms

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultProviderTimeout bounds one call to a provider's API (twilio,
// vonage, messagebird) when no client is given: SPEC §8's 10 s.
const DefaultProviderTimeout = 10 * time.Second

// defaultClient is the client of a REST provider built without one: a 10 s
// timeout, and no redirects (a redirected POST would be replayed or turned
// into a GET; an API that redirects is misconfigured, so it is a failure).
func defaultClient(client *http.Client) *http.Client {
	if client != nil {
		return client
	}
	return NoRedirectClient(DefaultProviderTimeout)
}

// baseURL checks an api_url override (or returns def when it is empty)
// and drops its trailing slash so a path can be appended.
func baseURL(provider, override, def string) (string, error) {
	if override == "" {
		return def, nil
	}
	u, err := url.Parse(override)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		// The URL may hold credentials: do not echo it.
		return "", fmt.Errorf("sms %s: api_url must be an http:// or https:// URL without query", provider)
	}
	return strings.TrimRight(override, "/"), nil
}

// apiCall is one POST to a provider's API.
type apiCall struct {
	provider    string // "twilio", …: named in errors
	url         string
	contentType string
	body        []byte
	header      http.Header // auth and the like, added to the request
}

// do sends c and returns the status and up to maxDrain bytes of the answer
// (the rest is drained, so the connection can be reused). A transport
// error wraps ErrDeliveryFailed and carries neither the URL (it may hold
// an account id) nor any header.
func (c apiCall) do(ctx context.Context, client *http.Client) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.body))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: invalid request", ErrDeliveryFailed, c.provider)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", c.contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "caddy-phone")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrDeliveryFailed, c.provider, stripURL(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%w: %s: status %d, reading answer: %w", ErrDeliveryFailed, c.provider, resp.StatusCode, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.StatusCode, answer, nil
}

func is2xx(status int) bool { return status >= 200 && status <= 299 }

// msisdn is an E.164 number as Vonage and MessageBird write it: digits
// only, without the leading +.
func msisdn(e164 string) string { return strings.TrimPrefix(e164, "+") }

// senderID is a configured sender: a number loses its + (see msisdn), an
// alphanumeric sender id is kept as it is.
func senderID(s string) string {
	d := strings.TrimPrefix(s, "+")
	if d == "" || strings.Trim(d, "0123456789") != "" {
		return s
	}
	return d
}

// GSM 03.38: the basic table and the characters of its extension table.
// A body made of these goes out as plain text (160 characters a part);
// any other character needs UCS-2 ("unicode", 70 a part).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// isGSM7 reports whether s can be sent in the GSM 7-bit alphabet.
func isGSM7(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(gsm7Basic, r) && !strings.ContainsRune(gsm7Extension, r) {
			return false
		}
	}
	return true
}
