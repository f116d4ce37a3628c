package e2e

import (
	"bufio"
	"fmt"
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

// Settings that may be given more than once in one block (SPEC §2), plus
// `store http`'s `header`, one per header name.
var repeatable = map[string]bool{
	"sms": true, "template": true, "compat": true, "public_key_file": true,
	"require_verified": true, "header": true,
}

// repeatedSettings names the settings that a block inside a `phone`
// directive gives twice: the adapter refuses them ("already specified").
func repeatedSettings(text string, firstLine int) []string {
	type frame struct {
		inPhone bool
		seen    map[string]int
	}
	stack := []frame{{seen: map[string]int{}}}
	var bad []string
	for i, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		for j, tok := range f { // a comment starts at a token's start
			if strings.HasPrefix(tok, "#") {
				f = f[:j]
				break
			}
		}
		if len(f) == 0 {
			continue
		}
		if f[0] == "}" {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		top := stack[len(stack)-1]
		if top.inPhone && !repeatable[f[0]] {
			if prev, ok := top.seen[f[0]]; ok {
				bad = append(bad, fmt.Sprintf("%s at lines %d and %d", f[0], firstLine+prev, firstLine+i))
			}
			top.seen[f[0]] = i
		}
		if f[len(f)-1] == "{" {
			stack = append(stack, frame{inPhone: top.inPhone || f[0] == "phone", seen: map[string]int{}})
		}
	}
	return bad
}

// checkAdapts adapts one Caddyfile that starts at line `line` of file and
// is named by line `at` (a README block by its opening fence), failing on an
// error, on a warning other than the formatting hint, on a repeated
// singleton setting and on a config that holds no phone handler.
func checkAdapts(t *testing.T, file string, at, line int, text string) {
	t.Helper()
	for _, r := range repeatedSettings(text, line) {
		t.Errorf("%s:%d: a setting that may appear once is given twice: %s", file, at, r)
	}
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

// The checker itself: a repeated singleton is named, repeatable settings
// and settings of distinct blocks are not.
func TestReadmeRepeatedSettings(t *testing.T) {
	ok := "phone {\n\tsms log\n\tsms webhook https://x {\n\t\tsecret a\n\t}\n\tjwt {\n\t\tsecret s\n\t}\n\tsecret t\n}\n"
	if r := repeatedSettings(ok, 1); len(r) != 0 {
		t.Errorf("false positives: %v", r)
	}
	bad := "phone {\n\tstore memory\n\tstore sqlite # again\n}\n"
	if r := repeatedSettings(bad, 10); len(r) != 1 || r[0] != "store at lines 11 and 12" {
		t.Errorf("repeated store: got %v", r)
	}
}
