package caddymodule

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("phone", parseCaddyfile)
	// Right after forward_auth, so no `order` line is needed.
	httpcaddyfile.RegisterDirectiveOrder("phone", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Phone)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax
// (each backend's own block is in the godoc of its module: store_*.go,
// cache_*.go, sms_*.go):
//
//	phone {
//	    prefix        /phone
//	    verification  on|off
//	    jwt {
//	        secret           <secret>
//	        public_key_file  <pem>            # repeatable
//	        jwks_url         <url>
//	        algorithms       <alg...>
//	        issuer           <iss>
//	        audience         <aud...>
//	        user_claim       <claim>
//	        leeway           <duration>
//	        project_id       <id>
//	        max_auth_age     <duration>
//	    }
//	    otp {
//	        length        <4..10>
//	        ttl           <duration>
//	        max_attempts  <n>
//	        resend_after  <duration>
//	    }
//	    limits {
//	        per_number|per_user|per_ip|verify_per_user|verify_per_ip|global <count> <window>
//	    }
//	    numbers {
//	        default_region   <CC>
//	        allow_countries  <CC...>
//	        deny_countries   <CC...>
//	        types            <type...>
//	    }
//	    store    <backend> [<args>] [{ … }]      # memory, sqlite, postgres, http
//	    cache    <backend> [<args>] [{ … }]      # bigcache, redis
//	    secret   <hmac key for codes at rest>
//	    sms      <provider> [<args>] [{ … }]     # repeatable: a failover chain, in order
//	    template [<locale>] "<text with {code} {app} {minutes}>"   # repeatable, once per locale
//	    app_name <name>
//	    inject_headers
//	    require_verified <path...>               # repeatable
//	    events <url> [{ secret <secret> }]
//	    notify_previous
//	    compat descope|reachfive ...             # repeatable
//	    admin {
//	        api_key <key>
//	        claim   <name> [<value>]
//	    }
//	}
//
// A setting that may appear once, given twice, is an error.
func (p *Phone) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("phone takes no arguments (use `prefix` inside the block): %q", d.Val())
	}
	seen := once{}
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "sms", "template", "compat", "require_verified":
		default:
			if err := seen.check(d); err != nil {
				return err
			}
		}
		var err error
		switch name {
		case "prefix":
			err = oneArg(d, &p.Prefix)
		case "verification":
			err = parseVerification(d, p)
		case "jwt":
			p.JWT = new(JWTConfig)
			err = parseJWT(d, p.JWT)
		case "otp":
			p.OTP = new(OTPConfig)
			err = parseOTP(d, p.OTP)
		case "limits":
			p.Limits = new(LimitsConfig)
			err = parseLimits(d, p.Limits)
		case "numbers":
			p.Numbers = new(NumbersConfig)
			err = parseNumbers(d, p.Numbers)
		case "store":
			p.StoreRaw, err = backendName(d, storeNamespace, "backend")
		case "cache":
			p.CacheRaw, err = backendName(d, cacheNamespace, "backend")
		case "sms":
			var raw []byte
			raw, err = backendName(d, smsNamespace, "provider")
			p.SMSRaw = append(p.SMSRaw, raw)
		case "secret":
			err = oneArg(d, &p.Secret)
		case "template":
			err = parseTemplate(d, p)
		case "app_name":
			err = oneArg(d, &p.AppName)
		case "inject_headers":
			p.InjectHeaders, err = true, noArgs(d)
		case "require_verified":
			var paths []string
			paths, err = someArgs(d)
			p.RequireVerified = append(p.RequireVerified, paths...)
		case "events":
			p.Events, err = parseEvents(d)
		case "notify_previous":
			p.NotifyPrevious, err = true, noArgs(d)
		case "compat":
			err = parseCompat(d, p)
		case "admin":
			p.Admin, err = parseAdmin(d)
		default:
			return d.Errf("phone: unknown subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseVerification(d *caddyfile.Dispenser, p *Phone) error {
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	switch v {
	case "on":
		p.Verification = nil
	case "off":
		off := false
		p.Verification = &off
	default:
		return d.Errf("verification: want on or off, got %q", v)
	}
	return nil
}

func parseTemplate(d *caddyfile.Dispenser, p *Phone) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && p.Template != "":
		return d.Errf("template: the default template is already specified")
	case len(args) == 1:
		p.Template = args[0]
	case len(args) == 2 && p.Templates[args[0]] != "":
		return d.Errf("template %s: already specified", args[0])
	case len(args) == 2:
		if p.Templates == nil {
			p.Templates = map[string]string{}
		}
		p.Templates[args[0]] = args[1]
	default:
		return d.Errf("template: want [<locale>] \"<text>\"")
	}
	return nil
}

// compatProducts are the vendors `compat` may name.
var compatProducts = map[string]bool{"descope": true, "reachfive": true}

func parseCompat(d *caddyfile.Dispenser, p *Phone) error {
	products, err := someArgs(d)
	if err != nil {
		return err
	}
	for _, c := range products {
		if !compatProducts[c] {
			return d.Errf("compat: unknown product %q (descope, reachfive)", c)
		}
		for _, had := range p.Compat {
			if had == c {
				return d.Errf("compat %s: already specified", c)
			}
		}
		p.Compat = append(p.Compat, c)
	}
	return nil
}

func parseJWT(d *caddyfile.Dispenser, j *JWTConfig) error {
	if err := noArgs(d); err != nil {
		return err
	}
	seen := once{}
	for d.NextBlock(1) {
		name := d.Val()
		if name != "public_key_file" {
			if err := seen.check(d); err != nil {
				return err
			}
		}
		var err error
		switch name {
		case "secret":
			err = oneArg(d, &j.Secret)
		case "public_key_file":
			var f string
			err = oneArg(d, &f)
			j.PublicKeyFiles = append(j.PublicKeyFiles, f)
		case "jwks_url":
			err = oneArg(d, &j.JWKSURL)
		case "algorithms":
			j.Algorithms, err = someArgs(d)
		case "issuer":
			err = oneArg(d, &j.Issuer)
		case "audience":
			j.Audience, err = someArgs(d)
		case "user_claim":
			err = oneArg(d, &j.UserClaim)
		case "leeway":
			err = durationArg(d, &j.Leeway)
		case "project_id":
			err = oneArg(d, &j.ProjectID)
		case "max_auth_age":
			err = durationArg(d, &j.MaxAuthAge)
		default:
			return d.Errf("jwt: unknown subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseOTP(d *caddyfile.Dispenser, o *OTPConfig) error {
	if err := noArgs(d); err != nil {
		return err
	}
	seen := once{}
	for d.NextBlock(1) {
		if err := seen.check(d); err != nil {
			return err
		}
		var err error
		switch d.Val() {
		case "length":
			if err = intArg(d, &o.Length); err == nil {
				err = flow.CheckCodeLength(o.Length)
			}
		case "ttl":
			if err = durationArg(d, &o.TTL); err == nil {
				err = flow.CheckTTL(time.Duration(o.TTL))
			}
		case "max_attempts":
			if err = intArg(d, &o.MaxAttempts); err == nil {
				err = flow.CheckMaxAttempts(o.MaxAttempts)
			}
		case "resend_after":
			o.ResendAfter = new(caddy.Duration)
			err = durationArg(d, o.ResendAfter)
		default:
			return d.Errf("otp: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return d.Err(err.Error())
		}
	}
	return nil
}

func parseLimits(d *caddyfile.Dispenser, l *LimitsConfig) error {
	if err := noArgs(d); err != nil {
		return err
	}
	seen := once{}
	for d.NextBlock(1) {
		name := d.Val()
		slot := l.slot(name)
		if slot == nil {
			return d.Errf("limits: unknown subdirective %q", name)
		}
		if err := seen.check(d); err != nil {
			return err
		}
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("limits: %s: want <count> <window>", name)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return d.Errf("limits: %s: count must be a whole number, got %q", name, args[0])
		}
		w, err := caddy.ParseDuration(args[1])
		if err != nil {
			return d.Errf("limits: %s: bad window %q", name, args[1])
		}
		if err := (flow.Limit{Count: n, Window: w}).Check(name); err != nil {
			return d.Err(err.Error())
		}
		*slot = &LimitConfig{Count: n, Window: caddy.Duration(w)}
	}
	return nil
}

func parseNumbers(d *caddyfile.Dispenser, n *NumbersConfig) error {
	if err := noArgs(d); err != nil {
		return err
	}
	seen := once{}
	for d.NextBlock(1) {
		if err := seen.check(d); err != nil {
			return err
		}
		var err error
		switch d.Val() {
		case "default_region":
			err = oneArg(d, &n.DefaultRegion)
		case "allow_countries":
			n.AllowCountries, err = someArgs(d)
		case "deny_countries":
			n.DenyCountries, err = someArgs(d)
		case "types":
			n.Types, err = someArgs(d)
		default:
			return d.Errf("numbers: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseEvents(d *caddyfile.Dispenser) (*EventsConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("events: want a URL")
	}
	ec := &EventsConfig{URL: d.Val()}
	if err := noArgs(d); err != nil {
		return nil, err
	}
	return ec, stringSettings(d, 1, "events", map[string]*string{"secret": &ec.Secret})
}

func parseAdmin(d *caddyfile.Dispenser) (*AdminConfig, error) {
	if err := noArgs(d); err != nil {
		return nil, err
	}
	ac := &AdminConfig{}
	seen := once{}
	for d.NextBlock(1) {
		if err := seen.check(d); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "api_key":
			if err := oneArg(d, &ac.APIKey); err != nil {
				return nil, err
			}
		case "claim":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return nil, d.Errf("admin: claim: want <name> [<value>]")
			}
			ac.Claim = args[0]
			if len(args) == 2 {
				ac.ClaimValue = args[1]
			}
		default:
			return nil, d.Errf("admin: unknown subdirective %q", d.Val())
		}
	}
	return ac, nil
}
