package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// wrkScript makes wrk send r and count the answers whose status is not
// the one wanted; done prints the count for wrkFlood to check.
const wrkScript = `wrk.method = %q
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = %q
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
%s
function response(status, headers, body)
  if status ~= %d then bad = bad + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("bad") end
  io.write(string.format("phone-load-bad %%d\n", n))
end
`

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in`)
	wrkBad      = regexp.MustCompile(`(?m)^phone-load-bad (\d+)$`)
	wrkErrors   = regexp.MustCompile(`(?m)^\s*Socket errors: .*$`)
)

// wrkFlood is flood driven by wrk (-driver wrk; Debian's wrk package):
// one wrk thread, conns keep-alive connections, for d. It fails if any
// answer had another status than r.want or a socket error occurred.
func wrkFlood(ctx context.Context, dir string, conns int, d time.Duration, r request) (int64, time.Duration, error) {
	if err := loopback(r.url); err != nil {
		return 0, 0, err
	}
	script := filepath.Join(dir, "flood.lua")
	perRequest := ""
	if r.newNumber { // the body pumpedBody writes, a new number each time
		perRequest = `local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format('{"phone_number":"+3361%07d"}', n % 10000000))
end`
	}
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, r.method, r.body, r.auth, perRequest, r.want), 0o600); err != nil {
		return 0, 0, err
	}
	secs := strconv.Itoa(max(1, int(d/time.Second)))
	cmd := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+secs+"s", "-s", script, r.url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("wrk: %w: %s", err, out.String())
	}
	took := time.Since(start)
	m := wrkRequests.FindSubmatch(out.Bytes())
	b := wrkBad.FindSubmatch(out.Bytes())
	if m == nil || b == nil {
		return 0, 0, fmt.Errorf("wrk: unexpected output: %s", out.String())
	}
	if e := wrkErrors.Find(out.Bytes()); e != nil {
		return 0, 0, fmt.Errorf("wrk: %s", e)
	}
	if string(b[1]) != "0" {
		return 0, 0, fmt.Errorf("wrk: %s answers were not %d", b[1], r.want)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n, took, nil
}
