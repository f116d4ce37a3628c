package caddymodule

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// testVendorOptions are the options of "testvendor", a dialect registered
// only by this test, so the mechanism is checked apart from any vendor.
type testVendorOptions struct {
	AppID string `json:"app_id,omitempty"`
}

type testVendor struct{ opts *testVendorOptions }

func (testVendor) serve(http.ResponseWriter, *http.Request) error { return nil }
func (testVendor) errorBody(e *apiError) (int, any)               { return e.status, nil }

func init() {
	registerVendor(vendorDialect{name: "testvendor", prefix: "/testvendor/", routes: map[string]route{},
		options: func() (any, map[string]setting) {
			o := new(testVendorOptions)
			return o, map[string]setting{"app_id": str(&o.AppID)}
		},
		open: func(_ *Phone, opts any) (dialect, error) {
			o := opts.(*testVendorOptions)
			if o.AppID == "" {
				return nil, errTestNoAppID
			}
			return testVendor{o}, nil
		}})
}

var errTestNoAppID = errors.New("compat testvendor: app_id is required")

// `compat <vendor> { … }` reaches the vendor's options as JSON, and
// Provision hands them, decoded, to the vendor's dialect.
func TestCompatBlockOptions(t *testing.T) {
	p, err := parsePhone(t, `phone {
		compat descope reachfive
		compat testvendor {
			app_id my-app
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Compat, " "); got != "descope reachfive testvendor" {
		t.Fatalf("compat = %q", got)
	}
	if got := string(p.CompatOptions["testvendor"]); got != `{"app_id":"my-app"}` {
		t.Fatalf("compat_options = %s", got)
	}
	if len(p.CompatOptions) != 1 {
		t.Fatalf("options for vendors without any: %v", p.CompatOptions)
	}

	h := provisionPhone(t, `{"jwt":{"secret":"`+benchSecret+`"},"store":{"backend":"memory"},
		"sms":[{"provider":"log"}],"compat":["testvendor"],"compat_options":{"testvendor":{"app_id":"from-json"}}}`)
	if len(h.vendors) != 1 {
		t.Fatalf("vendors = %d", len(h.vendors))
	}
	d, ok := h.vendors[0].dialect.(testVendor)
	if !ok || d.opts.AppID != "from-json" {
		t.Fatalf("dialect options = %+v (%v)", d.opts, ok)
	}
}

// Every misuse of the block, and of compat_options, is refused with a
// message naming it.
func TestCompatBlockRefusals(t *testing.T) {
	for _, c := range []struct{ caddyfile, want string }{
		{"compat reachfive {\n app_id x\n}", `compat reachfive: unknown subdirective "app_id"`},
		{"compat testvendor descope {\n app_id x\n}", `compat testvendor descope: unknown subdirective "app_id"`},
		{"compat testvendor {\n app_id x\n app_id y\n}", "app_id: already specified"},
		{"compat testvendor {\n app_id\n}", "app_id: want exactly one value"},
		{"compat testvendor {\n nope 1\n}", `unknown subdirective "nope"`},
	} {
		_, err := parsePhone(t, "phone {\n"+c.caddyfile+"\n}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.caddyfile, err, c.want)
		}
	}
	base := `{"jwt":{"secret":"` + benchSecret + `"},"store":{"backend":"memory"},"sms":[{"provider":"log"}],`
	for _, c := range []struct{ json, want string }{
		{`"compat":["reachfive"],"compat_options":{"reachfive":{}}`, "compat reachfive: takes no options"},
		{`"compat":["reachfive"],"compat_options":{"testvendor":{"app_id":"a"}}`, `compat_options: "testvendor" is not under compat`},
		{`"compat":["testvendor"],"compat_options":{"testvendor":{"app_idd":"a"}}`, `compat testvendor: options: json: unknown field "app_idd"`},
		{`"compat":["testvendor"]`, "compat testvendor: app_id is required"},
	} {
		err := provisionError(t, base+c.json+"}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.json, err, c.want)
		}
	}
}
