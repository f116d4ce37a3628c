package caddymodule

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// flatPair is one key and value of a flat JSON object: v, or the string
// s when v is nil (a string held in an interface would cost an allocation
// on every error body).
type flatPair struct {
	k, s string
	v    any
}

// flatBody is a flat JSON object given as pairs, so that writing our own
// error body (native.errorBody) builds no map: writeJSON encodes it as
// encoding/json would the map of the same pairs.
type flatBody []flatPair

// appendFlatJSON appends m as encoding/json would write it (keys sorted,
// the same escapes), for the flat maps the error bodies are: string,
// integer and boolean values. It reports false, having appended nothing
// of m, for anything else, which the caller hands to encoding/json. Every
// refusal (401, 429, …) writes one of these, and under a flood the
// reflection-driven encoding of a map was a fifth of a refusal's cost.
func appendFlatJSON(b []byte, m map[string]any) ([]byte, bool) {
	if len(m) > maxFlat {
		return b, false
	}
	var pairs [maxFlat]flatPair
	p := pairs[:0]
	for k, v := range m {
		if v == nil {
			return b, false // null: encoding/json's
		}
		p = append(p, flatPair{k: k, v: v})
	}
	return appendFlatPairs(b, p)
}

// maxFlat bounds the pairs a flat body holds; more go to encoding/json.
const maxFlat = 16

// appendFlatPairs is appendFlatJSON of the map of p, whose keys are
// distinct; it sorts p.
func appendFlatPairs(b []byte, p []flatPair) ([]byte, bool) {
	if len(p) > maxFlat {
		return b, false
	}
	for _, kv := range p {
		switch kv.v.(type) {
		case nil, string, int, bool:
		default:
			return b, false
		}
		if !plainASCII(kv.k) {
			return b, false
		}
	}
	slices.SortFunc(p, func(x, y flatPair) int { return strings.Compare(x.k, y.k) })
	start := len(b)
	b = append(b, '{')
	for i, kv := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), kv.k...), '"', ':')
		v := kv.v
		if v == nil {
			v = kv.s
		}
		switch v := v.(type) {
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

// toMap is the map encoding/json is handed when the pairs are not flat.
func (f flatBody) toMap() map[string]any {
	m := make(map[string]any, len(f))
	for _, kv := range f {
		if m[kv.k] = kv.v; kv.v == nil {
			m[kv.k] = kv.s
		}
	}
	return m
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
