package caddymodule

import (
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The block parser shared by the handler and every backend module. A
// block is a table from setting name to the parser of its arguments; each
// error names the setting and its line.

// setting parses the arguments of the setting the dispenser is on.
type setting func(d *caddyfile.Dispenser) error

// parseBlock parses the block at nesting. A setting not in settings is
// refused naming what; one given twice is "already specified" unless it
// is repeatable, as caddy-ratelimit does: a second `store` line silently
// replacing the first is a mistake nobody notices until it bites (SPEC §2).
func parseBlock(d *caddyfile.Dispenser, nesting int, what string, settings map[string]setting, repeatable ...string) error {
	seen := map[string]bool{}
	for d.NextBlock(nesting) {
		name := d.Val()
		parse, ok := settings[name]
		if !ok {
			return d.Errf("%s: unknown subdirective %q", what, name)
		}
		if seen[name] && !slices.Contains(repeatable, name) {
			return d.Errf("%s: already specified", name)
		}
		seen[name] = true
		if err := parse(d); err != nil {
			return err
		}
	}
	return nil
}

// str parses exactly one value.
func str(dst *string) setting {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		args := d.RemainingArgs()
		if len(args) != 1 {
			return d.Errf("%s: want exactly one value", name)
		}
		*dst = args[0]
		return nil
	}
}

// strs parses one value or more.
func strs(dst *[]string) setting {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("%s: want at least one value", name)
		}
		*dst = args
		return nil
	}
}

// appendStr parses one value and appends it (a repeatable setting).
func appendStr(dst *[]string) setting {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := str(&s)(d); err != nil {
			return err
		}
		*dst = append(*dst, s)
		return nil
	}
}

// num parses a whole number, then checks it.
func num(dst *int, check func(int) error) setting {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		var s string
		if err := str(&s)(d); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return d.Errf("%s: want a whole number, got %q", name, s)
		}
		*dst = n
		if check != nil {
			if err := check(n); err != nil {
				return d.Err(err.Error())
			}
		}
		return nil
	}
}

// dur parses a duration >= 0.
func dur(dst *caddy.Duration) setting {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		var s string
		if err := str(&s)(d); err != nil {
			return err
		}
		v, err := caddy.ParseDuration(s)
		if err != nil || v < 0 {
			return d.Errf("%s: bad duration %q", name, s)
		}
		*dst = caddy.Duration(v)
		return nil
	}
}

// flag is a setting without arguments that turns dst on.
func flag(dst *bool) setting {
	return func(d *caddyfile.Dispenser) error {
		*dst = true
		return noArgs(d)
	}
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneArg reads the single argument of the setting the dispenser is on.
func oneArg(d *caddyfile.Dispenser, dst *string) error { return str(dst)(d) }
