package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// Supabase's token-less verify and resend across two Caddy instances
// sharing PostgreSQL and a Redis Cluster: the number index lives in the
// cluster (tagged by the number, in the store's namespace), so a number
// reaches on one instance the latest update made on the other; the
// earlier user's challenge stays reachable with its token only.
func TestSupabaseTokenlessAcrossClusterInstances(t *testing.T) {
	dsn := postgresDSN(t)
	addrs := storetest.StartRedisCluster(t, 3)
	schema := newSchema(t, dsn)
	sink := newSMSSink(t)
	prefix := randomName("phone-e2e-") + ":"
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
		otp {
			resend_after 0
		}
		compat supabase
		%s
	}
	respond "instance %d"
}
`, port, jwtSecret, dsn, schema, seed, prefix, webhookLine(sink.srv.URL, ""), port)
	}
	one, two := httpPort, httpPort+1
	cfg := fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n\thttps_port %d\n\tgrace_period 1s\n}\n", adminPort, httpPort, httpsPort) +
		instance(one, addrs[0]) + instance(two, addrs[1])
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e := &env{t: t, sink: sink, client: &http.Client{Timeout: 15 * time.Second}}
	call := func(port int, method, path, tok string, body any) response {
		return e.doAt(fmt.Sprintf("http://localhost:%d", port), method, path, tok, body)
	}
	wantGoTrue := func(r response, status int, code string) {
		t.Helper()
		if r.status != status || r.body["error_code"] != code || r.body["code"] != float64(status) {
			t.Fatalf("want %d %s: %d %s", status, code, r.status, r.raw)
		}
	}

	first, second := uniqueUser(t, "first"), uniqueUser(t, "second")
	firstTok, secondTok := token(t, first), token(t, second)
	number, _ := sbNumbers()
	call(one, "PUT", "/auth/v1/user", firstTok, map[string]any{"phone": number}).want(t, 200, "")
	firstCode := sink.last(first).Code
	call(two, "PUT", "/auth/v1/user", secondTok, map[string]any{"phone": number[1:], "code_challenge": nil}).want(t, 200, "")

	// The index entry is in the cluster, tagged by the number.
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer raw.Close()
	var mu sync.Mutex // ForEachMaster calls fn on every master at once
	var found []string
	err := raw.ForEachMaster(context.Background(), func(ctx context.Context, node *redis.Client) error {
		keys, err := node.Keys(ctx, prefix+"*tn:{"+number+"}").Result()
		mu.Lock()
		found = append(found, keys...)
		mu.Unlock()
		return err
	})
	if err != nil || len(found) != 1 || !strings.HasPrefix(found[0], prefix) {
		t.Fatalf("index entries %v (%v), want one under %s tagged {%s}", found, err, prefix, number)
	}

	// The number reaches the later update (made on the other instance):
	// the first user's code is a wrong one there.
	verify := map[string]any{"type": "phone_change", "phone": number, "token": firstCode, "gotrue_meta_security": map[string]any{}}
	wantGoTrue(call(one, "POST", "/auth/v1/verify", "", verify), 403, "otp_expired")
	r := call(one, "POST", "/auth/v1/resend", "", map[string]any{"type": "phone_change", "phone": number})
	if r.status != 200 || r.body["message_id"] == nil {
		t.Fatalf("resend: %d %s", r.status, r.raw)
	}
	resent := sink.last(second)
	if resent.Purpose != "resend" || resent.To != number {
		t.Fatalf("the resend went for %+v", resent)
	}
	verify["token"] = resent.Code
	r = call(two, "POST", "/auth/v1/verify", "", verify).want(t, 200, "")
	if user, _ := r.body["user"].(map[string]any); user["id"] != second || user["phone"] != number[1:] {
		t.Fatalf("verify: %s", r.raw)
	}
	// The first user's challenge was never touched: with its token, its
	// code proves possession of a number now taken (409).
	call(two, "POST", "/phone/verify", firstTok, map[string]any{"code": firstCode}).want(t, 409, "phone_number_in_use")
	st := call(one, "GET", "/auth/v1/user", secondTok, nil).want(t, 200, "")
	if st.body["phone"] != number[1:] || st.body["phone_confirmed_at"] == nil {
		t.Fatalf("getUser: %s", st.raw)
	}
}
