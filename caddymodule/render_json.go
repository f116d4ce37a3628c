package caddymodule

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendFlatJSON appends m as encoding/json would write it (keys sorted,
// the same escapes), for the flat maps the error bodies are: string,
// integer and boolean values. It reports false, having appended nothing
// of m, for anything else, which the caller hands to encoding/json. Every
// refusal (401, 429, …) writes one of these maps, and under a flood the
// reflection-driven encoding of a map was a fifth of a refusal's cost.
func appendFlatJSON(b []byte, m map[string]any) ([]byte, bool) {
	if len(m) > 16 {
		return b, false
	}
	var keys [16]string
	sorted := keys[:0]
	for k, v := range m {
		switch v.(type) {
		case string, int, bool:
		default:
			return b, false
		}
		if !plainASCII(k) {
			return b, false
		}
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	start := len(b)
	b = append(b, '{')
	for i, k := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), k...), '"', ':')
		switch v := m[k].(type) {
		case string:
			if !plainASCII(v) {
				j, err := json.Marshal(v) // escapes, as encoding/json does
				if err != nil {
					return b[:start], false
				}
				b = append(b, j...)
				continue
			}
			b = append(append(append(b, '"'), v...), '"')
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		}
	}
	return append(b, '}'), true
}

// plainASCII is true when encoding/json writes s as is between quotes:
// printable ASCII without '"', '\\' or the HTML-escaped '<', '>', '&'.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
