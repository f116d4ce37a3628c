// Command phone-load measures the module through real Caddy processes on
// the loopback interface, bounded in time and in requests:
//
//   - floods: requests answered 401 (a bad token) and 429 (an update to a
//     number still in its resend cooldown) per second, against plain
//     Caddy answering the same statuses with `respond`, in alternating
//     rounds so that the machine's drift hits both alike;
//   - flows: N concurrent users, each in a loop of POST /phone/update →
//     the code from a webhook SMS sink → POST /phone/verify, on sqlite
//     (one instance) and on PostgreSQL + Redis (one and two instances; with
//     two, each flow updates on one and verifies on the other), printing
//     flows per second and the p50 and p99 of a flow.
//
// Each Caddy is a child process of this binary (it runs itself with
// PHONE_LOAD_SERVE set to a Caddyfile). Usage:
//
//	go run ./caddymodule/cmd/phone-load -scenario all -seconds 3 -rounds 3 -users 32
//
// PostgreSQL and Redis come from -pg and -redis (default
// $PHONE_TEST_POSTGRES_DSN and $PHONE_TEST_REDIS_URL); without them the
// PostgreSQL + Redis runs are skipped, saying so. Each run uses a schema
// and a key prefix of its own and drops them at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-phone/caddy-phone/caddymodule"
)

// Bounds: a run never goes past them, whatever the flags ask.
const (
	maxSeconds  = 60
	maxRounds   = 10
	maxConns    = 256
	maxUsers    = 1024
	maxRequests = 5_000_000 // per round
)

// jwtSecret signs the load users' tokens; the children accept it.
const jwtSecret = "phone-load-secret-0123456789abcdef"

type options struct {
	scenario, driver string
	seconds, rounds  int
	conns, users     int
	maxRequests      int
	pg, redis        string
	basePort         int
	keepDir, verbose bool
}

func main() {
	if path := os.Getenv("PHONE_LOAD_SERVE"); path != "" {
		if err := serve(path); err != nil {
			fmt.Fprintln(os.Stderr, "phone-load serve:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "floods, flows or all")
	flag.StringVar(&o.driver, "driver", "go", "what sends the floods: go (this binary) or wrk (Debian's wrk)")
	flag.IntVar(&o.seconds, "seconds", 3, "seconds per round (at most 60)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario (at most 10)")
	flag.IntVar(&o.conns, "conns", 32, "keep-alive connections of the floods (at most 256)")
	flag.IntVar(&o.users, "users", 32, "concurrent users of the flows (at most 1024)")
	flag.IntVar(&o.maxRequests, "max-requests", 1_000_000, "requests per round at most (at most 5,000,000)")
	flag.StringVar(&o.pg, "pg", os.Getenv("PHONE_TEST_POSTGRES_DSN"), "PostgreSQL DSN for the PostgreSQL + Redis flows")
	flag.StringVar(&o.redis, "redis", os.Getenv("PHONE_TEST_REDIS_URL"), "Redis URL for the PostgreSQL + Redis flows")
	flag.IntVar(&o.basePort, "ports", 28100, "first of the loopback ports the Caddy children listen on (20 are used)")
	flag.BoolVar(&o.verbose, "v", false, "pass the children's logs through")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "phone-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "phone-load:", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	switch {
	case o.scenario != "floods" && o.scenario != "flows" && o.scenario != "all":
		return fmt.Errorf("-scenario: want floods, flows or all, got %q", o.scenario)
	case o.driver != "go" && o.driver != "wrk":
		return fmt.Errorf("-driver: want go or wrk, got %q", o.driver)
	case o.seconds < 1 || o.seconds > maxSeconds:
		return fmt.Errorf("-seconds: 1..%d", maxSeconds)
	case o.rounds < 1 || o.rounds > maxRounds:
		return fmt.Errorf("-rounds: 1..%d", maxRounds)
	case o.conns < 1 || o.conns > maxConns:
		return fmt.Errorf("-conns: 1..%d", maxConns)
	case o.users < 1 || o.users > maxUsers:
		return fmt.Errorf("-users: 1..%d", maxUsers)
	case o.maxRequests < 1 || o.maxRequests > maxRequests:
		return fmt.Errorf("-max-requests: 1..%d", maxRequests)
	case o.basePort < 1024 || o.basePort > 65535-20:
		return errors.New("-ports: 1024..65515")
	}
	return nil
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "phone-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.scenario == "floods" || o.scenario == "all" {
		if err := floods(ctx, o, dir); err != nil {
			return fmt.Errorf("floods: %w", err)
		}
	}
	if o.scenario == "flows" || o.scenario == "all" {
		if err := flows(ctx, o, dir); err != nil {
			return fmt.Errorf("flows: %w", err)
		}
	}
	return nil
}

// serve is a child: it runs Caddy with the Caddyfile at path until told
// to stop.
func serve(path string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt(body, map[string]any{"filename": path})
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "caddyfile:", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return caddy.Stop()
}

// child is one Caddy process.
type child struct {
	cmd *exec.Cmd
}

// startChild writes caddyfile and starts a Caddy child on it, then waits
// until url answers.
func startChild(ctx context.Context, o options, dir, name, caddyfile, url string) (*child, error) {
	path := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "PHONE_LOAD_SERVE="+path)
	if o.verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	if err := waitUp(ctx, url); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s did not start (run with -v to see its log): %w", name, err)
	}
	return c, nil
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// globalOptions keeps a child on the loopback interface, with its own
// admin port and no HTTPS.
func globalOptions(adminPort int) string {
	return fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tgrace_period 1s\n\tpersist_config off\n}\n", adminPort)
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
