package e2e

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// A fenced block of README.md: its info string, the line of its opening
// fence (1-based) and its text.
type fencedBlock struct {
	lang string
	line int
	text string
}

var fenceRE = regexp.MustCompile("^\\s*```\\s*([^`\\s]*)")

func readmeBlocks(t *testing.T, path string) []fencedBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []fencedBlock
		cur    *fencedBlock
		body   []string
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		m := fenceRE.FindStringSubmatch(sc.Text())
		switch {
		case m == nil && cur != nil:
			body = append(body, sc.Text())
		case m == nil:
		case cur == nil:
			cur = &fencedBlock{lang: m[1], line: n}
			body = nil
		default:
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("README.md:%d: fenced block never closed", cur.line)
	}
	return blocks
}

// adaptAt adapts a Caddyfile whose first line is line `line` of file, so
// that the adapter's errors name the file's own line numbers.
func adaptAt(file string, line int, text string) ([]byte, []caddyconfig.Warning, error) {
	src := strings.Repeat("\n", line-1) + text
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": file})
}

// A bare `phone { … }` block (after comments and blank lines) is wrapped in
// a site; anything else is a whole Caddyfile.
func bareDirective(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		return strings.HasPrefix(l, "phone ") || l == "phone"
	}
	return false
}

// checkAdapts adapts one Caddyfile that starts at line `line` of file and
// is named by line `at` (a README block by its opening fence), failing on an
// error (the parser refuses a repeated singleton setting), on a warning
// other than the formatting hint and on a config that holds no phone
// handler.
func checkAdapts(t *testing.T, file string, at, line int, text string) {
	t.Helper()
	out, warns, err := adaptAt(file, line, text)
	if err != nil {
		t.Errorf("%s:%d: block does not adapt: %v", file, at, err)
		return
	}
	for _, w := range warns {
		if strings.Contains(w.Message, "not formatted") {
			continue
		}
		t.Errorf("%s:%d: adapt warning: %s (line %d)", file, at, w.Message, w.Line)
	}
	if !strings.Contains(string(out), `"handler":"phone"`) {
		t.Errorf("%s:%d: block adapts to no phone handler: %s", file, at, out)
	}
}

// Every ```caddyfile block of README.md adapts, as does Caddyfile.example.
func TestReadmeCaddyfileBlocksAdapt(t *testing.T) {
	blocks := readmeBlocks(t, "../../README.md")
	n := 0
	for _, b := range blocks {
		switch b.lang {
		case "caddyfile":
		case "":
			t.Errorf("README.md:%d: fenced block without a language: tag it (caddyfile, sh, json, …)", b.line)
			continue
		default:
			continue
		}
		n++
		text := b.text
		line := b.line + 1
		if bareDirective(text) {
			// The fence's own line becomes the site's opening line.
			text, line = ":8080 {\n"+text+"}\n", b.line
		}
		checkAdapts(t, "README.md", b.line, line, text)
	}
	if n == 0 {
		t.Fatal("README.md has no ```caddyfile block")
	}

	raw, err := os.ReadFile("../../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	checkAdapts(t, "Caddyfile.example", 1, 1, string(raw))
}
