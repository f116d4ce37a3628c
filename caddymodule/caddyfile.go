package caddymodule

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

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

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
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
//	    otp     { length <n>  ttl <d>  max_attempts <n>  resend_after <d> }
//	    limits  { per_number|per_user|per_ip|verify_per_user|verify_per_ip|global <count> <window> }
//	    numbers { default_region <CC>  allow_countries <CC...>  deny_countries <CC...>  types <type...> }
//	    store   memory | sqlite [<path>]
//	    store   postgres <dsn> [{ schema <s>  users_table <t>  id_column <c>  phone_column <c>  verified_column <c>  timeout <d> }]
//	    store   http <base-url> [{ get <method> <path>  set <method> <path>  lookup <path>  header <name> <value>
//	                               phone_field <f>  verified_field <f>  id_field <f>  timeout <d> }]
//	    cache   bigcache [{ max_size <size> }]
//	    cache   redis <url> [{ key_prefix <p>  timeout <d> }]
//	    secret  <hmac key for codes at rest>
//	    sms     log [{ name <name> }]
//	    sms     webhook <url> [{ secret <secret>  name <name> }]
//	    sms     twilio { account_sid <sid>  auth_token <token>  from <sender>  messaging_service_sid <sid>  api_url <url>  name <name> }
//	    sms     vonage { api_key <key>  api_secret <secret>  from <sender>  api_url <url>  name <name> }
//	    sms     messagebird { access_key <key>  originator <sender>  api_url <url>  name <name> }
//	    template [<locale>] "<text with {code} {app} {minutes}>"
//	    app_name <name>
//	    inject_headers
//	    require_verified <path...>
//	    events <url> [{ secret <secret> }]
//	    notify_previous
//	    compat descope|reachfive ...
//	    admin { api_key <key>  claim <name> [<value>] }
//	}
func (p *Phone) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("phone takes no arguments (use `prefix` inside the block): %q", d.Val())
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "prefix":
			if err := oneArg(d, &p.Prefix); err != nil {
				return err
			}
		case "verification":
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
		case "jwt":
			if p.JWT == nil {
				p.JWT = new(JWTConfig)
			}
			if err := parseJWT(d, p.JWT); err != nil {
				return err
			}
		case "otp":
			if p.OTP == nil {
				p.OTP = new(OTPConfig)
			}
			if err := parseOTP(d, p.OTP); err != nil {
				return err
			}
		case "limits":
			if p.Limits == nil {
				p.Limits = new(LimitsConfig)
			}
			if err := parseLimits(d, p.Limits); err != nil {
				return err
			}
		case "numbers":
			if p.Numbers == nil {
				p.Numbers = new(NumbersConfig)
			}
			if err := parseNumbers(d, p.Numbers); err != nil {
				return err
			}
		case "store":
			sc, err := parseStore(d)
			if err != nil {
				return err
			}
			p.Store = sc
		case "cache":
			cc, err := parseCache(d)
			if err != nil {
				return err
			}
			p.Cache = cc
		case "secret":
			if err := oneArg(d, &p.Secret); err != nil {
				return err
			}
		case "sms":
			sc, err := parseSMS(d)
			if err != nil {
				return err
			}
			p.SMS = append(p.SMS, sc)
		case "template":
			args := d.RemainingArgs()
			switch len(args) {
			case 1:
				p.Template = args[0]
			case 2:
				if p.Templates == nil {
					p.Templates = map[string]string{}
				}
				p.Templates[args[0]] = args[1]
			default:
				return d.Errf("template: want [<locale>] \"<text>\"")
			}
		case "app_name":
			if err := oneArg(d, &p.AppName); err != nil {
				return err
			}
		case "inject_headers":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.InjectHeaders = true
		case "require_verified":
			paths, err := someArgs(d)
			if err != nil {
				return err
			}
			p.RequireVerified = append(p.RequireVerified, paths...)
		case "events":
			ec, err := parseEvents(d)
			if err != nil {
				return err
			}
			p.Events = ec
		case "notify_previous":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.NotifyPrevious = true
		case "compat":
			products, err := someArgs(d)
			if err != nil {
				return err
			}
			for _, c := range products {
				if c != "descope" && c != "reachfive" {
					return d.Errf("compat: unknown product %q (descope, reachfive)", c)
				}
			}
			p.Compat = append(p.Compat, products...)
		case "admin":
			ac, err := parseAdmin(d)
			if err != nil {
				return err
			}
			p.Admin = ac
		default:
			return d.Errf("phone: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func parseJWT(d *caddyfile.Dispenser, j *JWTConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(1) {
		name := d.Val()
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
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(1) {
		var err error
		switch d.Val() {
		case "length":
			err = intArg(d, &o.Length)
			if err == nil && (o.Length < 4 || o.Length > 10) {
				return d.Errf("otp: length must be 4..10 digits, got %d", o.Length)
			}
		case "ttl":
			err = durationArg(d, &o.TTL)
			if err == nil && (o.TTL < caddy.Duration(time.Second) || o.TTL > caddy.Duration(flow.MaxTTL)) {
				return d.Errf("otp: ttl must be between 1s and %s", flow.MaxTTL)
			}
		case "max_attempts":
			err = intArg(d, &o.MaxAttempts)
			if err == nil && o.MaxAttempts < 1 {
				return d.Errf("otp: max_attempts must be at least 1, got %d", o.MaxAttempts)
			}
		case "resend_after":
			var v caddy.Duration
			err = durationArg(d, &v)
			o.ResendAfter = &v
		default:
			return d.Errf("otp: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseLimits(d *caddyfile.Dispenser, l *LimitsConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(1) {
		name := d.Val()
		var slot **LimitConfig
		switch name {
		case "per_number":
			slot = &l.PerNumber
		case "per_user":
			slot = &l.PerUser
		case "per_ip":
			slot = &l.PerIP
		case "verify_per_user":
			slot = &l.VerifyPerUser
		case "verify_per_ip":
			slot = &l.VerifyPerIP
		case "global":
			slot = &l.Global
		default:
			return d.Errf("limits: unknown subdirective %q", name)
		}
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("limits: %s: want <count> <window>", name)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return d.Errf("limits: %s: count must be a whole number >= 0, got %q", name, args[0])
		}
		w, err := caddy.ParseDuration(args[1])
		if err != nil || w <= 0 {
			return d.Errf("limits: %s: bad window %q", name, args[1])
		}
		*slot = &LimitConfig{Count: n, Window: caddy.Duration(w)}
	}
	return nil
}

func parseNumbers(d *caddyfile.Dispenser, n *NumbersConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(1) {
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

func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("store: want memory, sqlite [<path>], postgres <dsn> or http <url>")
	}
	sc := &StoreConfig{Backend: d.Val()}
	switch sc.Backend {
	case "memory":
	case "sqlite":
		if d.NextArg() {
			sc.Path = d.Val()
		}
	case "postgres":
		if !d.NextArg() {
			return nil, d.Errf("store postgres: want a DSN")
		}
		sc.DSN = d.Val()
	case "http":
		if !d.NextArg() {
			return nil, d.Errf("store http: want the app's base URL")
		}
		sc.URL = d.Val()
	default:
		return nil, d.Errf("store: unknown backend %q (memory, sqlite, postgres, http)", sc.Backend)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		name := d.Val()
		var err error
		switch {
		case sc.Backend == "postgres" && name == "schema":
			err = oneArg(d, &sc.Schema)
		case sc.Backend == "postgres" && name == "users_table":
			err = oneArg(d, &sc.UsersTable)
		case sc.Backend == "postgres" && name == "id_column":
			err = oneArg(d, &sc.IDColumn)
		case sc.Backend == "postgres" && name == "phone_column":
			err = oneArg(d, &sc.PhoneColumn)
		case sc.Backend == "postgres" && name == "verified_column":
			err = oneArg(d, &sc.VerifiedColumn)
		case sc.Backend == "http" && (name == "get" || name == "set"):
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("store http: %s: want <method> <path>", name)
			}
			ep := &HTTPEndpoint{Method: args[0], Path: args[1]}
			if name == "get" {
				sc.Get = ep
			} else {
				sc.Set = ep
			}
		case sc.Backend == "http" && name == "lookup":
			err = oneArg(d, &sc.Lookup)
		case sc.Backend == "http" && name == "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("store http: header: want <name> <value>")
			}
			if sc.Headers == nil {
				sc.Headers = map[string]string{}
			}
			sc.Headers[args[0]] = args[1]
		case sc.Backend == "http" && name == "phone_field":
			err = oneArg(d, &sc.PhoneField)
		case sc.Backend == "http" && name == "verified_field":
			err = oneArg(d, &sc.VerifiedField)
		case sc.Backend == "http" && name == "id_field":
			err = oneArg(d, &sc.IDField)
		case (sc.Backend == "postgres" || sc.Backend == "http") && name == "timeout":
			err = durationArg(d, &sc.Timeout)
		default:
			return nil, d.Errf("store %s: unknown subdirective %q", sc.Backend, name)
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func parseCache(d *caddyfile.Dispenser) (*CacheConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("cache: want bigcache or redis <url>")
	}
	cc := &CacheConfig{Backend: d.Val()}
	switch cc.Backend {
	case "bigcache":
	case "redis":
		if !d.NextArg() {
			return nil, d.Errf("cache redis: want a redis:// URL")
		}
		cc.URL = d.Val()
	default:
		return nil, d.Errf("cache: unknown backend %q (bigcache, redis)", cc.Backend)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		name := d.Val()
		switch {
		case cc.Backend == "bigcache" && name == "max_size":
			var s string
			if err := oneArg(d, &s); err != nil {
				return nil, err
			}
			n, err := humanize.ParseBytes(s)
			if err != nil {
				return nil, d.Errf("cache: max_size: bad size %q", s)
			}
			cc.MaxSize = int64(n)
		case cc.Backend == "redis" && name == "key_prefix":
			if err := oneArg(d, &cc.KeyPrefix); err != nil {
				return nil, err
			}
		case cc.Backend == "redis" && name == "timeout":
			if err := durationArg(d, &cc.Timeout); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("cache %s: unknown subdirective %q", cc.Backend, name)
		}
	}
	return cc, nil
}

func parseSMS(d *caddyfile.Dispenser) (SMSConfig, error) {
	if !d.NextArg() {
		return SMSConfig{}, d.Errf("sms: want a provider (log, webhook, twilio, vonage, messagebird)")
	}
	sc := SMSConfig{Provider: d.Val()}
	// Each provider's subdirectives, all of one value.
	fields := map[string]*string{"name": &sc.Name}
	switch sc.Provider {
	case "log":
	case "webhook":
		if !d.NextArg() {
			return sc, d.Errf("sms webhook: want a URL")
		}
		sc.URL = d.Val()
		fields["secret"] = &sc.Secret
	case "twilio":
		fields["account_sid"], fields["auth_token"], fields["from"] = &sc.AccountSID, &sc.AuthToken, &sc.From
		fields["messaging_service_sid"], fields["api_url"] = &sc.MessagingServiceSID, &sc.APIURL
	case "vonage":
		fields["api_key"], fields["api_secret"], fields["from"], fields["api_url"] = &sc.APIKey, &sc.APISecret, &sc.From, &sc.APIURL
	case "messagebird":
		fields["access_key"], fields["originator"], fields["api_url"] = &sc.AccessKey, &sc.Originator, &sc.APIURL
	default:
		return sc, d.Errf("sms: unknown provider %q (log, webhook, twilio, vonage, messagebird)", sc.Provider)
	}
	if d.NextArg() {
		return sc, d.ArgErr()
	}
	for d.NextBlock(1) {
		dst, ok := fields[d.Val()]
		if !ok {
			return sc, d.Errf("sms %s: unknown subdirective %q", sc.Provider, d.Val())
		}
		if err := oneArg(d, dst); err != nil {
			return sc, err
		}
	}
	return sc, nil
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

func parseEvents(d *caddyfile.Dispenser) (*EventsConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("events: want a URL")
	}
	ec := &EventsConfig{URL: d.Val()}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		switch d.Val() {
		case "secret":
			if err := oneArg(d, &ec.Secret); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("events: unknown subdirective %q", d.Val())
		}
	}
	return ec, nil
}

func parseAdmin(d *caddyfile.Dispenser) (*AdminConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	ac := &AdminConfig{}
	for d.NextBlock(1) {
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
