package numbers

import (
	"errors"
	"fmt"
	"testing"
)

// TestRecentAnswersAreParsedAnswers: a remembered answer is the one a
// fresh parse gives, for valid, refused and invalid inputs alike, also
// once more inputs than slots have taken turns in them.
func TestRecentAnswersAreParsedAnswers(t *testing.T) {
	c, err := Policy{Deny: []string{"RU"}, Types: []string{"mobile"}}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"+33612345678", "+33 6 12 34 56 78", "+33112345678", "+74951234567", "garbage", "+1", ""}
	for i := range 3 * recentSlots {
		inputs = append(inputs, fmt.Sprintf("+336%08d", i), fmt.Sprintf("+3312%07d", i))
	}
	for round := range 2 {
		for _, in := range inputs {
			got, gotErr := c.Normalize(in)
			want, wantErr := c.normalize(in)
			if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || errors.Is(gotErr, ErrInvalid) != errors.Is(wantErr, ErrInvalid) ||
				errors.Is(gotErr, ErrNotAllowed) != errors.Is(wantErr, ErrNotAllowed) {
				t.Fatalf("round %d, %q: got %q, %v; a fresh parse gives %q, %v", round, in, got, gotErr, want, wantErr)
			}
		}
	}
	if a := c.recent.get("+33612345678"); a != nil && a.number != "+33612345678" {
		t.Fatalf("slot holds %+v", a)
	}
}
