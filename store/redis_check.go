package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// CheckDurability reads every master's settings (INFO, and CONFIG GET save
// when AOF is off) and describes each one that lets Redis forget a live
// challenge or limit counter before its window ends (SPEC §9): a
// maxmemory-policy other than noeviction (every key here has a TTL, so the
// volatile-* policies evict them too), or neither AOF nor RDB snapshots,
// so that a restart empties the cache. An empty result means nothing was
// found wrong; a server that would not answer is described too. The
// caller logs the result as warnings: none of it stops the cache.
func (c *RedisCache) CheckDurability(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
	defer cancel()
	var (
		mu    sync.Mutex
		warns []string
	)
	check := func(ctx context.Context, node redis.Cmdable, name string) {
		w := checkNode(ctx, node)
		mu.Lock()
		defer mu.Unlock()
		for _, s := range w {
			warns = append(warns, name+s)
		}
	}
	if cc, ok := c.client.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			check(ctx, node, "master "+node.Options().Addr+": ")
			return nil
		})
		if err != nil {
			warns = append(warns, fmt.Sprintf("could not reach every master to check its settings: %v", err))
		}
		return warns
	}
	check(ctx, c.client, "")
	return warns
}

func checkNode(ctx context.Context, node redis.Cmdable) []string {
	var warns []string
	info, err := node.Info(ctx, "memory", "persistence").Result()
	if err != nil {
		return []string{fmt.Sprintf("could not check the eviction policy and persistence (INFO: %v)", err)}
	}
	fields := parseInfo(info)
	if p := fields["maxmemory_policy"]; p != "noeviction" {
		warns = append(warns, fmt.Sprintf("maxmemory-policy is %q, not noeviction: when memory is full, Redis drops live challenges and limit counters (set maxmemory-policy noeviction)", p))
	}
	if fields["aof_enabled"] == "1" {
		return warns
	}
	save, err := node.ConfigGet(ctx, "save").Result()
	switch {
	case err != nil:
		warns = append(warns, fmt.Sprintf("AOF is off and the RDB snapshot setting could not be read (CONFIG GET save: %v): make sure appendonly or save is on, or a restart forgets every limit", err))
	case strings.TrimSpace(save["save"]) == "":
		warns = append(warns, "no persistence (appendonly no, save \"\"): a restart forgets every challenge and limit counter (turn on appendonly yes, or RDB snapshots with save)")
	}
	return warns
}

// parseInfo reads the key:value lines of an INFO reply.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}
