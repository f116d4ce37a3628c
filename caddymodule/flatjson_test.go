package caddymodule

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFlat: whatever decodeFlat accepts, encoding/json (as
// decodeJSON runs it: unknown fields refused, one object) accepts too
// and decodes to the same request; whatever it declines, it left as it
// was. Both request types that take the fast path are checked, starting
// from a request with fields already set.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range []string{
		`{"phone_number":"+33612345678"}`, ` { "phone_number" : "+33 6 12 34 56 78" , "locale":"fr" } `,
		`{}`, `{"code":"123456"}`, `{"code":"1","phone_number":"+1"}`, `{"phone_number":"a","phone_number":"b"}`,
		`{"Phone_Number":"x"}`, `{"phone_number":"\u0041"}`, `{"phone_number":1}`, `{"phone_number":null}`,
		`{"template_options":{"a":"b"}}`, `{"channel":"sms","provider_id":"p"}`, `{"phone_number":"x"} {}`,
		`{"phone_number":"x",}`, `{"phone_number":"x"`, `{"unknown":"x"}`, "{\"phone_number\":\"a\tb\"}",
		`{"phone_number":"é日本"}`, `[]`, `"x"`, ``, `{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // decodeJSON refuses it before
		}
		checkFlat(t, data, &updateRequest{Locale: "preset"}, &updateRequest{Locale: "preset"})
		checkFlat(t, data, &verifyRequest{PhoneNumber: "preset"}, &verifyRequest{PhoneNumber: "preset"})
	})
}

func checkFlat[T any, P interface {
	*T
	flatFields
}](t *testing.T, data []byte, fast, slow P) {
	before := *fast
	if !decodeFlat(data, fast) {
		if !reflect.DeepEqual(*fast, before) {
			t.Fatalf("%q declined but changed %+v to %+v", data, before, *fast)
		}
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(slow); err != nil || dec.More() {
		t.Fatalf("%q: decodeFlat accepted what encoding/json refuses (%v, more %v)", data, err, dec.More())
	}
	if !reflect.DeepEqual(*fast, *slow) {
		t.Fatalf("%q: decodeFlat %+v, encoding/json %+v", data, *fast, *slow)
	}
}
