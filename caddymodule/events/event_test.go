package events_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
)

// Attributes follow the event's own fields in the JSON, in order, values
// compacted; they read back in the same order.
func TestEventAttributesJSON(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC)
	e := events.Event{ID: "evt_1", Type: events.TypePending, UserID: "u", PhoneNumber: "+447911123456",
		OccurredAt: at, Attributes: []events.Attr{
			{Name: "on_merge_use_existing", Value: json.RawMessage(`false`)},
			{Name: "add_to_login_ids", Value: json.RawMessage(`true`)},
			{Name: "vendor_meta", Value: json.RawMessage(` {"a": [1, "x<y"]} `)},
		}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"evt_1","type":"phone.pending","user_id":"u","phone_number":"+447911123456",` +
		`"previous_phone_number":null,"occurred_at":"2030-01-02T03:04:05.678Z",` +
		`"on_merge_use_existing":false,"add_to_login_ids":true,"vendor_meta":{"a":[1,"x\u003cy"]}}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	var back events.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	wantAttrs := []events.Attr{{Name: "on_merge_use_existing", Value: json.RawMessage(`false`)},
		{Name: "add_to_login_ids", Value: json.RawMessage(`true`)},
		{Name: "vendor_meta", Value: json.RawMessage(`{"a":[1,"x\u003cy"]}`)}}
	if !reflect.DeepEqual(back.Attributes, wantAttrs) || back.ID != e.ID || back.PhoneNumber != e.PhoneNumber {
		t.Fatalf("decoded %+v", back)
	}

	// Without attributes the JSON has the event's own fields only.
	e.Attributes = nil
	b, _ = json.Marshal(e)
	if strings.Contains(string(b), "add_to_login_ids") || !strings.HasSuffix(string(b), `"occurred_at":"2030-01-02T03:04:05.678Z"}`) {
		t.Fatalf("JSON without attributes: %s", b)
	}
	back = events.Event{}
	if err := json.Unmarshal(b, &back); err != nil || back.Attributes != nil {
		t.Fatalf("decoded %+v, %v", back, err)
	}
}

// An attribute must not shadow an event field, repeat, or carry anything
// but one JSON value; such an event is refused before an outbox holds it.
func TestEventAttributesChecked(t *testing.T) {
	for name, attrs := range map[string][]events.Attr{
		"own field":    {{Name: "user_id", Value: json.RawMessage(`"x"`)}},
		"channel":      {{Name: "channel", Value: json.RawMessage(`"sms"`)}},
		"twice":        {{Name: "a", Value: json.RawMessage(`1`)}, {Name: "a", Value: json.RawMessage(`2`)}},
		"empty name":   {{Name: "", Value: json.RawMessage(`1`)}},
		"upper case":   {{Name: "addToLoginIDs", Value: json.RawMessage(`true`)}},
		"quote":        {{Name: `a"b`, Value: json.RawMessage(`true`)}},
		"digit first":  {{Name: "1a", Value: json.RawMessage(`true`)}},
		"no value":     {{Name: "a"}},
		"two values":   {{Name: "a", Value: json.RawMessage(`1 2`)}},
		"broken value": {{Name: "a", Value: json.RawMessage(`{"a":`)}},
	} {
		e := events.Event{ID: "evt_1", Type: events.TypeUpdated, UserID: "u", Attributes: attrs}
		if err := events.CheckAttrs(attrs); err == nil {
			t.Errorf("%s: CheckAttrs accepted %+v", name, attrs)
		}
		if err := events.Check(e); err == nil {
			t.Errorf("%s: Check accepted it", name)
		}
		if _, err := events.Encode(e); err == nil {
			t.Errorf("%s: Encode accepted it", name)
		}
		if _, err := json.Marshal(e); err == nil {
			t.Errorf("%s: MarshalJSON accepted it", name)
		}
	}
	// The channel is an event field of its own: written after occurred_at
	// when set, read back, absent when not.
	e := events.Event{ID: "evt_2", Type: events.TypeVerified, UserID: "u", PhoneNumber: "+447911123456",
		OccurredAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Channel: "whatsapp"}
	b, err := json.Marshal(e)
	if want := `{"id":"evt_2","type":"phone.verified","user_id":"u","phone_number":"+447911123456","previous_phone_number":null,"occurred_at":"2030-01-02T03:04:05.000Z","channel":"whatsapp"}`; err != nil || string(b) != want {
		t.Fatalf("JSON %s, %v; want %s", b, err, want)
	}
	var back events.Event
	if err := json.Unmarshal(b, &back); err != nil || back.Channel != "whatsapp" || back.Attributes != nil {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	ok := []events.Attr{{Name: "add_to_login_ids", Value: json.RawMessage(`true`)}, {Name: "x_2", Value: json.RawMessage(`"s"`)}}
	if err := events.CheckAttrs(ok); err != nil {
		t.Fatal(err)
	}
}
