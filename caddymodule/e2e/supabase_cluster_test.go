package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Supabase's token-less verify and resend across two Caddy instances
// sharing PostgreSQL and a Redis Cluster: the number index lives in the
// cluster (tagged by the number, in the store's namespace), so a number
// reaches on one instance the latest update made on the other; the
// earlier user's challenge stays reachable with its token only.
func TestSupabaseTokenlessAcrossClusterInstances(t *testing.T) {
	c := startClusterPair(t, "otp {\n\t\t\tresend_after 0\n\t\t}\n\t\tcompat supabase")
	addrs, prefix, sink, call, one, two := c.addrs, c.prefix, c.sink, c.call, c.one, c.two
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
