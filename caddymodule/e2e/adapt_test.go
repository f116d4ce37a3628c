package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// Every sub-directive of the Caddyfile godoc, adapted.
const fullCaddyfile = `:9080 {
	reverse_proxy 127.0.0.1:3000
	phone {
		prefix /api/phone
		verification off
		jwt {
			secret {env.PHONE_JWT_SECRET}
			public_key_file /etc/keys/a.pem
			public_key_file /etc/keys/b.pem
			jwks_url https://idp.example.com/.well-known/jwks.json
			algorithms RS256 ES256
			issuer https://idp.example.com
			audience legacy-app other-app
			user_claim uid
			leeway 30s
			project_id P2abc
			max_auth_age 15m
		}
		otp {
			length 8
			ttl 5m
			max_attempts 3
			resend_after 0s
		}
		limits {
			per_number 5 1h
			per_user 10 2h
			per_ip 30 1h
			verify_per_user 20 1h
			global 1000 1m
		}
		numbers {
			default_region US
			allow_countries US CA
			deny_countries FR
			types mobile fixed_line_or_mobile
		}
		store sqlite /var/lib/phone.db
		cache bigcache {
			max_size 64MiB
		}
		secret {env.PHONE_OTP_SECRET}
		sms log {
			name devlog
		}
		sms webhook https://sms-gw.internal/send {
			secret {env.SMS_HOOK_SECRET}
			name gw
		}
		channels sms whatsapp voice
		template "Your {app} code is {code}."
		template fr "Votre code {app} est {code}."
		template voice "Your {app} code: {code}."
		template voice fr "Votre code {app} : {code}."
		template whatsapp "*{code}* is your {app} code."
		app_name Acme
		inject_headers
		require_verified /checkout* /payouts*
	}
}
`

// What the phone handler must adapt to: snake_case keys, durations in
// nanoseconds, placeholders kept for run time.
const fullHandlerJSON = `{
	"handler": "phone",
	"prefix": "/api/phone",
	"verification": false,
	"jwt": {
		"secret": "{env.PHONE_JWT_SECRET}",
		"public_key_files": ["/etc/keys/a.pem", "/etc/keys/b.pem"],
		"jwks_url": "https://idp.example.com/.well-known/jwks.json",
		"algorithms": ["RS256", "ES256"],
		"issuer": "https://idp.example.com",
		"audience": ["legacy-app", "other-app"],
		"user_claim": "uid",
		"leeway": 30000000000,
		"project_id": "P2abc",
		"max_auth_age": 900000000000
	},
	"otp": {"length": 8, "ttl": 300000000000, "max_attempts": 3, "resend_after": 0},
	"limits": {
		"per_number": {"count": 5, "window": 3600000000000},
		"per_user": {"count": 10, "window": 7200000000000},
		"per_ip": {"count": 30, "window": 3600000000000},
		"verify_per_user": {"count": 20, "window": 3600000000000},
		"global": {"count": 1000, "window": 60000000000}
	},
	"numbers": {
		"default_region": "US",
		"allow_countries": ["US", "CA"],
		"deny_countries": ["FR"],
		"types": ["mobile", "fixed_line_or_mobile"]
	},
	"store": {"backend": "sqlite", "path": "/var/lib/phone.db"},
	"cache": {"backend": "bigcache", "max_size": 67108864},
	"secret": "{env.PHONE_OTP_SECRET}",
	"sms": [
		{"provider": "log", "name": "devlog"},
		{"provider": "webhook", "name": "gw", "url": "https://sms-gw.internal/send", "secret": "{env.SMS_HOOK_SECRET}"}
	],
	"template": "Your {app} code is {code}.",
	"templates": {"fr": "Votre code {app} est {code}."},
	"channels": ["sms", "whatsapp", "voice"],
	"channel_templates": {
		"voice": {"template": "Your {app} code: {code}.", "templates": {"fr": "Votre code {app} : {code}."}},
		"whatsapp": {"template": "*{code}* is your {app} code."}
	},
	"app_name": "Acme",
	"inject_headers": true,
	"require_verified": ["/checkout*", "/payouts*"]
}`

func TestAdaptEverySubdirective(t *testing.T) {
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(fullCaddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s", w.Message)
	}
	handlers := adaptedHandlers(t, out)
	// No `order` line needed: phone runs before reverse_proxy although it
	// comes after it in the site block.
	if len(handlers) != 2 || handlers[0]["handler"] != "phone" || handlers[1]["handler"] != "reverse_proxy" {
		t.Fatalf("handlers in order: %s", out)
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(fullHandlerJSON), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(handlers[0], want) {
		got, _ := json.MarshalIndent(handlers[0], "", "\t")
		t.Fatalf("adapted phone handler:\n%s\nwant:\n%s", got, fullHandlerJSON)
	}
}

// The store and cache backends other than the ones above, with their blocks.
func TestAdaptBackends(t *testing.T) {
	cases := []struct{ name, lines, key, want string }{
		{"store memory", "store memory", "store", `{"backend":"memory"}`},
		{"store postgres", `store postgres {env.DATABASE_URL} {
			schema phone
			users_table users
			id_column id
			phone_column phone
			verified_column phone_verified
			timeout 3s
		}`, "store", `{"backend":"postgres","dsn":"{env.DATABASE_URL}","schema":"phone","users_table":"users","id_column":"id",
			"phone_column":"phone","verified_column":"phone_verified","timeout":3000000000}`},
		{"store http", `store http http://legacy:3000 {
			get GET /internal/users/{user_id}
			set PATCH /internal/users/{user_id}
			header Authorization "Bearer {env.LEGACY_TOKEN}"
			phone_field phone
			verified_field phone_verified
			timeout 2s
		}`, "store", `{"backend":"http","url":"http://legacy:3000","get":{"method":"GET","path":"/internal/users/{user_id}"},
			"set":{"method":"PATCH","path":"/internal/users/{user_id}"},"headers":{"Authorization":"Bearer {env.LEGACY_TOKEN}"},"phone_field":"phone","verified_field":"phone_verified",
			"timeout":2000000000}`},
		{"cache redis", `cache redis redis://127.0.0.1:6379/0 {
			key_prefix phone:
			timeout 1s
		}`, "cache", `{"backend":"redis","url":"redis://127.0.0.1:6379/0","key_prefix":"phone:","timeout":1000000000}`},
		// The providers' channel settings (SPEC §2), after the base's sms log.
		{"sms twilio channels", `sms twilio {
			account_sid AC1
			auth_token {env.TWILIO_TOKEN}
			from +15550001111
			whatsapp_from whatsapp:+15550002222
			content_sid HX0123
		}`, "sms", `[{"provider":"log"},{"provider":"twilio","account_sid":"AC1","auth_token":"{env.TWILIO_TOKEN}","from":"+15550001111",
			"whatsapp_from":"whatsapp:+15550002222","content_sid":"HX0123"}]`},
		{"sms vonage channels", `sms vonage {
			api_key k
			api_secret {env.VONAGE_SECRET}
			from 15550001111
			whatsapp_from 15550002222
			whatsapp_template acme_otp
			application_id app-1
			private_key_file /etc/keys/vonage.pem
		}`, "sms", `[{"provider":"log"},{"provider":"vonage","api_key":"k","api_secret":"{env.VONAGE_SECRET}","from":"15550001111",
			"whatsapp_from":"15550002222","whatsapp_template":"acme_otp","application_id":"app-1","private_key_file":"/etc/keys/vonage.pem"}]`},
		{"sms messagebird channels", `sms messagebird {
			access_key {env.MB_KEY}
			originator +15550001111
			whatsapp_channel_id chan-1
			whatsapp_template acme_otp
			whatsapp_namespace ns-1
		}`, "sms", `[{"provider":"log"},{"provider":"messagebird","access_key":"{env.MB_KEY}","originator":"+15550001111",
			"whatsapp_channel_id":"chan-1","whatsapp_template":"acme_otp","whatsapp_namespace":"ns-1"}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := ":9080 {\n\tphone {\n\t\tjwt {\n\t\t\tsecret s\n\t\t}\n\t\tsms log\n\t\t" + c.lines + "\n\t}\n}\n"
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			got := phoneHandler(t, out)[c.key]
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s adapted to %v, want %v", c.key, got, want)
			}
		})
	}
}

// The smallest config adapts to the smallest JSON: defaults stay implicit.
func TestAdaptMinimal(t *testing.T) {
	caddyfileIn := ":9080 {\n\tphone {\n\t\tjwt {\n\t\t\tsecret s\n\t\t}\n\t\tsms log\n\t}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileIn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `{"handler":"phone","jwt":{"secret":"s"},"sms":[{"provider":"log"}]}`) {
		t.Fatalf("adapted: %s", out)
	}
}

// rawSite is a whole Caddyfile, admin endpoint kept, around a phone block
// given verbatim, with `store memory` added unless the block has a store
// line (so that a config that loads leaves no database file behind).
func rawSite(phone string) string {
	if !regexp.MustCompile(`(?m)^\s*store\s`).MatchString(phone) {
		phone = "\t\tstore memory\n" + phone
	}
	return fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n}\n:%d {\n\tphone {\n%s\n\t}\n\trespond ok\n}\n",
		adminPort, httpPort, httpPort, phone)
}

var lineRef = regexp.MustCompile(`Caddyfile:\d+`)

// Invalid configs fail to load, with a message naming the field (and, for
// what the Caddyfile parser refuses, the line).
func TestInvalidConfigRefused(t *testing.T) {
	jwtOK := "jwt {\n secret " + jwtSecret + "\n}\n"
	smsOK := "sms log\n"
	cases := []struct {
		name, phone string
		want        []string
		line        bool // a Caddyfile line number is expected
	}{
		{"unknown subdirective", jwtOK + smsOK + "bogus on", []string{`bogus`}, true},
		{"unknown jwt subdirective", "jwt {\n secret x\n color blue\n}\n" + smsOK, []string{"jwt", "color"}, true},
		{"positional prefix", "", nil, true}, // filled below
		{"otp length 3", jwtOK + smsOK + "otp {\n length 3\n}", []string{"length"}, false},
		{"otp length 11", jwtOK + smsOK + "otp {\n length 11\n}", []string{"length"}, false},
		{"otp length 0", jwtOK + smsOK + "otp {\n length 0\n}", []string{"length"}, false},
		{"otp ttl 0s", jwtOK + smsOK + "otp {\n ttl 0s\n}", []string{"ttl"}, false},
		{"otp ttl 500ms", jwtOK + smsOK + "otp {\n ttl 500ms\n}", []string{"ttl"}, false},
		{"otp max_attempts -1", jwtOK + smsOK + "otp {\n max_attempts -1\n}", []string{"max_attempts"}, false},
		{"otp resend_after negative", jwtOK + smsOK + "otp {\n resend_after -1s\n}", []string{"resend_after"}, true},
		{"bad duration", jwtOK + smsOK + "otp {\n ttl soon\n}", []string{"ttl", "soon"}, true},
		{"bad jwt leeway", "jwt {\n secret x\n leeway forever\n}\n" + smsOK, []string{"leeway"}, true},
		{"bad limit window", jwtOK + smsOK + "limits {\n per_number 5 forever\n}", []string{"per_number"}, true},
		{"limit without window", jwtOK + smsOK + "limits {\n per_user 5\n}", []string{"per_user"}, true},
		{"limit window over a day", jwtOK + smsOK + "limits {\n global 5 48h\n}", []string{"global"}, false},
		{"unknown default_region", jwtOK + smsOK + "numbers {\n default_region XX\n}", []string{"default_region", "XX"}, false},
		{"unknown allow_countries", jwtOK + smsOK + "numbers {\n allow_countries US ZZ\n}", []string{"allow_countries", "ZZ"}, false},
		{"unknown number type", jwtOK + smsOK + "numbers {\n types landline\n}", []string{"types", "landline"}, false},
		{"sms carrier-pigeon", jwtOK + "sms carrier-pigeon", []string{"carrier-pigeon"}, true},
		{"no sms", jwtOK, []string{"sms"}, false},
		{"no jwt block", smsOK, []string{"jwt"}, false},
		{"jwt without key", "jwt {\n issuer https://idp\n}\n" + smsOK, []string{"jwt"}, false},
		{"RS256 with only a secret", "jwt {\n secret x\n algorithms RS256\n}\n" + smsOK, []string{"algorithms", "RS256"}, false},
		{"alg none", "jwt {\n secret x\n algorithms none\n}\n" + smsOK, []string{"algorithms", "none"}, false},
		{"missing public_key_file", "jwt {\n public_key_file /nonexistent/key.pem\n}\n" + smsOK, []string{"public_key_file"}, false},
		{"prefix without slash", jwtOK + smsOK + "prefix phone", []string{"prefix"}, false},
		{"verification maybe", jwtOK + smsOK + "verification maybe", []string{"verification"}, true},
		{"short secret", jwtOK + smsOK + "secret short", []string{"secret"}, false},
		{"template without code", jwtOK + smsOK + `template "Hello {app}"`, []string{"template"}, false},
		{"unknown store", jwtOK + smsOK + "store mongo", []string{"store", "mongo"}, true},
		{"unknown cache", jwtOK + smsOK + "cache memcached", []string{"cache", "memcached"}, true},
		{"redis without secret", jwtOK + smsOK + "cache redis redis://127.0.0.1:1/0", []string{"secret", "redis"}, false},
		{"unknown store subdirective", jwtOK + smsOK + "store sqlite /tmp/x.db {\n users_table users\n}", []string{"users_table"}, true},
		{"tiny cache", jwtOK + smsOK + "cache bigcache {\n max_size 1KB\n}", []string{"max_size"}, false},
		// A setting that may appear once, given twice (SPEC §2).
		{"two stores", jwtOK + smsOK + "store memory\nstore sqlite /tmp/never.db", []string{"store", "already specified"}, true},
		{"two caches", jwtOK + smsOK + "cache bigcache\ncache bigcache", []string{"cache", "already specified"}, true},
		{"two secrets", jwtOK + smsOK + "secret 0123456789abcdef\nsecret 0123456789abcdeg", []string{"secret", "already specified"}, true},
		{"two jwt blocks", jwtOK + jwtOK + smsOK, []string{"jwt", "already specified"}, true},
		{"two events", jwtOK + smsOK + "events http://127.0.0.1:1/a\nevents http://127.0.0.1:1/b", []string{"events", "already specified"}, true},
		{"two admin blocks", jwtOK + smsOK + "admin {\n api_key 0123456789abcdefXYZ\n}\nadmin {\n api_key 0123456789abcdefXYZ\n}", []string{"admin", "already specified"}, true},
		{"jwt issuer twice", "jwt {\n secret x\n issuer a\n issuer b\n}\n" + smsOK, []string{"issuer", "already specified"}, true},
		{"otp ttl twice", jwtOK + smsOK + "otp {\n ttl 1m\n ttl 2m\n}", []string{"ttl", "already specified"}, true},
		{"limit twice", jwtOK + smsOK + "limits {\n global 5 1m\n global 6 1m\n}", []string{"global", "already specified"}, true},
		{"postgres schema twice", jwtOK + smsOK + "store postgres postgres://x {\n schema a\n schema b\n}", []string{"schema", "already specified"}, true},
		{"sms twilio from twice", jwtOK + "sms twilio {\n from +1\n from +2\n}", []string{"from", "already specified"}, true},
		{"template locale twice", jwtOK + smsOK + "template fr \"a {code}\"\ntemplate fr \"b {code}\"", []string{"template fr", "already specified"}, true},
		{"compat vendor twice", jwtOK + smsOK + "compat reachfive\ncompat reachfive", []string{"compat reachfive", "already specified"}, true},
		// Channels (SPEC §2, §4).
		{"unknown channel", jwtOK + smsOK + "channels sms fax", []string{"channels", "fax"}, true},
		{"channels twice", jwtOK + smsOK + "channels sms\nchannels voice", []string{"channels", "already specified"}, true},
		{"channel no provider carries", jwtOK + "sms twilio {\n account_sid AC1\n auth_token t\n from Acme\n}\nchannels sms whatsapp voice",
			[]string{"channels", "whatsapp", "no configured provider carries it", "whatsapp_from"}, false},
		{"voice template without code", jwtOK + smsOK + `template voice "Hello {app}"`, []string{"voice", "template", "{code}"}, false},
		{"voice template twice", jwtOK + smsOK + "template voice fr \"a {code}\"\ntemplate voice fr \"b {code}\"", []string{"template voice fr", "already specified"}, true},
		{"vonage key file missing", jwtOK + smsOK + "sms vonage {\n application_id a\n private_key_file /nonexistent/vonage.pem\n}", []string{"private_key_file"}, false},
		{"twilio whatsapp_from not a number", jwtOK + "sms twilio {\n account_sid AC1\n auth_token t\n whatsapp_from whatsapp:Acme\n}", []string{"whatsapp_from"}, false},
	}
	// The wrapper itself is a valid config.
	if status, body := loadRaw(t, rawSite(jwtOK+smsOK)); status != 200 {
		t.Fatalf("baseline config refused: %d %s", status, body)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := rawSite(c.phone)
			if c.name == "positional prefix" {
				cfg = strings.Replace(rawSite(jwtOK+smsOK), "phone {", "phone api {", 1)
				c.want = []string{"prefix"}
			}
			status, body := loadRaw(t, cfg)
			if status == 200 {
				t.Fatalf("config loaded; want it refused naming %v", c.want)
			}
			var msg struct{ Error string }
			if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Error == "" {
				t.Fatalf("%d %s: not a JSON error", status, body)
			}
			for _, w := range c.want {
				if !strings.Contains(msg.Error, w) {
					t.Errorf("error %q does not name %q", msg.Error, w)
				}
			}
			if c.line && !lineRef.MatchString(msg.Error) {
				t.Errorf("error %q names no Caddyfile line", msg.Error)
			}
		})
	}
}

// adaptedHandlers lists the handlers of an adapted config, route by route.
func adaptedHandlers(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]any `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var handlers []map[string]any
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			handlers = append(handlers, r.Handle...)
		}
	}
	return handlers
}

// phoneHandler is the phone handler's JSON in an adapted config of one
// site whose first handler it is.
func phoneHandler(t *testing.T, out []byte) map[string]any {
	t.Helper()
	h := adaptedHandlers(t, out)
	if len(h) == 0 {
		t.Fatalf("no handler in %s", out)
	}
	return h[0]
}
