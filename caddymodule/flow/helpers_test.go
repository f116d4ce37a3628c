package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// Fixture numbers: valid E.164 mobiles (or fixed_line_or_mobile for +1),
// checked by TestFixtureNumbersAreValid.
const (
	numFR = "+33612345678"
	numUK = "+447911123456"
	numUS = "+14155552671"
	numDE = "+4915112345678"
	numES = "+34612345678"
)

// frNumber returns the i-th number of a block of valid French mobiles
// (+336123456 00..99).
func frNumber(i int) string { return fmt.Sprintf("+336123456%02d", i%100) }

// t0 is where every harness's clock starts.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// ---------------------------------------------------------------- users

// fakeUsers wraps store.MemoryUsers and fails Get or Set on demand.
type fakeUsers struct {
	*store.MemoryUsers
	failGet atomic.Bool
	failSet atomic.Bool
	sets    atomic.Int64
	gets    atomic.Int64
}

var errStoreDown = fmt.Errorf("%w: fake outage", store.ErrUnavailable)

func (u *fakeUsers) Get(ctx context.Context, id string) (store.User, error) {
	u.gets.Add(1)
	if u.failGet.Load() {
		return store.User{}, errStoreDown
	}
	return u.MemoryUsers.Get(ctx, id)
}

func (u *fakeUsers) Set(ctx context.Context, usr store.User) error {
	if u.failSet.Load() {
		return errStoreDown
	}
	u.sets.Add(1)
	return u.MemoryUsers.Set(ctx, usr)
}

// ---------------------------------------------------------------- cache

// spyCache wraps a real cache, records every value written, and fails on
// demand.
type spyCache struct {
	Cache
	mu      sync.Mutex
	written [][]byte
	keys    []string
	fail    atomic.Bool
	gets    atomic.Int64 // Gets asked
	// failOn, when set (before the calls it concerns), fails the Updates
	// of the keys it picks.
	failOn func(key string) bool
}

var errCacheDown = errors.New("fake cache down")

func (c *spyCache) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	if c.fail.Load() {
		return nil, errCacheDown
	}
	return c.Cache.Get(ctx, key)
}

func (c *spyCache) Update(ctx context.Context, key string, fn store.UpdateFunc) error {
	if c.fail.Load() || (c.failOn != nil && c.failOn(key)) {
		return errCacheDown
	}
	return c.Cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
		v, ttl, err := fn(old, found)
		if err == nil && v != nil {
			c.mu.Lock()
			c.written = append(c.written, bytes.Clone(v))
			c.keys = append(c.keys, key)
			c.mu.Unlock()
		}
		return v, ttl, err
	})
}

func (c *spyCache) Delete(ctx context.Context, key string) error {
	if c.fail.Load() {
		return errCacheDown
	}
	return c.Cache.Delete(ctx, key)
}

// Written returns copies of every key and value written so far.
func (c *spyCache) Written() ([]string, [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.keys...), append([][]byte(nil), c.written...)
}

// ---------------------------------------------------------------- harness

type harness struct {
	t      testing.TB
	svc    *Service
	cfg    Config
	clock  *fake.Clock
	sender *fake.Sender
	users  *fakeUsers
	cache  *spyCache
	bc     *store.BigCache
	ctx    context.Context
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// baseConfig: verification on, 6 digits, 10 min ttl, 3 attempts, 30 s
// cooldown, and no send or verify budgets (tests that need them set them).
func baseConfig() Config {
	return Config{
		Verification: true,
		CodeLength:   6,
		TTL:          10 * time.Minute,
		MaxAttempts:  3,
		ResendAfter:  30 * time.Second,
		AppName:      "Acme",
		Secret:       testSecret,
	}
}

func newCache(t testing.TB) *store.BigCache {
	t.Helper()
	bc, err := store.NewBigCache(store.BigCacheConfig{MaxSizeMB: 16})
	if err != nil {
		t.Fatalf("NewBigCache: %v", err)
	}
	t.Cleanup(func() { _ = bc.Close() })
	return bc
}

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	cfg := baseConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	bc := newCache(t)
	h := &harness{
		t:      t,
		cfg:    cfg,
		clock:  fake.NewClock(t0),
		sender: &fake.Sender{},
		users:  &fakeUsers{MemoryUsers: store.NewMemoryUsers()},
		cache:  &spyCache{Cache: bc},
		bc:     bc,
		ctx:    context.Background(),
	}
	svc, err := New(cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.svc = svc
	return h
}

// sibling builds a second Service (another Caddy instance) sharing this
// harness's users, cache, sender and clock.
func (h *harness) sibling() *Service {
	h.t.Helper()
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	return svc
}

func (h *harness) update(user, number string) (UpdateResult, error) {
	return h.svc.Update(h.ctx, UpdateRequest{UserID: user, PhoneNumber: number})
}

func (h *harness) mustUpdate(user, number, wantStatus string) UpdateResult {
	h.t.Helper()
	res, err := h.update(user, number)
	if err != nil {
		h.t.Fatalf("Update(%s, %s): %v", user, number, err)
	}
	if res.Status != wantStatus {
		h.t.Fatalf("Update(%s, %s) status = %q, want %q", user, number, res.Status, wantStatus)
	}
	return res
}

func (h *harness) verify(user, code string) (store.User, error) {
	return h.svc.Verify(h.ctx, VerifyRequest{UserID: user, Code: code})
}

func (h *harness) mustVerify(user, code string) store.User {
	h.t.Helper()
	u, err := h.verify(user, code)
	if err != nil {
		h.t.Fatalf("Verify(%s): %v", user, err)
	}
	return u
}

func (h *harness) resend(user string) (ResendResult, error) {
	return h.svc.Resend(h.ctx, ResendRequest{UserID: user})
}

// user reads a user straight from the memory store, bypassing failures.
func (h *harness) user(id string) store.User {
	h.t.Helper()
	u, err := h.users.MemoryUsers.Get(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Get(%s): %v", id, err)
	}
	return u
}

func (h *harness) wantUser(id, number string, verified bool) {
	h.t.Helper()
	want := store.User{ID: id, PhoneNumber: number, Verified: verified}
	if got := h.user(id); got != want {
		h.t.Fatalf("user %s = %+v, want %+v", id, got, want)
	}
}

// seedVerified gives user a verified number through the real flow.
func (h *harness) seedVerified(user, number string) {
	h.t.Helper()
	h.mustUpdate(user, number, StatusUpdated)
	h.mustVerify(user, h.sender.LastCode(h.t))
	h.wantUser(user, number, true)
}

// challenge returns the decoded open challenge of user, or nil.
func (h *harness) challenge(user string) *challenge {
	h.t.Helper()
	b, err := h.bc.Get(h.ctx, challengeKey(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("cache Get: %v", err)
	}
	c, err := decodeChallenge(b)
	if err != nil {
		h.t.Fatalf("decode challenge: %v", err)
	}
	return c
}

// wrongCode returns a code of the same length that differs from code.
func wrongCodeFor(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func wantCodeError(t testing.TB, err error, left int) {
	t.Helper()
	var ce *CodeError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CodeError with %d attempts left", err, left)
	}
	if !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("CodeError does not unwrap to ErrInvalidCode")
	}
	if ce.AttemptsLeft != left {
		t.Fatalf("AttemptsLeft = %d, want %d", ce.AttemptsLeft, left)
	}
}

func wantRetry(t testing.TB, err error, limit string, after time.Duration) {
	t.Helper()
	var re *RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RetryError (%s)", err, limit)
	}
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if re.Limit != limit {
		t.Fatalf("RetryError.Limit = %q, want %q", re.Limit, limit)
	}
	if re.After != after {
		t.Fatalf("RetryError.After = %s, want %s", re.After, after)
	}
	secs, ok := RetryAfter(err)
	wantSecs := int((after + time.Second - 1) / time.Second)
	if wantSecs < 1 {
		wantSecs = 1
	}
	if !ok || secs != wantSecs {
		t.Fatalf("RetryAfter = %d, %v; want %d, true", secs, ok, wantSecs)
	}
}

func TestFixtureNumbersAreValid(t *testing.T) {
	all := []string{numFR, numUK, numUS, numDE, numES}
	for i := 0; i < 100; i++ {
		all = append(all, frNumber(i))
	}
	for _, n := range all {
		got, err := numbers.Policy{}.Normalize(n)
		if err != nil || got != n {
			t.Errorf("Normalize(%q) = %q, %v; want it unchanged", n, got, err)
		}
	}
}
