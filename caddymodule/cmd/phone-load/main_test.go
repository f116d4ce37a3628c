package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as a Caddy child, as the tool does.
func TestMain(m *testing.M) {
	if path := os.Getenv("PHONE_LOAD_SERVE"); path != "" {
		if err := serve(path); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLoadToolRuns runs both scenarios at their smallest through real
// Caddy children: the floods get their 401s and 429s from both sides,
// and the flows complete (on PostgreSQL + Redis too when the test
// services are set).
func TestLoadToolRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	base := testPorts(0)
	o := options{scenario: "all", driver: "go", seconds: 1, rounds: 1, conns: 2, users: 2, maxRequests: 200,
		pg: os.Getenv("PHONE_TEST_POSTGRES_DSN"), redis: os.Getenv("PHONE_TEST_REDIS_URL"), basePort: base}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() {
		if err := run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{"phone 401", "phone 429", "sqlite + bigcache    × 1 instance(s):"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if o.pg != "" && o.redis != "" && !strings.Contains(out, "PostgreSQL + Redis   × 2 instance(s):") {
		t.Errorf("no two-instance run:\n%s", out)
	}
	t.Log("\n" + out)
}

// TestLoadToolFloodsWithWrk runs the floods sent by wrk (-driver wrk),
// which checks every answer's status: wrk must be installed (.ci/run
// installs Debian's package); without it the test fails under CI and
// skips, saying so, elsewhere.
func TestLoadToolFloodsWithWrk(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("wrk is not on PATH (apt-get install wrk)")
		}
		t.Skip("wrk is not on PATH (apt-get install wrk); CI runs this test")
	}
	base := testPorts(30)
	o := options{scenario: "floods", driver: "wrk", seconds: 1, rounds: 1, conns: 4, users: 1, maxRequests: 1000, basePort: base}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() {
		if err := run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{"sent by wrk", "phone 401", "phone 429 (update in its cooldown)", "phone 429 (per_user spent, new numbers)", "plain Caddy 429"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
}

// TestLoadToolBounds: the flags cannot ask for more than the tool allows.
func TestLoadToolBounds(t *testing.T) {
	ok := options{scenario: "all", driver: "go", seconds: 3, rounds: 3, conns: 32, users: 32, maxRequests: 1000, basePort: 28100}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*options){
		func(o *options) { o.seconds = maxSeconds + 1 },
		func(o *options) { o.rounds = 0 },
		func(o *options) { o.conns = maxConns + 1 },
		func(o *options) { o.users = maxUsers + 1 },
		func(o *options) { o.maxRequests = maxRequests + 1 },
		func(o *options) { o.scenario = "everything" },
		func(o *options) { o.driver = "ab" },
		func(o *options) { o.basePort = 80 },
	} {
		o := ok
		bad(&o)
		if o.check() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := loopback("http://10.0.0.1:80/"); err == nil {
		t.Error("a non-loopback target was accepted")
	}
}

// testPorts is the first of the ports a test's children listen on: 28100
// + offset, or 100 + offset past PHONE_E2E_PORTS's HTTP port, so that two
// copies of the suite on one machine keep apart.
func testPorts(offset int) int {
	if f := strings.Fields(os.Getenv("PHONE_E2E_PORTS")); len(f) == 2 {
		if p, err := strconv.Atoi(f[1]); err == nil {
			return p + 100 + offset
		}
	}
	return 28100 + offset
}

func captureStdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, r)
		done <- b.String()
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return <-done
}
