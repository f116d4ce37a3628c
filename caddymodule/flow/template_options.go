package flow

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of an update's template options (SPEC §4): they are user text
// that reaches the SMS and the webhook body.
const (
	MaxTemplateOptions     = 8
	MaxTemplateOptionKey   = 32 // characters
	MaxTemplateOptionValue = 64 // characters
)

// CheckTemplateOptions refuses template options over the bounds, or with
// a control character in a key or value, with an ErrInvalidRequest naming
// field (the request's own name for them: template_options,
// templateOptions…) and the key at fault. Keys are checked in order, so
// the key named is the same on every try.
func CheckTemplateOptions(field string, opts map[string]string) error {
	if len(opts) > MaxTemplateOptions {
		return fmt.Errorf("%w: %s: %d keys, at most %d", ErrInvalidRequest, field, len(opts), MaxTemplateOptions)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := opts[k]
		switch {
		case k == "" || utf8.RuneCountInString(k) > MaxTemplateOptionKey:
			return fmt.Errorf("%w: %s: key %q: must be 1..%d characters", ErrInvalidRequest, field, k, MaxTemplateOptionKey)
		case strings.IndexFunc(k, unicode.IsControl) >= 0:
			return fmt.Errorf("%w: %s: key %q: control characters are not allowed", ErrInvalidRequest, field, k)
		case utf8.RuneCountInString(v) > MaxTemplateOptionValue:
			return fmt.Errorf("%w: %s.%s: value over %d characters", ErrInvalidRequest, field, k, MaxTemplateOptionValue)
		case strings.IndexFunc(v, unicode.IsControl) >= 0:
			return fmt.Errorf("%w: %s.%s: control characters are not allowed", ErrInvalidRequest, field, k)
		}
	}
	return nil
}
