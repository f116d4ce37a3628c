package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The signed JSON POST (SPEC §8) that the webhook provider sends each
// message with and the events dispatcher (caddymodule/events) each event:
// one wire format, written here once.

// SignatureHeader carries the HMAC of a signed body (SPEC §8).
const SignatureHeader = "X-Phone-Signature"

// maxDrain bounds how much of a peer's answer is read (and discarded) so
// the connection can be reused without trusting the peer's size.
const maxDrain = 64 << 10

// ErrInvalidSignature: a signature header is malformed, stale or wrong.
var ErrInvalidSignature = errors.New("invalid signature")

// NoRedirectClient returns a client bounded by timeout that does not
// follow redirects: a redirected POST would be replayed or turned into a
// GET, and a peer that redirects is misconfigured, so its 3xx is the
// answer.
func NoRedirectClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// PostSigned POSTs body as JSON (User-Agent caddy-phone) to url, signed
// with secret in SignatureHeader (unsigned when secret is empty). It
// returns the answer's status and header; the answer's body is drained
// (64 KiB at most, so the connection can be reused) and closed. An error
// means no answer: a request that cannot be made, or the transport's
// cause, never with the URL (it may hold credentials).
func PostSigned(ctx context.Context, client *http.Client, url string, secret, body []byte) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, errors.New("invalid request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-phone")
	if len(secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(secret, time.Now(), body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, stripURL(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// stripURL drops the *url.Error around a transport error: it repeats the
// URL, query tokens included.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
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
