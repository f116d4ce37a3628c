package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// `cache redis` with a Cluster or a Sentinel adapts to its JSON; a block
// naming two of URL, cluster and sentinel, or none, is refused.
func TestAdaptRedisClusterSentinel(t *testing.T) {
	adapt := func(lines string) ([]byte, error) {
		in := ":9080 {\n\tphone {\n\t\tjwt {\n\t\t\tsecret s\n\t\t}\n\t\tsms log\n\t\t" + lines + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
		return out, err
	}
	for _, c := range []struct{ name, lines, want string }{
		{"cluster", `cache redis {
			cluster    10.0.0.1:7000 10.0.0.2:7000 10.0.0.3:7000
			username   phone
			password   {env.REDIS_PASSWORD}
			tls
			key_prefix phone:
		}`, `{"backend":"redis","cluster":["10.0.0.1:7000","10.0.0.2:7000","10.0.0.3:7000"],"username":"phone",
			"password":"{env.REDIS_PASSWORD}","tls":true,"key_prefix":"phone:"}`},
		{"sentinel", `cache redis {
			sentinel mymaster 10.0.0.1:26379 10.0.0.2:26379
			password {env.REDIS_PASSWORD}
			timeout  1s
		}`, `{"backend":"redis","sentinel":{"master":"mymaster","addrs":["10.0.0.1:26379","10.0.0.2:26379"]},
			"password":"{env.REDIS_PASSWORD}","timeout":1000000000}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := adapt(c.lines)
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := phoneHandler(t, out)["cache"]; !reflect.DeepEqual(got, want) {
				t.Fatalf("cache adapted to %v, want %v", got, want)
			}
		})
	}
	for _, c := range []struct{ name, lines, want string }{
		{"nothing", "cache redis", "cluster or sentinel"},
		{"url and cluster", "cache redis redis://127.0.0.1:6379/0 {\n cluster 10.0.0.1:7000\n}", "one of"},
		{"cluster and sentinel", "cache redis {\n cluster 10.0.0.1:7000\n sentinel m 10.0.0.1:26379\n}", "one of"},
		{"sentinel without address", "cache redis {\n sentinel mymaster\n}", "sentinel"},
		{"cluster without address", "cache redis {\n cluster\n}", "cluster"},
		{"tls with a value", "cache redis {\n cluster 10.0.0.1:7000\n tls yes\n}", "'yes'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := adapt(c.lines); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("adapt: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// clusterPair is two Caddy instances (ports one and two) sharing
// PostgreSQL and a real 3-master Redis Cluster, each reaching the cluster
// through a different seed, their SMS going to sink.
type clusterPair struct {
	e        *env
	sink     *smsSink
	one, two int
	addrs    []string // the cluster's nodes
	prefix   string   // the instances' key_prefix
}

// startClusterPair starts a clusterPair; extra goes inside `phone`.
func startClusterPair(t *testing.T, extra string) clusterPair {
	dsn := postgresDSN(t)
	c := clusterPair{addrs: storetest.StartRedisCluster(t, 3), sink: newSMSSink(t), one: httpPort, two: httpPort + 1,
		prefix: randomName("phone-e2e-") + ":"}
	schema := newSchema(t, dsn)
	instance := func(port int, seed string) string {
		return fmt.Sprintf(`:%d {
	phone {
		jwt {
			secret %s
		}
		secret shared-otp-secret-0123456789
		store postgres %q {
			schema %s
		}
		cache redis {
			cluster    %s
			key_prefix %s
		}
		%s
		%s
	}
	respond "instance %d"
}
`, port, jwtSecret, dsn, schema, seed, c.prefix, extra, webhookLine(c.sink.srv.URL, ""), port)
	}
	cfg := fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n\thttps_port %d\n\tgrace_period 1s\n}\n", adminPort, httpPort, httpsPort) +
		instance(c.one, c.addrs[0]) + instance(c.two, c.addrs[1])
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	c.e = &env{t: t, sink: c.sink, client: &http.Client{Timeout: 15 * time.Second}}
	return c
}

// call sends a request to the instance on port.
func (c clusterPair) call(port int, method, path, tok string, body any) response {
	return c.e.doAt(fmt.Sprintf("http://localhost:%d", port), method, path, tok, body)
}

// Two instances behind a balancer share PostgreSQL and a real 3-master
// Redis Cluster, each reaching the cluster through a different seed: a
// code sent by one verifies on the other, and the challenge lives in the
// cluster.
func TestTwoInstancesShareRedisCluster(t *testing.T) {
	c := startClusterPair(t, "")
	addrs, prefix, sink, call, second := c.addrs, c.prefix, c.sink, c.call, c.two
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer raw.Close()
	countKeys := func() int {
		n := 0
		ch := make(chan int, len(addrs))
		err := raw.ForEachMaster(context.Background(), func(ctx context.Context, node *redis.Client) error {
			keys, err := node.Keys(ctx, prefix+"*").Result()
			ch <- len(keys)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		close(ch)
		for k := range ch {
			n += k
		}
		return n
	}

	for i, pair := range [][2]int{{httpPort, second}, {second, httpPort}} {
		u := uniqueUser(t, fmt.Sprintf("cluster%d", i))
		tok := token(t, u)
		number := fmt.Sprintf("+1415555267%d", i)
		call(pair[0], "POST", "/phone/update", tok, map[string]any{"phone_number": number}).want(t, 200, "")
		if n := countKeys(); n == 0 {
			t.Fatal("no key under the prefix on any master after an update")
		}
		call(pair[1], "POST", "/phone/verify", tok, map[string]any{"code": sink.last(u).Code}).want(t, 200, "")
		st := call(pair[0], "GET", "/phone", tok, nil).want(t, 200, "")
		if st.body["phone_number"] != number || st.body["verified"] != true {
			t.Fatal(st.raw)
		}
	}
}
