package flow

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
)

// Attr is one vendor-specific field of an update (Descope's
// add_to_login_ids and on_merge_use_existing): the rules keep it with the
// challenge and tell it in the events of the change, as an extra field of
// their JSON. Name is lower-case snake_case and none of the event's own
// fields; Value is one JSON value.
type Attr = events.Attr

// Bounds of UpdateRequest.Attributes, checked before anything is kept:
// every attribute rides in each open challenge of a million.
const (
	MaxAttributes     = 8
	MaxAttributeName  = 32  // bytes
	MaxAttributeValue = 128 // bytes, once compacted
)

// checkAttrs refuses attributes over the bounds or that no event could
// carry (ErrInvalidRequest), and returns them with compacted values, in
// memory of their own.
func checkAttrs(attrs []Attr) ([]Attr, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	if len(attrs) > MaxAttributes {
		return nil, fmt.Errorf("%w: %d attributes, at most %d", ErrInvalidRequest, len(attrs), MaxAttributes)
	}
	out := make([]Attr, len(attrs))
	for i, a := range attrs {
		if len(a.Name) > MaxAttributeName {
			return nil, fmt.Errorf("%w: an attribute name is over %d bytes", ErrInvalidRequest, MaxAttributeName)
		}
		var v bytes.Buffer
		if json.Compact(&v, a.Value) == nil && v.Len() > MaxAttributeValue {
			return nil, fmt.Errorf("%w: attribute %q: value over %d bytes", ErrInvalidRequest, a.Name, MaxAttributeValue)
		}
		out[i] = Attr{Name: a.Name, Value: v.Bytes()}
	}
	// Names, repeats and values that are not JSON.
	if err := events.CheckAttrs(attrs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return out, nil
}
