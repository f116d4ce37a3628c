package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newClient keeps up to conns connections open to one host.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
			Proxy: nil, // loopback only: never through a proxy
		},
	}
}

// loopback refuses any target but 127.0.0.1.
func loopback(target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Hostname() != "127.0.0.1" {
		return fmt.Errorf("refusing %q: phone-load only talks to 127.0.0.1", target)
	}
	return nil
}

// request is one kind of request of a flood.
type request struct {
	method, url, auth, body string
	want                    int
	// newNumber sends, instead of body, an update to a new French mobile
	// number each time (SMS pumping).
	newNumber bool
}

// pumpedNumbers numbers the bodies of newNumber requests.
var pumpedNumbers atomic.Int64

// pumpedBody is the update body of the nth pumped number.
func pumpedBody(n int64) string { return fmt.Sprintf(`{"phone_number":"+3361%07d"}`, n%10_000_000) }

func (r request) do(ctx context.Context, client *http.Client) (int, error) {
	if r.newNumber {
		r.body = pumpedBody(pumpedNumbers.Add(1))
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return 0, err
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// flood sends r from conns goroutines for d, or until limit requests,
// and returns how many were answered with r.want and how long it took.
func flood(ctx context.Context, client *http.Client, conns int, d time.Duration, limit int, r request) (int64, time.Duration, error) {
	if err := loopback(r.url); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var sent, ok, other atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil && sent.Add(1) <= int64(limit) {
				status, err := r.do(ctx, client)
				switch {
				case err != nil && ctx.Err() != nil:
					return
				case err != nil:
					firstErr.CompareAndSwap(nil, err)
					other.Add(1)
				case status == r.want:
					ok.Add(1)
				default:
					firstErr.CompareAndSwap(nil, fmt.Errorf("status %d, want %d", status, r.want))
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if n := other.Load(); n > 0 {
		return ok.Load(), took, fmt.Errorf("%s %s: %d unexpected answers, first: %v", r.method, r.url, n, firstErr.Load())
	}
	return ok.Load(), took, nil
}

// waitUp polls url until it answers at all.
func waitUp(ctx context.Context, target string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get(target)
		if err == nil {
			res.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var errTimeout = errors.New("timed out")

// cpuTime is the CPU time (user + system) a process has used so far,
// from /proc (Linux; zero elsewhere). Requests per CPU second of the
// Caddy child is the cost of a request that the load generator, sharing
// the machine, does not blur.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields are counted
	// from the closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
