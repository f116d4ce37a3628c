package caddymodule

// flatFields is a request body whose string fields decodeFlat may fill.
type flatFields interface {
	// flatKnows tells whether key names one of its string fields exactly.
	flatKnows(key string) bool
	// setFlat sets the field key names (flatKnows said yes) to value.
	setFlat(key, value string)
}

// maxFlatPairs bounds the pairs decodeFlat reads; more go to encoding/json.
const maxFlatPairs = 8

// decodeFlat is encoding/json's decoding of data into v (unknown fields
// refused, one object, nothing after it) for the one shape the hot calls
// send: a JSON object of string values without escapes or control
// characters, each under a key that names a string field of v exactly.
// It reports false, having set nothing, for anything else, which
// encoding/json then decodes, or refuses, as before. An update refused
// under a flood spent more on encoding/json than on the refusal
// (issue 13); FuzzDecodeFlat holds this to encoding/json's result.
// data is valid UTF-8 (decodeJSON checks it first).
func decodeFlat(data []byte, v flatFields) bool {
	var pairs [maxFlatPairs][2]string
	n := 0
	i := skipJSONSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipJSONSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			key, next, ok := plainJSONString(data, i)
			if !ok || !v.flatKnows(key) {
				return false
			}
			i = skipJSONSpace(data, next)
			if i == len(data) || data[i] != ':' {
				return false
			}
			value, next, ok := plainJSONString(data, skipJSONSpace(data, i+1))
			if !ok || n == len(pairs) {
				return false
			}
			pairs[n] = [2]string{key, value}
			n++
			i = skipJSONSpace(data, next)
			if i == len(data) {
				return false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return false
			}
			i = skipJSONSpace(data, i+1)
		}
	}
	if skipJSONSpace(data, i) != len(data) {
		return false
	}
	for _, p := range pairs[:n] { // in order: the last of a repeated key wins, as in encoding/json
		v.setFlat(p[0], p[1])
	}
	return true
}

func skipJSONSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads the JSON string at data[i:] when it holds no
// escape and no control character, and returns its contents and the
// index after its closing quote.
func plainJSONString(data []byte, i int) (string, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return string(data[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}
