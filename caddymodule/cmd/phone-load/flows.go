package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// mint signs a one-hour HS256 token for user.
func mint(user string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
}

// sink is the webhook SMS provider's receiver: it hands each code to the
// flow waiting for its number.
type sink struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	waiting map[string]chan string
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{waiting: map[string]chan string{}, url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Code string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&m); err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		s.mu.Lock()
		ch := s.waiting[m.To]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m.Code:
			default:
			}
		}
		w.WriteHeader(204)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// expect registers number before its update, so the code cannot arrive
// before anyone listens; done unregisters it.
func (s *sink) expect(number string) (codes <-chan string, done func()) {
	ch := make(chan string, 1)
	s.mu.Lock()
	s.waiting[number] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.waiting, number)
		s.mu.Unlock()
	}
}

func (s *sink) close() { _ = s.srv.Close() }

// backend is one storage layout of the flows.
type backend struct {
	name      string
	instances int
	// block is the store and cache lines of the phone block.
	block string
}

// flows runs the users through each layout and prints the figures.
func flows(ctx context.Context, o options, dir string) error {
	sink, err := newSink()
	if err != nil {
		return err
	}
	defer sink.close()
	layouts := []backend{{name: "sqlite + bigcache", instances: 1, block: "store sqlite " + filepath.Join(dir, "flows.db")}}
	if o.pg == "" || o.redis == "" {
		fmt.Println("flows: PostgreSQL + Redis skipped: set -pg and -redis (or PHONE_TEST_POSTGRES_DSN and PHONE_TEST_REDIS_URL)")
	} else {
		for _, n := range []int{1, 2} {
			schema, prefix := randomName("phone_load_"), randomName("phone-load-")+":"
			defer dropSchema(o.pg, schema)
			defer dropPrefix(o.redis, prefix)
			layouts = append(layouts, backend{name: "PostgreSQL + Redis", instances: n, block: fmt.Sprintf(
				"secret phone-load-otp-secret-0123456789\n\t\tstore postgres %q {\n\t\t\tschema %s\n\t\t}\n\t\tcache redis %s {\n\t\t\tkey_prefix %s\n\t\t}",
				o.pg, schema, o.redis, prefix)})
		}
	}
	fmt.Printf("flows: %d users, %d rounds of %ds; a flow is update → code from the webhook sink → verify\n", o.users, o.rounds, o.seconds)
	for li, l := range layouts {
		if err := runLayout(ctx, o, dir, sink, l, li); err != nil {
			return fmt.Errorf("%s × %d: %w", l.name, l.instances, err)
		}
	}
	return nil
}

func runLayout(ctx context.Context, o options, dir string, s *sink, l backend, li int) error {
	var bases []string
	for i := range l.instances {
		admin, port := o.basePort+10+2*(li*2+i), o.basePort+11+2*(li*2+i)
		// Limits stay on, counted, with counts no load user reaches.
		cfg := globalOptions(admin) + fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	phone {
		jwt {
			secret %s
		}
		%s
		sms webhook %s
		limits {
			per_number      1000000 1h
			per_user        1000000 1h
			per_ip          1000000 1h
			verify_per_user 1000000 1h
			verify_per_ip   1000000 1h
			global          1000000 1m
		}
	}
	respond "ok"
}
`, port, jwtSecret, l.block, s.url)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		c, err := startChild(ctx, o, dir, fmt.Sprintf("flows-%d-%d", li, i), cfg, base+"/")
		if err != nil {
			return err
		}
		defer c.stop()
		bases = append(bases, base)
	}
	client := newClient(2 * o.users)
	run := randomName("")
	var next atomic.Int64
	var count atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var took time.Duration
	for round := range o.rounds {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, time.Duration(o.seconds)*time.Second)
		var wg sync.WaitGroup
		for u := range o.users {
			wg.Go(func() {
				user := fmt.Sprintf("load-%s-%d", run, u)
				tok, err := mint(user)
				if err != nil {
					return
				}
				for rctx.Err() == nil && count.Add(1) <= int64(o.maxRequests) {
					i := next.Add(1)
					number := fmt.Sprintf("+3361%07d", i%10_000_000)
					start := time.Now()
					err := flow(rctx, client, s, bases[int(i)%len(bases)], bases[int(i+1)%len(bases)], tok, number)
					if rctx.Err() != nil {
						return // cut by the round's end: not counted
					}
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = fmt.Errorf("round %d, user %d: %w", round, u, err)
					}
					if err == nil {
						lat = append(lat, time.Since(start))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cancel()
		took += time.Since(start)
	}
	if firstErr != nil {
		return firstErr
	}
	if len(lat) == 0 {
		return errors.New("no flow completed")
	}
	slices.Sort(lat)
	fmt.Printf("  %-20s × %d instance(s): %7.0f flows/s   p50 %6.1f ms   p99 %6.1f ms   (%d flows)\n",
		l.name, l.instances, float64(len(lat))/took.Seconds(), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), len(lat))
	return nil
}

// flow is one user's update on a, code, verify on b.
func flow(ctx context.Context, client *http.Client, s *sink, a, b, tok, number string) error {
	codes, done := s.expect(number)
	defer done()
	st, err := request{method: "POST", url: a + "/phone/update", auth: "Bearer " + tok, body: `{"phone_number":"` + number + `"}`, want: 200}.do(ctx, client)
	if err != nil {
		return err
	}
	if st != 200 && st != 202 {
		return fmt.Errorf("update: status %d", st)
	}
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no code for the update: %w", errTimeout)
	}
	st, err = request{method: "POST", url: b + "/phone/verify", auth: "Bearer " + tok, body: `{"code":"` + code + `"}`, want: 200}.do(ctx, client)
	if err != nil {
		return err
	}
	if st != 200 {
		return fmt.Errorf("verify: status %d", st)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func dropSchema(dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		fmt.Println("drop schema:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		fmt.Println("drop schema:", err)
	}
}

func dropPrefix(url, prefix string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			c.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}
