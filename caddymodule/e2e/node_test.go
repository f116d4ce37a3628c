package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The seed products' SDKs run unmodified in Node, from the harness in
// caddymodule/testdata/sdk (package.json pins them; `npm ci --prefix
// caddymodule/testdata/sdk` installs them).

// sdkDir is the Node harness directory.
func sdkDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// onCI is true when the environment says CI (CI=true, as CI services set it).
func onCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// needSDK returns the node binary, having checked that the npm packages
// named are installed. Without them the test fails on CI and is skipped
// elsewhere, with the command that fixes it.
func needSDK(t *testing.T, packages ...string) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if onCI() {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (CI is not set, so this is a skip)", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("the SDK tests need Node.js 20+ on PATH: %v", err)
		return ""
	}
	dir := sdkDir(t)
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			missing("npm package %s is not installed; run: npm ci --prefix caddymodule/testdata/sdk", p)
			return ""
		}
	}
	return node
}

// sdkResult is one line printed by a harness script.
type sdkResult struct {
	OK    bool           `json:"ok"`
	Code  int            `json:"code"`  // Descope: the HTTP status
	Data  map[string]any `json:"data"`  // the SDK's success value
	Error map[string]any `json:"error"` // the SDK's error object
	// ErrorName is the SDK's DescopeErrors key for Error's errorCode
	// (descope.mjs only; "" when none).
	ErrorName string `json:"errorName"`
	Thrown    string `json:"thrown"`
	Cause     string `json:"cause"`
	raw       string
}

// runSDK runs `node <script> <action> <params as JSON>` in the harness
// directory with extra environment variables ("K=V"), and decodes its
// result. A script that threw (not an API answer) fails the test.
func runSDK(t *testing.T, node, script, action string, params any, env ...string) sdkResult {
	t.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, action, string(p))
	cmd.Dir = sdkDir(t)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	line := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:] // the SDKs may log; the result is the last line
	}
	var res sdkResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("node %s %s: no result (%v, exit %v)\nstdout: %s\nstderr: %s", script, action, err, runErr, stdout.String(), stderr.String())
	}
	res.raw = line
	if res.Thrown != "" || runErr != nil {
		t.Fatalf("node %s %s: the SDK threw: %s (cause: %s)\nstderr: %s", script, action, res.Thrown, res.Cause, stderr.String())
	}
	return res
}

// caddyDataDir is the storage of loadTLS sites: Caddy's data directory
// under the XDG_DATA_HOME that TestMain sets.
func caddyDataDir() string { return filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy") }

// caddyRootCert is the root of Caddy's local CA (`tls internal`) in
// caddyDataDir: Node trusts it through NODE_EXTRA_CA_CERTS.
func caddyRootCert() string {
	return filepath.Join(caddyDataDir(), "pki", "authorities", "local", "root.crt")
}

// trustCaddyRoot waits until tlsBase serves a certificate that verifies
// against Caddy's local root (it is issued in the background after a
// load) and returns a client that trusts that root.
func trustCaddyRoot(t *testing.T) *http.Client {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(caddyRootCert())
		if err == nil && !pool.AppendCertsFromPEM(pem) {
			err = errors.New("no certificate in " + caddyRootCert())
		}
		if err == nil {
			conf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
			var conn *tls.Conn
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp",
				fmt.Sprintf("127.0.0.1:%d", httpsPort), conf)
			if err == nil {
				conn.Close()
				return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never served a certificate from Caddy's local CA: %v", tlsBase(), lastErr)
	return nil
}
