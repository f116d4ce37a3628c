package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// serveAs sends one request as user through p and returns the status.
func serveAs(t *testing.T, p *Phone, user, method, path, body string) int {
	t.Helper()
	tok, _ := mintToken(benchSecret, user, "HS256", "", "", time.Hour, time.Now())
	rec := httptest.NewRecorder()
	r := caddyRequest(method, path, body)
	r.Header.Set("Authorization", "Bearer "+tok)
	if err := p.ServeHTTP(rec, r, noopNext); err != nil {
		t.Fatal(err)
	}
	return rec.Code
}

func testRandom(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testRedis returns the test server's URL and a key prefix of the test's
// own, deleted when it ends.
func testRedis(t *testing.T) (string, string) {
	u := os.Getenv("PHONE_TEST_REDIS_URL")
	if u == "" {
		t.Skip("PHONE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
	}
	prefix := testRandom("phone-ns-test-") + ":"
	t.Cleanup(func() {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Error(err)
			return
		}
		c := redis.NewClient(opt)
		defer c.Close()
		if keys, _ := c.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return u, prefix
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Two instances reach one PostgreSQL database by DSNs spelled apart (the
// host as 127.0.0.1 and as localhost, a per-pod application_name) and one
// Redis by two addresses: they share one namespace, so a code sent by one
// verifies on the other (SPEC §9).
func TestTwoDSNSpellingsShareCodes(t *testing.T) {
	base := os.Getenv("PHONE_TEST_POSTGRES_DSN")
	if base == "" || !strings.Contains(base, "127.0.0.1") || !strings.HasPrefix(base, "postgres://") {
		t.Skip("PHONE_TEST_POSTGRES_DSN must be a postgres:// URL naming 127.0.0.1")
	}
	redisURL, prefix := testRedis(t)
	if !strings.Contains(redisURL, "127.0.0.1") {
		t.Skip("PHONE_TEST_REDIS_URL must name 127.0.0.1")
	}
	schema := testRandom("phone_ns_test_")
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	withApp := func(dsn, app string) string {
		u, _ := url.Parse(dsn)
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
		return u.String()
	}
	instance := func(dsn, redisURL string) *Phone {
		return provisionPhone(t, `{"jwt":{"secret":"`+benchSecret+`"},"secret":"shared-otp-secret-0123456789",
			"store":{"backend":"postgres","dsn":`+jsonString(dsn)+`,"schema":"`+schema+`"},
			"cache":{"backend":"redis","url":`+jsonString(redisURL)+`,"key_prefix":"`+prefix+`"},"sms":[{"provider":"log"}]}`)
	}
	a := instance(withApp(base, "pod-a"), redisURL)
	b := instance(withApp(strings.Replace(base, "127.0.0.1", "localhost", 1), "pod-b"),
		strings.Replace(redisURL, "127.0.0.1", "localhost", 1))
	if a.cache == b.cache {
		t.Fatal("the two instances should hold separate pooled caches, sharing only Redis")
	}
	sink := withInstantSMS(t, a)
	withInstantSMS(t, b)
	if c := serveAs(t, a, "alice", "POST", "/phone/update", `{"phone_number":"+33612345678"}`); c != 200 {
		t.Fatalf("update on a: %d", c)
	}
	code := sink.codes["+33612345678"]
	if c := serveAs(t, b, "alice", "POST", "/phone/verify", `{"code":"`+code+`"}`); c != 200 {
		t.Fatalf("a's code on b: %d, want 200 (one database, one namespace)", c)
	}
}

// One sqlite file reached by two paths is one namespace: handlers share
// its codes. (Two files never do: TestHandlersWithOtherStoresShareNoChallenges.)
func TestOneSQLiteFileByTwoPathsSharesCodes(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip(err)
	}
	site := func(path string) *Phone {
		return provisionPhone(t, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"sqlite","path":`+jsonString(path)+`},
			"cache":{"max_size":67108864},"sms":[{"provider":"log"}]}`)
	}
	a, b := site(filepath.Join(dir, "phone.db")), site(filepath.Join(link, "phone.db"))
	if a.cache != b.cache {
		t.Fatal("the two handlers should share the pooled cache for this test to mean anything")
	}
	sink := withInstantSMS(t, a)
	withInstantSMS(t, b)
	if c := serveAs(t, a, "bob", "POST", "/phone/update", `{"phone_number":"+33612345679"}`); c != 200 {
		t.Fatalf("update on a: %d", c)
	}
	if c := serveAs(t, b, "bob", "POST", "/phone/verify", `{"code":"`+sink.codes["+33612345679"]+`"}`); c != 200 {
		t.Fatalf("a's code on b: %d, want 200", c)
	}
}

// An instance whose `secret` differs from the one the others sharing its
// store's entries in Redis use is refused at load, naming the setting;
// one with the same secret starts.
func TestSecretFingerprintRefused(t *testing.T) {
	redisURL, prefix := testRedis(t)
	db := filepath.Join(t.TempDir(), "phone.db")
	cfg := func(secret string) string {
		return `{"jwt":{"secret":"` + benchSecret + `"},"secret":"` + secret + `",
			"store":{"backend":"sqlite","path":` + jsonString(db) + `},
			"cache":{"backend":"redis","url":` + jsonString(redisURL) + `,"key_prefix":"` + prefix + `"},"sms":[{"provider":"log"}]}`
	}
	provisionPhone(t, cfg("first-otp-secret-0123456789"))
	err := provisionError(t, cfg("other-otp-secret-0123456789"))
	if err == nil || !strings.HasPrefix(err.Error(), "secret:") || strings.Contains(err.Error(), "other-otp-secret") {
		t.Fatalf("Provision with another secret: %v; want a refusal naming `secret` (and not showing it)", err)
	}
	provisionPhone(t, cfg("first-otp-secret-0123456789"))
	// Another store's entries are apart: its instances may use their own.
	other := `{"jwt":{"secret":"` + benchSecret + `"},"secret":"other-otp-secret-0123456789",
		"store":{"backend":"sqlite","path":` + jsonString(filepath.Join(t.TempDir(), "other.db")) + `},
		"cache":{"backend":"redis","url":` + jsonString(redisURL) + `,"key_prefix":"` + prefix + `"},"sms":[{"provider":"log"}]}`
	provisionPhone(t, other)
}
