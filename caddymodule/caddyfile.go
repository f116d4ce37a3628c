package caddymodule

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/sms"
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
// (each backend parses its own line and block: see the godoc of its
// module in store_*.go, cache_*.go and sms_*.go):
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
//	    channels sms|whatsapp|voice ...           # what a caller may ask for; default sms
//	    template [whatsapp|voice] [<locale>] "<text with {code} {app} {minutes}>"   # repeatable, once per channel and locale
//	    app_name <name>
//	    inject_headers
//	    require_verified <path...>               # repeatable
//	    events <url> [{ secret <secret> }]
//	    notify_previous
//	    compat descope|reachfive ...             # repeatable, each vendor once
//	    cors     <origin...>                     # scheme://host[:port]
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
	return parseBlock(d, 0, "phone", map[string]setting{
		"prefix":       str(&p.Prefix),
		"verification": p.parseVerification,
		"jwt":          p.parseJWT,
		"otp":          p.parseOTP,
		"limits":       p.parseLimits,
		"numbers":      p.parseNumbers,
		"store": func(d *caddyfile.Dispenser) (err error) {
			p.StoreRaw, err = backendModule(d, storeNamespace, "backend")
			return err
		},
		"cache": func(d *caddyfile.Dispenser) (err error) {
			p.CacheRaw, err = backendModule(d, cacheNamespace, "backend")
			return err
		},
		"sms": func(d *caddyfile.Dispenser) error {
			raw, err := backendModule(d, smsNamespace, "provider")
			p.SMSRaw = append(p.SMSRaw, raw)
			return err
		},
		"secret":   str(&p.Secret),
		"template": p.parseTemplate,
		"channels": func(d *caddyfile.Dispenser) error {
			if err := strs(&p.Channels)(d); err != nil {
				return err
			}
			if err := flow.CheckChannels(p.Channels); err != nil {
				return d.Err(err.Error())
			}
			return nil
		},
		"app_name":       str(&p.AppName),
		"inject_headers": flag(&p.InjectHeaders),
		"require_verified": func(d *caddyfile.Dispenser) error {
			var paths []string
			err := strs(&paths)(d)
			p.RequireVerified = append(p.RequireVerified, paths...)
			return err
		},
		"events":          p.parseEvents,
		"notify_previous": flag(&p.NotifyPrevious),
		"compat":          p.parseCompat,
		"admin":           p.parseAdmin,
		"cors":            strs(&p.CORS),
	}, "sms", "template", "compat", "require_verified")
}

func (p *Phone) parseVerification(d *caddyfile.Dispenser) error {
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

// parseTemplate parses `template [whatsapp|voice] [<locale>] "<text>"`:
// without a channel, SMS's (and any channel's without its own).
func (p *Phone) parseTemplate(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) >= 2 && (args[0] == sms.ChannelWhatsApp || args[0] == sms.ChannelVoice) {
		return p.parseChannelTemplate(d, args[0], args[1:])
	}
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
		return d.Errf("template: want [whatsapp|voice] [<locale>] \"<text>\"")
	}
	return nil
}

// parseChannelTemplate parses the rest of `template <channel> [<locale>] "<text>"`.
func (p *Phone) parseChannelTemplate(d *caddyfile.Dispenser, channel string, args []string) error {
	t := p.ChannelTemplates[channel]
	switch {
	case len(args) == 1 && t.Template != "":
		return d.Errf("template %s: the default template is already specified", channel)
	case len(args) == 1:
		t.Template = args[0]
	case len(args) == 2 && t.Templates[args[0]] != "":
		return d.Errf("template %s %s: already specified", channel, args[0])
	case len(args) == 2:
		if t.Templates == nil {
			t.Templates = map[string]string{}
		}
		t.Templates[args[0]] = args[1]
	default:
		return d.Errf("template: want [whatsapp|voice] [<locale>] \"<text>\"")
	}
	if p.ChannelTemplates == nil {
		p.ChannelTemplates = map[string]ChannelTemplates{}
	}
	p.ChannelTemplates[channel] = t
	return nil
}

// parseCompat parses `compat <vendor>…` or, for one vendor with options,
// `compat <vendor> { … }`.
func (p *Phone) parseCompat(d *caddyfile.Dispenser) error {
	var products []string
	if err := strs(&products)(d); err != nil {
		return err
	}
	for _, c := range products {
		if _, ok := vendorDialects[c]; !ok {
			return d.Errf("compat: unknown product %q (%s)", c, vendorNames())
		}
		if slices.Contains(p.Compat, c) {
			return d.Errf("compat %s: already specified", c)
		}
		p.Compat = append(p.Compat, c)
	}
	var opts any
	settings := map[string]setting{}
	if v := vendorDialects[products[0]]; len(products) == 1 && v.options != nil {
		opts, settings = v.options()
	}
	// A vendor without options, or several on one line, take no block:
	// parseBlock refuses any setting in one.
	name := strings.Join(products, " ")
	if err := parseBlock(d, d.Nesting(), "compat "+name, settings); err != nil {
		return err
	}
	if opts == nil {
		return nil
	}
	raw, err := json.Marshal(opts)
	if err != nil {
		return d.Errf("compat %s: %v", name, err)
	}
	if string(raw) == "{}" {
		return nil // no option set: the JSON stays as without a block
	}
	if p.CompatOptions == nil {
		p.CompatOptions = map[string]json.RawMessage{}
	}
	p.CompatOptions[name] = raw
	return nil
}

func (p *Phone) parseJWT(d *caddyfile.Dispenser) error {
	j := new(JWTConfig)
	p.JWT = j
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 1, "jwt", map[string]setting{
		"secret":          str(&j.Secret),
		"public_key_file": appendStr(&j.PublicKeyFiles),
		"jwks_url":        str(&j.JWKSURL),
		"algorithms":      strs(&j.Algorithms),
		"issuer":          str(&j.Issuer),
		"audience":        strs(&j.Audience),
		"user_claim":      str(&j.UserClaim),
		"leeway":          dur(&j.Leeway),
		"project_id":      str(&j.ProjectID),
		"max_auth_age":    dur(&j.MaxAuthAge),
	}, "public_key_file")
}

func (p *Phone) parseOTP(d *caddyfile.Dispenser) error {
	o := new(OTPConfig)
	p.OTP = o
	if err := noArgs(d); err != nil {
		return err
	}
	// The bounds are flow's own checks: the same message here, with the
	// line, as at load for a JSON config.
	checkDur := func(dst *caddy.Duration, check func(time.Duration) error) setting {
		return func(d *caddyfile.Dispenser) error {
			if err := dur(dst)(d); err != nil {
				return err
			}
			if err := check(time.Duration(*dst)); err != nil {
				return d.Err(err.Error())
			}
			return nil
		}
	}
	return parseBlock(d, 1, "otp", map[string]setting{
		"length":       num(&o.Length, flow.CheckCodeLength),
		"ttl":          checkDur(&o.TTL, flow.CheckTTL),
		"max_attempts": num(&o.MaxAttempts, flow.CheckMaxAttempts),
		"resend_after": func(d *caddyfile.Dispenser) error {
			o.ResendAfter = new(caddy.Duration) // set, even to 0
			return checkDur(o.ResendAfter, flow.CheckResendAfter)(d)
		},
	})
}

func (p *Phone) parseLimits(d *caddyfile.Dispenser) error {
	p.Limits = LimitsConfig{}
	if err := noArgs(d); err != nil {
		return err
	}
	settings := map[string]setting{}
	for _, name := range flow.LimitNames {
		settings[name] = func(d *caddyfile.Dispenser) error {
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
			p.Limits[name] = LimitConfig{Count: n, Window: caddy.Duration(w)}
			return nil
		}
	}
	return parseBlock(d, 1, "limits", settings)
}

func (p *Phone) parseNumbers(d *caddyfile.Dispenser) error {
	n := new(NumbersConfig)
	p.Numbers = n
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 1, "numbers", map[string]setting{
		"default_region":  str(&n.DefaultRegion),
		"allow_countries": strs(&n.AllowCountries),
		"deny_countries":  strs(&n.DenyCountries),
		"types":           strs(&n.Types),
	})
}

func (p *Phone) parseEvents(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("events: want a URL")
	}
	p.Events = &EventsConfig{URL: d.Val()}
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 1, "events", map[string]setting{"secret": str(&p.Events.Secret)})
}

func (p *Phone) parseAdmin(d *caddyfile.Dispenser) error {
	a := &AdminConfig{}
	p.Admin = a
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 1, "admin", map[string]setting{
		"api_key": str(&a.APIKey),
		"claim": func(d *caddyfile.Dispenser) error {
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("admin: claim: want <name> [<value>]")
			}
			a.Claim = args[0]
			if len(args) == 2 {
				a.ClaimValue = args[1]
			}
			return nil
		},
	})
}
