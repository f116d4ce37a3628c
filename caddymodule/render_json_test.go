package caddymodule

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestFlatJSONIsEncodingJSON: the error bodies' encoder writes what
// encoding/json writes, byte for byte, and declines what it cannot write.
func TestFlatJSONIsEncodingJSON(t *testing.T) {
	pieces := []string{"", "a", "Too many requests; try again later.", "<script>", "a&b", `q"uote`, `back\slash`,
		"tab\there", "nl\n", "\x00", "é", "日本", "\u2028", "\xff", "x>y", "retry_after", "error", "message"}
	values := func(r *rand.Rand) any {
		switch r.IntN(4) {
		case 0:
			return pieces[r.IntN(len(pieces))] + pieces[r.IntN(len(pieces))]
		case 1:
			return r.IntN(100000) - 50
		case 2:
			return r.IntN(2) == 0
		default:
			return pieces[r.IntN(len(pieces))]
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		m := map[string]any{}
		for range r.IntN(6) {
			m[pieces[r.IntN(len(pieces))]+pieces[r.IntN(len(pieces))]] = values(r)
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendFlatJSON(nil, m)
		if ok && string(got) != string(want) {
			t.Fatalf("%#v:\n got  %s\n want %s", m, got, want)
		}
		if !ok && len(got) != 0 {
			t.Fatalf("declined %#v but appended %q", m, got)
		}
	}
	// What a refusal writes takes the fast path.
	if _, ok := appendFlatJSON(nil, map[string]any{"error": "rate_limited", "message": "Too many requests; try again later.", "retry_after": 60}); !ok {
		t.Fatal("a 429 body was declined")
	}
	for _, m := range []map[string]any{{"f": 1.5}, {"n": nil}, {"l": []string{"x"}}, {"é": "key not ASCII"}} {
		if got, ok := appendFlatJSON([]byte("keep"), m); ok || string(got) != "keep" {
			t.Fatalf("%#v: %q, %v; want declined, nothing appended", m, got, ok)
		}
	}
}
