package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Real Redis servers for the tests, started from Debian's redis-server
// (Redis 7 or later) on free loopback ports, each in a temporary
// directory, and stopped by PID when the test ends. Without redis-server
// on PATH the test fails when CI is set and is skipped otherwise.

// redisServer returns the path of redis-server.
func redisServer(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH (apt-get install redis-server): cannot start the Redis Cluster and Sentinel test servers"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; skipping (set CI to make this a failure)")
	}
	return p
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartRedis starts a redis-server on a free loopback port with AOF on and
// maxmemory-policy noeviction, plus args (redis.conf settings as
// command-line options, e.g. "--maxmemory-policy", "allkeys-lru"), and
// returns its host:port once it answers.
func StartRedis(t testing.TB, args ...string) string {
	t.Helper()
	return startRedis(t, func(port int) []string { return args }).Addr
}

// RedisNode is one redis-server started by the tests.
type RedisNode struct {
	Addr string
	bin  string
	dir  string
	args []string
	stop func()
}

// Restart stops the server (SIGTERM by PID, so that it writes its AOF and
// its cluster config) and starts it again on the same port with the same
// data directory and arguments; a cluster node rejoins its cluster. It
// returns once the server answers PING again.
func (n *RedisNode) Restart(t testing.TB) {
	t.Helper()
	n.stop()
	var err error
	for range 50 { // the port may linger for a moment
		var stop func()
		if stop, err = runRedis(t, n.bin, n.dir, n.args, n.Addr); err == nil {
			n.stop = stop
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restarting redis-server %s: %v", n.Addr, err)
}

// startRedis starts one server, trying new ports when one was taken in
// the meantime. args gets the chosen port.
func startRedis(t testing.TB, args func(port int) []string) *RedisNode {
	t.Helper()
	bin := redisServer(t)
	var lastErr error
	for range 3 {
		port := freePort(t)
		dir := t.TempDir()
		all := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""}, args(port)...)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		var stop func()
		if stop, lastErr = runRedis(t, bin, dir, all, addr); lastErr == nil {
			return &RedisNode{Addr: addr, bin: bin, dir: dir, args: all, stop: stop}
		}
	}
	t.Fatalf("redis-server: %v", lastErr)
	return nil
}

// runRedis starts bin with args and waits until addr answers PING; the
// process is stopped at cleanup, or by the stop function returned.
func runRedis(t testing.TB, bin, dir string, args []string, addr string) (func(), error) {
	t.Helper()
	logPath := filepath.Join(dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	stop := func() {
		select {
		case <-exited: // stopped already (a restart, then the cleanup)
			return
		default:
		}
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("exited at start: %s", tail(string(b)))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rc.Ping(ctx).Err()
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s does not answer PING after 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// StartRedisCluster starts a Redis Cluster of `masters` masters and no
// replicas on loopback (redis-cli --cluster create) and returns their
// addresses once every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB, masters int) []string {
	t.Helper()
	nodes := StartRedisClusterNodes(t, masters)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// StartRedisClusterNodes is StartRedisCluster returning the nodes, which
// can be restarted.
func StartRedisClusterNodes(t testing.TB, masters int) []*RedisNode {
	t.Helper()
	nodes := make([]*RedisNode, masters)
	addrs := make([]string, masters)
	for i := range addrs {
		nodes[i] = startRedis(t, func(int) []string {
			// The bus port is given, not port+10000, which may be
			// taken or past 65535.
			return []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(freePort(t)),
				"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"}
		})
		addrs[i] = nodes[i].Addr
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli is not on PATH (it comes with redis-server): cannot create the cluster")
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, tail(string(out)))
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				t.Fatalf("cluster node %s not ok after 20s: %v %s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rc.Close()
	}
	return nodes
}

// StartRedisSentinel starts one redis-server --sentinel on loopback
// watching the master at masterAddr under the name master, and returns the
// sentinel's address once it names the master.
func StartRedisSentinel(t testing.TB, master, masterAddr string) string {
	t.Helper()
	bin := redisServer(t)
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 {
		sport := freePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
			sport, dir, master, host, port, master)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(sport)
		if _, lastErr = runRedis(t, bin, dir, []string{conf, "--sentinel"}, addr); lastErr != nil {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		defer sc.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := sc.GetMasterAddrByName(context.Background(), master).Result()
			if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == masterAddr {
				return addr
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s does not name master %s after 10s: %v %v", addr, master, got, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatalf("redis-server --sentinel: %v", lastErr)
	return ""
}
