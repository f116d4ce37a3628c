package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// flowTests are the end-to-end flows that must behave the same on every
// store and cache backend. They run here again, unchanged.
var flowTests = []struct {
	name string
	fn   func(*testing.T)
}{
	{"UpdateVerifyFirstNumber", TestUpdateVerifyFirstNumber},
	{"PendingChange", TestPendingChange},
	{"UnchangedCancelsPending", TestUnchangedCancelsPending},
	{"VerificationOff", TestVerificationOff},
	{"ResendKeepsAttempts", TestResendKeepsAttempts},
	{"LockoutAfterMaxAttempts", TestLockoutAfterMaxAttempts},
	{"ExpiredCode", TestExpiredCode},
	{"ResendCooldown", TestResendCooldown},
	{"ResendCooldownSurvivesCancel", TestResendCooldownSurvivesCancel},
	{"DescopeTokenlessVerifyGuard", TestDescopeTokenlessVerifyGuard},
	{"DescopeLoginIDClaim", TestDescopeLoginIDClaim},
	{"CancelPending", TestCancelPending},
	{"PhoneNumberInUse", TestPhoneNumberInUse},
	{"DeliveryFailure", TestDeliveryFailure},
	{"ConcurrentVerifyOneWinner", TestConcurrentVerifyOneWinner},
	{"InjectHeaders", TestInjectHeaders},
	{"RequireVerified", TestRequireVerified},
	{"CodeSurvivesReload", TestCodeSurvivesReload},
}

// runFlows runs flowTests with store and cache swapped in.
func runFlows(t *testing.T, store, cache func(*testing.T) string) {
	oldStore, oldCache := defaultStore, defaultCache
	defer func() { defaultStore, defaultCache = oldStore, oldCache }()
	if store != nil {
		defaultStore = store
	}
	if cache != nil {
		defaultCache = cache
	}
	for _, ft := range flowTests {
		t.Run(ft.name, ft.fn)
	}
}

func TestFlowsOnPostgres(t *testing.T) {
	dsn := postgresDSN(t)
	runFlows(t, func(t *testing.T) string {
		return fmt.Sprintf("store postgres %q {\n\t\t\tschema %s\n\t\t}", dsn, newSchema(t, dsn))
	}, nil)
}

func TestFlowsOnHTTPStore(t *testing.T) {
	runFlows(t, func(t *testing.T) string {
		app := newUserAPI(t)
		return fmt.Sprintf("store http %s {\n\t\t\theader Authorization \"Bearer legacy-token\"\n\t\t}", app.srv.URL)
	}, nil)
}

func TestFlowsOnRedis(t *testing.T) {
	url := redisURL(t)
	runFlows(t, nil, func(t *testing.T) string {
		return fmt.Sprintf("cache redis %s {\n\t\t\tkey_prefix %s\n\t\t}", url, newRedisPrefix(t, url))
	})
}

func postgresDSN(t *testing.T) string {
	dsn := os.Getenv("PHONE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("PHONE_TEST_POSTGRES_DSN is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the PostgreSQL end-to-end tests")
	}
	return dsn
}

func redisURL(t *testing.T) string {
	url := os.Getenv("PHONE_TEST_REDIS_URL")
	if url == "" {
		t.Skip("PHONE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0); skipping the Redis end-to-end tests")
	}
	return url
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newSchema names a schema of the test's own (the store creates it) and
// drops it when the test ends.
func newSchema(t *testing.T, dsn string) string {
	schema := randomName("phone_e2e_")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// newRedisPrefix gives the test its own keys and deletes them afterwards.
func newRedisPrefix(t *testing.T, url string) string {
	prefix := randomName("phone-e2e-") + ":"
	t.Cleanup(func() {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Error(err)
			return
		}
		c := redis.NewClient(opt)
		defer c.Close()
		ctx := context.Background()
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return prefix
}

// userAPI is a legacy app's user API as `store http` expects it: GET and
// PATCH /users/{id}, 404 for an unknown user, 409 when a verified number
// is taken. down makes it answer 500.
type userAPI struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	users map[string]userAPIRecord
	down  bool
}

type userAPIRecord struct {
	Phone    *string `json:"phone"`
	Verified bool    `json:"phone_verified"`
}

func newUserAPI(t *testing.T) *userAPI {
	a := &userAPI{t: t, users: map[string]userAPIRecord{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", a.get)
	mux.HandleFunc("PATCH /users/{id}", a.patch)
	a.srv = httptest.NewServer(a.auth(mux))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *userAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		down := a.down
		a.mu.Unlock()
		switch {
		case r.Header.Get("Authorization") != "Bearer legacy-token":
			http.Error(w, "no", http.StatusUnauthorized)
		case down:
			http.Error(w, "down", http.StatusInternalServerError)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (a *userAPI) setDown(v bool) {
	a.mu.Lock()
	a.down = v
	a.mu.Unlock()
}

func (a *userAPI) get(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	u, ok := a.users[r.PathValue("id")]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(u)
}

func (a *userAPI) patch(w http.ResponseWriter, r *http.Request) {
	var u userAPIRecord
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	a.mu.Lock()
	defer a.mu.Unlock()
	if u.Verified && u.Phone != nil {
		for other, o := range a.users {
			if other != id && o.Verified && o.Phone != nil && *o.Phone == *u.Phone {
				w.WriteHeader(http.StatusConflict)
				return
			}
		}
	}
	a.users[id] = u
	w.WriteHeader(http.StatusNoContent)
}
