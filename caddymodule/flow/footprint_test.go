package flow_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// verifiedUsers says every user already has a verified number and stores
// nothing, so the heap growth measured below is the cache's alone.
type verifiedUsers struct{}

func (verifiedUsers) Get(_ context.Context, id string) (store.User, error) {
	return store.User{ID: id, PhoneNumber: "+33600000000", Verified: true}, nil
}
func (verifiedUsers) Set(context.Context, store.User) error { return nil }

type dropSender struct{}

func (dropSender) Send(context.Context, sms.Message) error { return nil }

// TestCacheBytesPerOpenChallenge opens many pending changes (rule 3) and
// measures the heap they hold: the target is at most 300 bytes each, so a
// million open challenges fit in 300 MB. PHONE_FOOTPRINT_N raises the
// count (the README's figure uses 1000000).
func TestCacheBytesPerOpenChallenge(t *testing.T) {
	n := 100_000
	if s := os.Getenv("PHONE_FOOTPRINT_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	cache, err := store.NewBigCache(store.BigCacheConfig{MaxSizeMB: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	svc, err := flow.New(flow.Config{Verification: true, CodeLength: 6, TTL: 10 * time.Minute, MaxAttempts: 5,
		Secret: []byte("0123456789abcdef0123")}, flow.Deps{Users: verifiedUsers{}, Cache: cache, Sender: dropSender{}, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	ctx := context.Background()
	for i := range n {
		// 36-character user IDs, the size of a UUID.
		user := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		if _, err := svc.Update(ctx, flow.UpdateRequest{UserID: user, PhoneNumber: fmt.Sprintf("+3361%07d", i%10_000_000)}); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(heapInUse()-before) / float64(n)
	t.Logf("%d open challenges: %.0f bytes each in the cache", n, per)
	if per > 300 {
		t.Fatalf("%.0f bytes per open challenge, want <= 300", per)
	}
	runtime.KeepAlive(cache)
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
