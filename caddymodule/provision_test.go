package caddymodule

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Every setting is checked before anything is opened (SPEC §2): a bad
// setting anywhere leaves no database file behind and opens no cache.
func TestConfigCheckedBeforeAnyStoreIsOpened(t *testing.T) {
	for _, c := range []struct{ name, extra, want string }{
		{"short admin key", `"admin":{"api_key":"short"}`, "admin: api_key"},
		{"bad limit", `"limits":{"global":{"count":5,"window":172800000000000}}`, "limits: global"},
		{"bad otp length", `"otp":{"length":3}`, "otp: length"},
		{"bad events url", `"events":{"url":"ftp://x"}`, "events: url"},
		{"bad webhook url", `"sms":[{"provider":"log"},{"provider":"webhook","url":"gw"}]`, "sms webhook: url"},
		{"bad number region", `"numbers":{"default_region":"XX"}`, "default_region"},
		{"redis without secret", `"cache":{"backend":"redis","url":"redis://127.0.0.1:1/0"}`, "secret: required with cache redis"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "phone.db")
			path, _ := json.Marshal(db)
			cfg := `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"sqlite","path":` + string(path) + `},` + c.extra
			if !strings.Contains(c.extra, `"sms"`) {
				cfg += `,"sms":[{"provider":"log"}]`
			}
			var p Phone
			if err := json.Unmarshal([]byte(cfg+"}"), &p); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := p.Provision(ctx)
			_ = p.Cleanup()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Provision: %v, want an error naming %q", err, c.want)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Fatalf("the database was created (%v) before the bad setting was refused", err)
			}
		})
	}
}
