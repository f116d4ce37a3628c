// Package events posts phone events (SPEC §8) to the legacy app.
//
// An event is written to an Outbox before the user's request is answered,
// then delivered by a background Dispatcher: POSTed as JSON, signed like
// the webhook SMS provider (X-Phone-Signature), retried with exponential
// backoff until the receiver answers 2xx. Delivery is at-least-once: a
// receiver may see an event twice (after a timeout, a restart, or two
// Caddy configs overlapping during a reload) and de-duplicates by its id,
// which never changes across retries. An event is never dropped: one that
// cannot be delivered stays in the outbox, and with a durable outbox (the
// sqlite and postgres stores) it is retried after a restart.
//
// The package knows nothing of Caddy; the glue in caddymodule picks the
// outbox from the configured store.
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event types.
const (
	// TypeUpdated: a number was stored at once (verification off, or a
	// user with no number or an unverified one); not verified yet.
	TypeUpdated = "phone.updated"
	// TypePending: a change of a verified number waits for its code.
	TypePending = "phone.pending"
	// TypeVerified: a code was verified; the number is the user's, verified.
	TypeVerified = "phone.verified"
	// TypeRemoved: the user's number was removed.
	TypeRemoved = "phone.removed"
)

// Event is one phone event. It never carries a code.
type Event struct {
	// ID is unique per event and stable across retries: receivers
	// de-duplicate with it. NewID makes one.
	ID   string
	Type string
	// UserID is the user the event is about.
	UserID string
	// PhoneNumber is the number the event is about (E.164): the new
	// number, or the pending one; "" (JSON null) for phone.removed.
	PhoneNumber string
	// PreviousPhoneNumber is the number replaced or removed; "" (JSON
	// null) when none.
	PreviousPhoneNumber string
	// OccurredAt is when the change happened; sent in RFC 3339, UTC.
	OccurredAt time.Time
	// Channel is how the code of the change went (sms, whatsapp, voice):
	// set on phone.pending, phone.verified and a phone.updated that sent
	// a code; "" (absent from the JSON) otherwise.
	Channel string
	// Attributes are vendor-specific fields of the call that made the
	// change (Descope's add_to_login_ids and on_merge_use_existing), sent
	// as extra fields of the JSON after the others, in this order; none
	// for most changes.
	Attributes []Attr
}

// Attr is one vendor-specific field of an event: a lower-case snake_case
// name that is none of the event's own fields, and one JSON value.
type Attr struct {
	Name  string
	Value json.RawMessage
}

// ownFields are the JSON fields of every event, which no Attr may take.
var ownFields = map[string]bool{"id": true, "type": true, "user_id": true, "phone_number": true,
	"previous_phone_number": true, "occurred_at": true, "channel": true}

// CheckAttrs reports whether attrs can go in an event: each name
// [a-z][a-z0-9_]*, none of the event's own fields, none twice; each
// value one JSON value.
func CheckAttrs(attrs []Attr) error {
	for i, a := range attrs {
		if !snakeCase(a.Name) || ownFields[a.Name] {
			return fmt.Errorf("events: attribute name %q: want lower-case snake_case, not an event field", a.Name)
		}
		for _, b := range attrs[:i] {
			if b.Name == a.Name {
				return fmt.Errorf("events: attribute %q given twice", a.Name)
			}
		}
		if !json.Valid(a.Value) {
			return fmt.Errorf("events: attribute %q: not one JSON value", a.Name)
		}
	}
	return nil
}

func snakeCase(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// wire is the JSON form of an Event.
type wire struct {
	ID                  string  `json:"id"`
	Type                string  `json:"type"`
	UserID              string  `json:"user_id"`
	PhoneNumber         *string `json:"phone_number"`
	PreviousPhoneNumber *string `json:"previous_phone_number"`
	OccurredAt          string  `json:"occurred_at"`
	Channel             string  `json:"channel,omitempty"`
}

// timeFormat is RFC 3339 in UTC with milliseconds, so that two events of
// one user in the same second still sort.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes {"id","type","user_id","phone_number",
// "previous_phone_number","occurred_at"} (numbers null when empty),
// "channel" when set, then the attributes, in order.
func (e Event) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(wire{
		ID: e.ID, Type: e.Type, UserID: e.UserID,
		PhoneNumber:         nullable(e.PhoneNumber),
		PreviousPhoneNumber: nullable(e.PreviousPhoneNumber),
		OccurredAt:          e.OccurredAt.UTC().Format(timeFormat),
		Channel:             e.Channel,
	})
	if err != nil || len(e.Attributes) == 0 {
		return b, err
	}
	if err := CheckAttrs(e.Attributes); err != nil {
		return nil, err
	}
	b = b[:len(b)-1] // the closing brace
	for _, a := range e.Attributes {
		v, err := json.Marshal(a.Value) // compacted, escaped as the rest
		if err != nil {
			return nil, err
		}
		b = append(append(append(append(b, `,"`...), a.Name...), `":`...), v...)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.OccurredAt)
	if err != nil {
		return fmt.Errorf("events: occurred_at: %w", err)
	}
	*e = Event{ID: w.ID, Type: w.Type, UserID: w.UserID, OccurredAt: t.UTC(), Channel: w.Channel}
	if w.PhoneNumber != nil {
		e.PhoneNumber = *w.PhoneNumber
	}
	if w.PreviousPhoneNumber != nil {
		e.PreviousPhoneNumber = *w.PreviousPhoneNumber
	}
	// Any other field is an attribute, kept in order.
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if name, _ := tok.(string); !ownFields[name] {
			e.Attributes = append(e.Attributes, Attr{Name: name, Value: v})
		}
	}
	return nil
}

// Check reports whether e can be put in an outbox: it needs an id and a
// type. Outbox implementations call it in Add.
func Check(e Event) error {
	switch {
	case e.ID == "":
		return errors.New("events: event without an id")
	case e.Type == "":
		return errors.New("events: event without a type")
	}
	return CheckAttrs(e.Attributes)
}

// NewID returns a fresh event id: "evt_" and 32 hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "evt_" + hex.EncodeToString(b[:])
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
