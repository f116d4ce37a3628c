package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// The bodies plain Caddy answers with, shaped like the module's, so both
// sides write about as many bytes.
const (
	body401 = `{"error":"unauthorized","message":"A valid bearer token is required."}`
	body429 = `{"error":"rate_limited","message":"Too many requests; try again later.","retry_after":60}`
)

// floods compares the module's 401 and 429 with plain Caddy's, in one
// Caddy child (sqlite, a webhook sink for the one code the 429 flood's
// first update sends), rounds alternating.
func floods(ctx context.Context, o options, dir string) error {
	sink, err := newSink()
	if err != nil {
		return err
	}
	defer sink.close()
	admin, plain, phone := o.basePort, o.basePort+1, o.basePort+2
	cfg := globalOptions(admin) + fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	header Content-Type application/json
	respond /401 `+"`%s`"+` 401
	respond /429 `+"`%s`"+` 429
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	phone {
		jwt {
			secret %s
		}
		store sqlite %s
		sms webhook %s
	}
	respond "ok"
}
`, plain, body401, body429, phone, jwtSecret, filepath.Join(dir, "floods.db"), sink.url)
	c, err := startChild(ctx, o, dir, "floods", cfg, fmt.Sprintf("http://127.0.0.1:%d/", plain))
	if err != nil {
		return err
	}
	defer c.stop()
	if err := waitUp(ctx, fmt.Sprintf("http://127.0.0.1:%d/", phone)); err != nil {
		return err
	}

	client := newClient(o.conns)
	user := randomName("flood-")
	tok, err := mint(user)
	if err != nil {
		return err
	}
	phoneBase := fmt.Sprintf("http://127.0.0.1:%d", phone)
	number := `{"phone_number":"+33612345678"}`
	// The 429 flood: the user's first update sends a code; every later
	// one to that number within the resend cooldown (60 s) is refused.
	first := request{method: "POST", url: phoneBase + "/phone/update", auth: "Bearer " + tok, body: number, want: 200}
	if st, err := first.do(ctx, client); err != nil || st != 200 {
		return fmt.Errorf("first update: %d %v", st, err)
	}
	// The pumping flood: a user who spent their per_user budget (10 codes
	// an hour) sends an update to a new number each time.
	pumper, err := mint(randomName("pump-"))
	if err != nil {
		return err
	}
	for i := range 10 {
		send := request{method: "POST", url: phoneBase + "/phone/update", auth: "Bearer " + pumper,
			body: fmt.Sprintf(`{"phone_number":"+3362%07d"}`, i), want: 200}
		if st, err := send.do(ctx, client); err != nil || st != 200 {
			return fmt.Errorf("pumper's update %d: %d %v", i, st, err)
		}
	}
	plain429 := fmt.Sprintf("http://127.0.0.1:%d/429", plain)
	scenarios := []struct {
		name string
		r    request
	}{
		{"plain Caddy 401 (respond)", request{method: "POST", url: fmt.Sprintf("http://127.0.0.1:%d/401", plain), auth: "Bearer bad.token.value", body: number, want: 401}},
		{"phone 401 (bad token, POST /phone/update)", request{method: "POST", url: phoneBase + "/phone/update", auth: "Bearer bad.token.value", body: number, want: 401}},
		{"plain Caddy 429 (respond)", request{method: "POST", url: plain429, auth: "Bearer " + tok, body: number, want: 429}},
		{"phone 429 (update in its cooldown)", request{method: "POST", url: phoneBase + "/phone/update", auth: "Bearer " + tok, body: number, want: 429}},
		{"plain Caddy 429 (respond), new numbers", request{method: "POST", url: plain429, auth: "Bearer " + pumper, newNumber: true, want: 429}},
		{"phone 429 (per_user spent, new numbers)", request{method: "POST", url: phoneBase + "/phone/update", auth: "Bearer " + pumper, newNumber: true, want: 429}},
	}
	// Rounds stay inside the cooldown: a round is at most 60 s, and the
	// first update is re-sent when the cooldown could have run out.
	total := make([]int64, len(scenarios))
	cpu := make([]time.Duration, len(scenarios))
	took := make([]time.Duration, len(scenarios))
	sentAt := time.Now()
	d := time.Duration(o.seconds) * time.Second
	for round := range o.rounds {
		for i, sc := range scenarios {
			if sc.r.want == 429 && sc.r.url == first.url && time.Since(sentAt)+d > 55*time.Second {
				return fmt.Errorf("round %d: the cooldown would end mid-round; use fewer or shorter rounds (rounds × 6 × seconds under 55)", round)
			}
			before := cpuTime(c.cmd.Process.Pid)
			var n int64
			var elapsed time.Duration
			if o.driver == "wrk" {
				n, elapsed, err = wrkFlood(ctx, dir, o.conns, d, sc.r)
			} else {
				n, elapsed, err = flood(ctx, client, o.conns, d, o.maxRequests, sc.r)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			total[i] += n
			took[i] += elapsed
			cpu[i] += cpuTime(c.cmd.Process.Pid) - before
		}
	}
	fmt.Printf("floods: %d rounds of %ds, %d connections, alternating (one Caddy child, sqlite), sent by %s\n", o.rounds, o.seconds, o.conns, o.driver)
	fmt.Printf("  %-44s %9s %7s   %12s %7s\n", "", "req/s", "ratio", "req/CPU s", "ratio")
	for i, sc := range scenarios {
		base := i / 2 * 2
		rate := func(j int) float64 { return float64(total[j]) / took[j].Seconds() }
		cpuRatio := 0.0 // too short a run for /proc's 10 ms ticks
		if b := perCPU(total[base], cpu[base]); b > 0 {
			cpuRatio = perCPU(total[i], cpu[i]) / b
		}
		fmt.Printf("  %-44s %9.0f %7.2f   %12.0f %7.2f\n", sc.name, rate(i), rate(i)/rate(base), perCPU(total[i], cpu[i]), cpuRatio)
	}
	fmt.Println("  (req/CPU s: requests answered per second of the Caddy child's CPU time, the load generator's excluded)")
	return nil
}

func perCPU(n int64, cpu time.Duration) float64 {
	if cpu <= 0 {
		return 0
	}
	return float64(n) / cpu.Seconds()
}
