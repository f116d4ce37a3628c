package caddymodule

import (
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
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

// TestNativeErrorBodyIsItsMap: our error body, written from pairs with no
// map, is what encoding/json writes of the map the vendor dialects start
// from (nativeErrorBody), whatever the fields, flat or not.
func TestNativeErrorBodyIsItsMap(t *testing.T) {
	for _, e := range []*apiError{
		{status: 429, code: "rate_limited", message: "Too many requests; try again later.", fields: []flatPair{{k: "retry_after", v: 60}}},
		{status: 401, code: "unauthorized", message: "A valid bearer token is required."},
		{status: 400, code: "invalid_code", message: "Wrong <code> & \"more\".", fields: []flatPair{{k: "attempts_left", v: 2}, {k: "zeta", v: true}, {k: "alpha", s: "é"}}},
		{status: 422, code: "x", message: "y", fields: []flatPair{{k: "list", v: []string{"a"}}, {k: "f", v: 1.5}}},
		{status: 400, code: "x", message: "y", fields: []flatPair{{k: "error", s: "shadowed"}, {k: "message", s: "too"}}},
	} {
		want, err := json.Marshal(nativeErrorBody(e))
		if err != nil {
			t.Fatal(err)
		}
		status, body := native{}.errorBody(e)
		rec := httptest.NewRecorder()
		writeJSON(rec, status, body)
		if rec.Code != e.status || rec.Body.String() != string(want) {
			t.Errorf("%+v: %d %s, want %d %s", e, rec.Code, rec.Body, e.status, want)
		}
		// writeError appends it when it can: the same bytes.
		if b, ok := (native{}).appendErrorBody([]byte("keep"), e); ok && string(b) != "keep"+string(want) {
			t.Errorf("%+v: appended %s, want %s", e, b[4:], want)
		} else if !ok && string(b) != "keep" {
			t.Errorf("%+v: declined after appending %q", e, b)
		}
	}
}
