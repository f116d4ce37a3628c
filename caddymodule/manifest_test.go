package caddymodule

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"
	"golang.org/x/mod/modfile"
)

// The plugin manifest must agree with go.mod and with what this package
// registers, or a build from it would be wrong.
func TestManifestMatchesModule(t *testing.T) {
	var m struct {
		Name, Description, License string
		Caddy                      struct {
			ModuleID       string   `json:"module_id"`
			GoModule       string   `json:"go_module"`
			Directive      string   `json:"directive"`
			DirectiveOrder string   `json:"directive_order"`
			Commands       []string `json:"commands"`
		} `json:"caddy"`
		Compatibility struct{ Caddy, Go string } `json:"compatibility"`
		Build         struct {
			CaddyVersion string `json:"caddy_version"`
			Plugins      []struct {
				ModulePath string `json:"module_path"`
				Version    string `json:"version"`
			} `json:"plugins"`
			Replacements []struct{ Old, New string } `json:"replacements"`
		} `json:"build"`
	}
	raw, err := os.ReadFile("../xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	caddyVersion := ""
	for _, r := range mf.Require {
		if r.Mod.Path == "github.com/caddyserver/caddy/v2" {
			caddyVersion = r.Mod.Version
		}
	}
	checks := []struct{ what, got, want string }{
		{"caddy.go_module", m.Caddy.GoModule, mf.Module.Mod.Path},
		{"compatibility.caddy", m.Compatibility.Caddy, caddyVersion},
		{"build.caddy_version", m.Build.CaddyVersion, caddyVersion},
		{"compatibility.go", m.Compatibility.Go, mf.Go.Version},
		{"caddy.module_id", m.Caddy.ModuleID, string(Phone{}.CaddyModule().ID)},
		{"caddy.directive_order", m.Caddy.DirectiveOrder, "after forward_auth"},
		{"license", m.License, "MIT"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("xcaddy.json %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	// xcaddy imports the plugin path as a package: it must be the package
	// that registers the module (the module root holds no package), and
	// the replacement maps the whole Go module to the checkout.
	pkg := reflect.TypeOf(Phone{}).PkgPath()
	if len(m.Build.Plugins) != 1 || m.Build.Plugins[0].ModulePath != pkg {
		t.Errorf("build.plugins must name %s, the package that registers the module", pkg)
	}
	if len(m.Build.Replacements) != 1 || m.Build.Replacements[0].Old != mf.Module.Mod.Path || m.Build.Replacements[0].New != "." {
		t.Errorf("build.replacements must map %s to .", mf.Module.Mod.Path)
	}
	// The README's install command and CI's xcaddy step are this build.
	if len(m.Build.Plugins) == 1 && len(m.Build.Replacements) == 1 {
		with := "--with " + m.Build.Plugins[0].ModulePath
		replace := "--replace " + m.Build.Replacements[0].Old + "=" + m.Build.Replacements[0].New
		readme, err := os.ReadFile("../README.md")
		if err != nil {
			t.Fatal(err)
		}
		if cmd := "xcaddy build " + m.Build.CaddyVersion + " " + with + " " + replace; !strings.Contains(string(readme), cmd) {
			t.Errorf("README.md does not give the manifest's build: %s", cmd)
		}
		ci, err := os.ReadFile("../.ci/run")
		if err != nil {
			t.Fatal(err)
		}
		for _, arg := range []string{with, replace} {
			if !strings.Contains(string(ci), arg) {
				t.Errorf(".ci/run's xcaddy step does not pass %s", arg)
			}
		}
	}
	if _, err := caddy.GetModule(m.Caddy.ModuleID); err != nil {
		t.Errorf("module %s is not registered: %v", m.Caddy.ModuleID, err)
	}
	// The directive needs no `order` line: it adapts, and runs before the
	// handlers that would otherwise answer first.
	cf := "localhost {\n\trespond ok\n\t" + m.Caddy.Directive + " {\n\t\tjwt {\n\t\t\tsecret s\n\t\t}\n\t}\n}\n"
	out, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil || len(warns) > 0 {
		t.Fatalf("directive %q does not adapt without an order line: %v %v", m.Caddy.Directive, err, warns)
	}
	if p, r := strings.Index(string(out), `"handler":"phone"`), strings.Index(string(out), `"handler":"static_response"`); p < 0 || r < 0 || p > r {
		t.Errorf("phone is not ordered before respond: %s", out)
	}
	cmds := caddycmd.Commands()
	for _, name := range m.Caddy.Commands {
		if _, ok := cmds[name]; !ok {
			t.Errorf("command %q is not registered", name)
		}
	}
}
