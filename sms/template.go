package sms

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DefaultTemplate is used when Templates.Default is empty.
const DefaultTemplate = "Your {app} code is {code}. It expires in {minutes} min."

// maxLocaleLen bounds a requested locale (BCP 47 tags in practice are short);
// longer input matches nothing rather than being scanned.
const maxLocaleLen = 35

// Templates are the `template` lines: one default and one per locale.
type Templates struct {
	Default  string            // "" means DefaultTemplate
	ByLocale map[string]string // "fr", "fr-CA" (or "fr_CA") → text
}

// Vars fill a template. Options are the request's template_options; they
// fill {key} but cannot override code, app or minutes.
type Vars struct {
	Code    string
	App     string
	Minutes int
	Options map[string]string
}

// Render picks the template for locale — the exact tag (case-insensitive,
// "_" ≡ "-"), else its base language, else the default — and fills it.
// usedLocale is the canonical tag of the template used ("en" for the default).
func (t Templates) Render(locale string, v Vars) (body, usedLocale string) {
	text, used := t.pick(locale)
	return expand(text, v), used
}

func (t Templates) pick(locale string) (text, used string) {
	if locale != "" && len(locale) <= maxLocaleLen && len(t.ByLocale) > 0 {
		want := canonicalLocale(locale)
		base, _, _ := strings.Cut(want, "-")
		var baseKey string
		for k := range t.ByLocale {
			ck := canonicalLocale(k)
			if ck == want {
				return t.ByLocale[k], ck
			}
			if ck == base {
				baseKey = k
			}
		}
		if baseKey != "" {
			return t.ByLocale[baseKey], base
		}
	}
	if t.Default == "" {
		return DefaultTemplate, "en"
	}
	return t.Default, "en"
}

// canonicalLocale writes a tag as "fr-CA": language lower case, later
// subtags upper case when they are regions (2 letters), lower otherwise.
func canonicalLocale(s string) string {
	parts := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '-' || r == '_' })
	for i, p := range parts {
		if i > 0 && len(p) == 2 {
			parts[i] = strings.ToUpper(p)
		} else {
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-")
}

// expand replaces {name} in one pass: replacement values are never scanned
// again, so a template option holding "{code}" stays literal text.
func expand(text string, v Vars) string {
	var b strings.Builder
	b.Grow(len(text) + len(v.Code) + len(v.App) + 8)
	for {
		open := strings.IndexByte(text, '{')
		if open < 0 {
			b.WriteString(text)
			return b.String()
		}
		closing := strings.IndexByte(text[open+1:], '}')
		if closing < 0 {
			b.WriteString(text)
			return b.String()
		}
		closing += open + 1
		name := text[open+1 : closing]
		if strings.IndexByte(name, '{') >= 0 {
			// "{{code}": keep the first brace, retry from the next one.
			b.WriteString(text[:open+1])
			text = text[open+1:]
			continue
		}
		b.WriteString(text[:open])
		if val, ok := lookup(name, v); ok {
			b.WriteString(val)
		} else {
			b.WriteString(text[open : closing+1])
		}
		text = text[closing+1:]
	}
}

func lookup(name string, v Vars) (string, bool) {
	switch name {
	case "code":
		return v.Code, true
	case "app":
		return v.App, true
	case "minutes":
		return strconv.Itoa(v.Minutes), true
	}
	val, ok := v.Options[name]
	return val, ok
}

// Validate checks every template carries {code} and locale keys are
// well-formed and distinct once canonical.
func (t Templates) Validate() error {
	if t.Default != "" && !strings.Contains(t.Default, "{code}") {
		return fmt.Errorf("template: the default template must contain {code}")
	}
	keys := make([]string, 0, len(t.ByLocale))
	for k := range t.ByLocale {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error messages
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		if !validLocale(k) {
			return fmt.Errorf("template %q: invalid locale", k)
		}
		ck := canonicalLocale(k)
		if prev, dup := seen[ck]; dup {
			return fmt.Errorf("template %q: same locale as %q", k, prev)
		}
		seen[ck] = k
		if !strings.Contains(t.ByLocale[k], "{code}") {
			return fmt.Errorf("template %s: must contain {code}", k)
		}
	}
	return nil
}

// validLocale accepts tag-shaped keys: ASCII letters and digits in subtags
// of 1–8, separated by "-" or "_".
func validLocale(s string) bool {
	if s == "" || len(s) > maxLocaleLen {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == '_':
			if n == 0 {
				return false
			}
			n = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			n++
			if n > 8 {
				return false
			}
		default:
			return false
		}
	}
	return n > 0
}
