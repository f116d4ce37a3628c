package flow

import (
	"strings"
	"testing"
)

// Template options reach the SMS: over 8 keys, a key over 32 characters
// or a value over 64, or a control character in either, is refused with
// ErrInvalidRequest naming the field and the key, before anything is
// stored or sent. At the bounds (in characters, not bytes) they pass.
func TestTemplateOptionsBounded(t *testing.T) {
	atBounds := map[string]string{}
	for i := range MaxTemplateOptions {
		atBounds[strings.Repeat("k", MaxTemplateOptionKey-1)+string(rune('a'+i))] = strings.Repeat("é", MaxTemplateOptionValue)
	}
	nine := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9"}
	cases := []struct {
		name  string
		opts  map[string]string
		wants []string // in the message
	}{
		{"nine keys", nine, []string{"template_options", "9 keys, at most 8"}},
		{"long value", map[string]string{"name": strings.Repeat("x", 65)}, []string{"template_options.name", "over 64"}},
		{"7000 characters", map[string]string{"name": strings.Repeat("x", 7000)}, []string{"template_options.name"}},
		{"long key", map[string]string{strings.Repeat("k", 33): "v"}, []string{"template_options", strings.Repeat("k", 33)}},
		{"empty key", map[string]string{"": "v"}, []string{"template_options", `key ""`}},
		{"line break in value", map[string]string{"a": "ok", "b": "x\r\nX-Injected: 1"}, []string{"template_options.b", "control"}},
		{"control in key", map[string]string{"k\x00": "v"}, []string{"template_options", "control"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, TemplateOptions: tc.opts})
			wantErr(t, err, ErrInvalidRequest)
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if h.sender.Count() != 0 || h.challenge("u") != nil {
				t.Fatal("refused options still sent a code or opened a challenge")
			}
			h.wantUser("u", "", false)
		})
	}
	h := newHarness(t)
	if _, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, TemplateOptions: atBounds}); err != nil {
		t.Fatalf("options at the bounds: %v", err)
	}
	if got := h.sender.Last(t).TemplateOptions; len(got) != MaxTemplateOptions {
		t.Fatalf("sent options %v", got)
	}
	// The dialect's own name for the field is the one told.
	err := CheckTemplateOptions("templateOptions", map[string]string{"name": strings.Repeat("x", 65)})
	if !strings.Contains(err.Error(), "templateOptions.name") {
		t.Fatalf("error %q", err)
	}
}
