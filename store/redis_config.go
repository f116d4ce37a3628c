package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig points a RedisCache at a single server (URL), a Redis
// Cluster (Cluster) or a master watched by Sentinel (SentinelMaster and
// Sentinels): exactly one of the three. Zero fields take the defaults.
type RedisConfig struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS, as
	// go-redis's ParseURL reads it.
	URL string
	// Cluster lists host:port seed addresses of a Redis Cluster (one is
	// enough; the client learns the others from it).
	Cluster []string
	// SentinelMaster is the name of the master the Sentinels at Sentinels
	// (host:port) watch; the client asks them where the master is and
	// follows it across failovers.
	SentinelMaster string
	Sentinels      []string
	// Username and Password authenticate to the Redis servers (with URL,
	// they replace the URL's). Sentinels themselves are asked without
	// authentication.
	Username string
	Password string
	// TLS dials every server with TLS, verifying its certificate against
	// the system roots. With URL, write rediss:// instead.
	TLS bool
	// KeyPrefix goes before every key (default "phone:"), so one Redis
	// database can serve other applications too. On a Cluster, a prefix
	// holding a hash tag ({…}) puts every key in one slot.
	KeyPrefix string
	// Timeout bounds every command (default 2s): it is the dial, read,
	// write and pool-wait timeout, and the context deadline of each Get,
	// each Delete and each attempt of an Update. It overrides timeouts
	// given in the URL's query.
	Timeout time.Duration
}

// Validate checks the settings without connecting. Its errors never hold
// the password.
func (cfg RedisConfig) Validate() error {
	_, err := cfg.options()
	return err
}

// cluster says whether cfg names a Redis Cluster.
func (cfg RedisConfig) cluster() bool { return len(cfg.Cluster) > 0 }

// options checks cfg and returns the client options with the defaults
// and timeouts applied.
func (cfg RedisConfig) options() (*redis.UniversalOptions, error) {
	modes := 0
	for _, set := range []bool{cfg.URL != "", len(cfg.Cluster) > 0, cfg.SentinelMaster != "" || len(cfg.Sentinels) > 0} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		return nil, errors.New("store: redis: url is required (or cluster addresses, or a sentinel master)")
	case modes > 1:
		return nil, errors.New("store: redis: give one of url, cluster and sentinel")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("store: redis: timeout must be positive, got %s", cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultRedisTimeout
	}
	var opt *redis.UniversalOptions
	switch {
	case cfg.URL != "":
		if cfg.TLS {
			return nil, errors.New("store: redis: tls: with a url, write rediss:// instead")
		}
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			// A *url.Error repeats the whole URL, password included.
			if ue, ok := errors.AsType[*url.Error](err); ok {
				err = ue.Err
			}
			return nil, fmt.Errorf("store: redis: url: %w", err)
		}
		opt = &redis.UniversalOptions{Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username,
			Password: o.Password, TLSConfig: o.TLSConfig, ClientName: o.ClientName, Protocol: o.Protocol}
	case len(cfg.Cluster) > 0:
		if err := checkAddrs("cluster", cfg.Cluster); err != nil {
			return nil, err
		}
		if err := checkClusterPrefix(cfg.KeyPrefix); err != nil {
			return nil, err
		}
		opt = &redis.UniversalOptions{Addrs: cfg.Cluster, IsClusterMode: true}
	default:
		if cfg.SentinelMaster == "" {
			return nil, errors.New("store: redis: sentinel: the master's name is required")
		}
		if len(cfg.Sentinels) == 0 {
			return nil, errors.New("store: redis: sentinel: at least one sentinel address is required")
		}
		if err := checkAddrs("sentinel", cfg.Sentinels); err != nil {
			return nil, err
		}
		opt = &redis.UniversalOptions{Addrs: cfg.Sentinels, MasterName: cfg.SentinelMaster}
	}
	if cfg.Username != "" {
		opt.Username = cfg.Username
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	if cfg.TLS {
		// No ServerName: go-redis dials with tls.DialWithDialer, which takes
		// it from each node's address.
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	opt.DialTimeout = timeout
	opt.ReadTimeout = timeout
	opt.WriteTimeout = timeout
	opt.PoolTimeout = timeout
	// One dial per attempt: go-redis already retries a failed command
	// (three times, with backoff, on a new connection), and five dials per
	// attempt would spend the whole Timeout on a refused port and report
	// a bare deadline instead of the refusal.
	opt.DialerRetries = 1
	// Our per-command deadlines, and a caller's cancellation, reach the
	// socket only with this on.
	opt.ContextTimeoutEnabled = true
	return opt, nil
}

func checkAddrs(what string, addrs []string) error {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("store: redis: %s: %q is not host:port", what, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("store: redis: %s: %q: bad port", what, a)
		}
	}
	return nil
}

// checkClusterPrefix refuses a key prefix that would spoil the hash tags
// RedisCache adds on a Cluster: Redis hashes only the first {…} of a key,
// so a { in the prefix must close a whole non-empty tag there (which then
// puts every key in one slot, the operator's choice).
func checkClusterPrefix(prefix string) error {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return nil
	}
	if j := strings.IndexByte(prefix[i+1:], '}'); j <= 0 {
		return fmt.Errorf("store: redis: key_prefix %q: on a cluster, a { in the prefix must close a non-empty hash tag {…} (which puts every key in one slot)", prefix)
	}
	return nil
}

// clusterKey gives k a hash tag on a Cluster, so that the keys of one
// subject share a slot and a transaction over several of them is
// possible. The subject is what follows the key's last ':' (flow's keys
// are <namespace>:<kind>:<subject>, e.g. c:<user>, lu:<user>,
// vf:<user>), so every key of one user maps to one slot. A key without
// ':' or ending in one is left alone.
//
// Redis hashes the text between a key's first { and the next }. The
// prefix has no { of its own (or a whole tag, see checkClusterPrefix),
// and the kinds and namespaces none either, so the first { is ours or
// one inside the subject's tail, which keys of one subject share: their
// tags are equal whatever the subject holds.
func clusterKey(k string) string {
	i := strings.LastIndexByte(k, ':')
	if i < 0 || i == len(k)-1 {
		return k
	}
	return k[:i+1] + "{" + k[i+1:] + "}"
}
