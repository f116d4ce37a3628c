package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Argument helpers shared by the handler's parser and every backend's.
// Each reads the arguments of the setting the dispenser is on and names
// that setting and its line in any error.

// once refuses a setting given twice in one block, as caddy-ratelimit
// does: a second `store` line silently replacing the first is a config
// mistake nobody notices until it bites (SPEC §2).
type once map[string]bool

func (o once) check(d *caddyfile.Dispenser) error {
	name := d.Val()
	if o[name] {
		return d.Errf("%s: already specified", name)
	}
	o[name] = true
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("%s: want exactly one value", name)
	}
	*dst = args[0]
	return nil
}

func someArgs(d *caddyfile.Dispenser) ([]string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("%s: want at least one value", name)
	}
	return args, nil
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s: want a whole number, got %q", name, s)
	}
	*dst = n
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v < 0 {
		return d.Errf("%s: bad duration %q", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

// stringSettings parses a block (at nesting) whose settings each take one
// value, into the fields named; a setting not in fields is refused naming
// what.
func stringSettings(d *caddyfile.Dispenser, nesting int, what string, fields map[string]*string) error {
	seen := once{}
	for d.NextBlock(nesting) {
		dst, ok := fields[d.Val()]
		if !ok {
			return d.Errf("%s: unknown subdirective %q", what, d.Val())
		}
		if err := seen.check(d); err != nil {
			return err
		}
		if err := oneArg(d, dst); err != nil {
			return err
		}
	}
	return nil
}
