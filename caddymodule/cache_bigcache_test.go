package caddymodule

import (
	"testing"
	"time"
)

// TestBigCacheLifeWindowPoolKey: configs whose entries need different
// life windows do not share a cache (one would be too short).
func TestBigCacheLifeWindowPoolKey(t *testing.T) {
	a, b := &BigCache{MaxSize: 1 << 20}, &BigCache{MaxSize: 1 << 20}
	a.setLifeWindow(20 * time.Minute)
	b.setLifeWindow(time.Hour + 500*time.Millisecond)
	if a.PoolKey() == b.PoolKey() {
		t.Fatalf("same pool key %q for life windows 20m and 1h", a.PoolKey())
	}
	if b.lifeWindow != time.Hour+time.Second {
		t.Fatalf("life window %s, want 1h0m1s (rounded up)", b.lifeWindow)
	}
}
