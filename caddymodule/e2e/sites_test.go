package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// Two sites whose tokens come from different identity providers never see
// each other's users (SPEC §9). Sharing one store, they would: the users
// are keyed by the token's user ID alone, so IdP B's "alice" would read
// (and spend guesses on) IdP A's. Such a config is refused at load,
// naming both handlers, the store and the fix; with a store each, or one
// issuer, it loads.
func TestSitesWithOtherIdentityProvidersApart(t *testing.T) {
	sink := newSMSSink(t)
	second := httpPort + 1
	dir := t.TempDir()
	site := func(port int, jwt, secret, store string) string {
		return fmt.Sprintf(`:%d {
	phone {
		jwt {
			%s
		}
		secret %s
		store sqlite %s
		%s
	}
	respond "site %d"
}
`, port, jwt, secret, store, webhookLine(sink.srv.URL, ""), port)
	}
	cfg := func(jwtA, storeA, jwtB, storeB string) string {
		secret := newCacheSecret() // one per config: the two sites share its challenge cache
		return fmt.Sprintf("{\n\tadmin localhost:%d\n\thttp_port %d\n\thttps_port %d\n\tgrace_period 1s\n}\n", adminPort, httpPort, httpsPort) +
			site(httpPort, jwtA, secret, storeA) + site(second, jwtB, secret, storeB)
	}
	shared := filepath.Join(dir, "shared.db")
	idpA := "secret " + jwtSecret + "\n\t\t\tissuer https://idp-a.example"
	idpB := "secret " + jwtSecret + "\n\t\t\tissuer https://idp-b.example"

	for _, c := range []struct {
		name, jwtB string
		want       []string
	}{
		{"other issuer", idpB, []string{"jwt:", "issuer", "https://idp-a.example", "https://idp-b.example", "store sqlite " + shared, "own store"}},
		{"other key", "secret another-jwt-secret-0123456789abcdef", []string{"jwt:", "store sqlite " + shared, "own store"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			jwtA := idpA
			if c.name == "other key" {
				jwtA = "secret " + jwtSecret
			}
			status, body := loadRaw(t, cfg(jwtA, shared, c.jwtB, shared))
			if status == 200 {
				t.Fatal("two identity providers on one store loaded; want a refusal")
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Fatalf("refusal %q does not name %q", body, w)
				}
			}
			if strings.Contains(body, "another-jwt-secret") || strings.Contains(body, jwtSecret) {
				t.Fatalf("refusal shows a jwt secret: %s", body)
			}
		})
	}

	// A store each: each IdP's alice is her own.
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg(idpA, filepath.Join(dir, "a.db"), idpB, filepath.Join(dir, "b.db")), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e := &env{t: t, sink: sink, client: &http.Client{Timeout: 15 * time.Second}}
	at := func(port int) string { return fmt.Sprintf("http://localhost:%d", port) }
	user := uniqueUser(t, "alice")
	tokA, tokB := token(t, user, "iss", "https://idp-a.example"), token(t, user, "iss", "https://idp-b.example")
	e.doAt(at(httpPort), "POST", "/phone/update", tokA, map[string]any{"phone_number": "+14155552671"}).want(t, 200, "")
	e.doAt(at(httpPort), "POST", "/phone/verify", tokA, map[string]any{"code": e.sink.last(user).Code}).want(t, 200, "")
	if st := e.doAt(at(second), "GET", "/phone", tokB, nil).want(t, 200, ""); st.body["phone_number"] != nil {
		t.Fatalf("IdP B's %s reads IdP A's: %s", user, st.raw)
	}

	// One issuer, two audiences: one provider, one user base, one store.
	tester.InitServer(cfg(idpA+"\n\t\t\taudience app-a", shared, idpA+"\n\t\t\taudience app-b", shared), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e.reloaded()
	tok := func(aud string) string { return token(t, user, "iss", "https://idp-a.example", "aud", aud) }
	e.doAt(at(httpPort), "POST", "/phone/update", tok("app-a"), map[string]any{"phone_number": "+14155552672"}).want(t, 200, "")
	e.doAt(at(second), "POST", "/phone/verify", tok("app-b"), map[string]any{"code": e.sink.last(user).Code}).want(t, 200, "")

	// A reload may move both sites to another provider: the old config's
	// handlers, still loaded while the new one provisions, are not compared.
	tester.InitServer(cfg(idpB, shared, idpB, shared), "caddyfile")
}
