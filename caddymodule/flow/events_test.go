package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// recEvents records emitted events and fails on demand.
type recEvents struct {
	mu   sync.Mutex
	got  []events.Event
	fail bool
}

var errEmit = errors.New("fake outbox down")

func (r *recEvents) Emit(ctx context.Context, e events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errEmit
	}
	r.got = append(r.got, e)
	return nil
}

func (r *recEvents) take() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// eventsHarness is a harness whose Service emits to rec and logs to logs.
type eventsHarness struct {
	*harness
	rec  *recEvents
	logs *observer.ObservedLogs
}

func newEventsHarness(t *testing.T, mutate ...func(*Config)) *eventsHarness {
	t.Helper()
	h := newHarness(t, mutate...)
	core, logs := observer.New(zapcore.DebugLevel)
	rec := &recEvents{}
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Events: rec, Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.svc = svc
	return &eventsHarness{harness: h, rec: rec, logs: logs}
}

// wantEvents checks the events emitted since the last call, in order.
func (h *eventsHarness) wantEvents(want ...events.Event) {
	h.t.Helper()
	got := h.rec.take()
	if len(got) != len(want) {
		h.t.Fatalf("events = %+v, want %d: %+v", got, len(want), want)
	}
	for i, g := range got {
		w := want[i]
		if g.Type != w.Type || g.UserID != w.UserID || g.PhoneNumber != w.PhoneNumber ||
			g.PreviousPhoneNumber != w.PreviousPhoneNumber || !sameAttrs(g.Attributes, w.Attributes) {
			h.t.Fatalf("event %d = %+v, want %+v", i, g, w)
		}
		if !strings.HasPrefix(g.ID, "evt_") || len(g.ID) != 36 {
			h.t.Fatalf("event %d id %q", i, g.ID)
		}
		if !g.OccurredAt.Equal(h.clock.Now()) || g.OccurredAt.Location() != time.UTC {
			h.t.Fatalf("event %d occurred_at %v, want %v in UTC", i, g.OccurredAt, h.clock.Now())
		}
	}
}

// sameAttrs compares attributes, nil and empty alike.
func sameAttrs(a, b []Attr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// descopeAttrs are the attributes compat_descope.go passes for Descope's
// addToLoginIDs and onMergeUseExisting (nil: not given).
func descopeAttrs(login, merge *bool) []Attr {
	var attrs []Attr
	if login != nil {
		attrs = append(attrs, Attr{Name: "add_to_login_ids", Value: json.RawMessage(strconv.FormatBool(*login))})
	}
	if merge != nil {
		attrs = append(attrs, Attr{Name: "on_merge_use_existing", Value: json.RawMessage(strconv.FormatBool(*merge))})
	}
	return attrs
}

func ev(typ, user, number, previous string) events.Event {
	return events.Event{Type: typ, UserID: user, PhoneNumber: number, PreviousPhoneNumber: previous}
}

func ptr(b bool) *bool { return &b }

// Rule 2 stores the number at once (phone.updated); verifying it replaces
// nothing (no previous number).
func TestEventsFirstNumber(t *testing.T) {
	h := newEventsHarness(t)
	h.mustUpdate("u1", numFR, StatusUpdated)
	h.wantEvents(ev(events.TypeUpdated, "u1", numFR, ""))
	h.mustVerify("u1", h.sender.LastCode(t))
	h.wantEvents(ev(events.TypeVerified, "u1", numFR, ""))

	// An unverified number replaced by another under rule 2.
	h.mustUpdate("u2", numFR, StatusUpdated)
	h.clock.Advance(time.Minute)
	h.mustUpdate("u2", numUK, StatusUpdated)
	h.rec.take()
	h.mustVerify("u2", h.sender.LastCode(t))
	h.wantEvents(ev(events.TypeVerified, "u2", numUK, ""))
}

// The same unverified number typed again after the cooldown stores
// nothing new: no event, though a code goes out again.
func TestEventsRule2SameNumberNoEvent(t *testing.T) {
	h := newEventsHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.rec.take()
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.wantEvents()
}

// Rule 3 emits phone.pending (the number in force is the previous one);
// the verify emits phone.verified with the number it replaced.
func TestEventsPendingThenVerified(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	h.rec.take()
	h.mustUpdate("u", numUK, StatusPending)
	h.wantEvents(ev(events.TypePending, "u", numUK, numFR))
	h.mustVerify("u", h.sender.LastCode(t))
	h.wantEvents(ev(events.TypeVerified, "u", numUK, numFR))
}

// Rule 4 and a cancel change nothing and emit nothing; nor do a wrong
// code, a resend, or a verify that loses to another holder.
func TestEventsNotForNonChanges(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	h.rec.take()
	h.mustUpdate("u", numFR, StatusUnchanged)
	h.mustUpdate("u", numUK, StatusPending)
	h.rec.take()
	if err := h.svc.Cancel(h.ctx, "u"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numUK, StatusPending)
	h.rec.take()
	_, err := h.verify("u", wrongCodeFor(h.sender.LastCode(t)))
	wantCodeError(t, err, 2)
	h.clock.Advance(time.Minute)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	h.wantEvents()

	h.seedVerified("other", numDE)
	h.rec.take()
	h.mustUpdate("v", numDE, StatusUpdated)
	h.rec.take() // phone.updated: v stores the number unverified
	_, err = h.verify("v", h.sender.LastCode(t))
	wantErr(t, err, ErrPhoneInUse)
	h.wantEvents()
}

// With verification off a number is stored at once: phone.updated, with
// the number it replaced.
func TestEventsVerificationOff(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) { c.Verification = false })
	h.mustUpdate("u", numFR, StatusUpdated)
	h.wantEvents(ev(events.TypeUpdated, "u", numFR, ""))
	h.mustUpdate("u", numUK, StatusUpdated)
	h.wantEvents(ev(events.TypeUpdated, "u", numUK, numFR))
	h.mustUpdate("u", numUK, StatusUpdated) // the same unverified number: nothing new
	h.wantEvents()
}

// An update's attributes (Descope's addToLoginIDs / onMergeUseExisting,
// or any other) are kept with the challenge, through a resend, and told in
// phone.verified; other calls carry none.
func TestEventsAttributes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		attrs         []Attr // as given
		want          []Attr // as told: values compacted
		pendingChange bool
	}{
		{"true false rule 2", descopeAttrs(ptr(true), ptr(false)), descopeAttrs(ptr(true), ptr(false)), false},
		{"false true rule 3", descopeAttrs(ptr(false), ptr(true)), descopeAttrs(ptr(false), ptr(true)), true},
		{"only login", descopeAttrs(ptr(true), nil), descopeAttrs(ptr(true), nil), true},
		{"none", nil, nil, true},
		{"other vendor, compacted", []Attr{{Name: "vendor_meta", Value: json.RawMessage(` { "kind" : "sms" } `)}},
			[]Attr{{Name: "vendor_meta", Value: json.RawMessage(`{"kind":"sms"}`)}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newEventsHarness(t)
			want := StatusUpdated
			var previous string
			if tc.pendingChange {
				h.seedVerified("u", numFR)
				want, previous = StatusPending, numFR
			}
			h.rec.take()
			res, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numUK, Attributes: tc.attrs})
			if err != nil || res.Status != want {
				t.Fatalf("Update = %+v, %v", res, err)
			}
			first := events.TypeUpdated
			if tc.pendingChange {
				first = events.TypePending
			}
			e := ev(first, "u", numUK, previous)
			e.Attributes = tc.want
			h.wantEvents(e)
			h.clock.Advance(time.Minute)
			if _, err := h.resend("u"); err != nil {
				t.Fatal(err)
			}
			h.mustVerify("u", h.sender.LastCode(t))
			e.Type = events.TypeVerified
			h.wantEvents(e)
		})
	}
}

// An event that cannot be recorded never fails the user's request; it is
// logged.
func TestEventsEmitFailureDoesNotFailRequest(t *testing.T) {
	h := newEventsHarness(t)
	h.rec.fail = true
	h.mustUpdate("u", numFR, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
	h.wantUser("u", numFR, true)
	if n := h.logs.FilterMessage("phone event not recorded").Len(); n != 2 {
		t.Fatalf("%d log lines for the failed events, want 2", n)
	}
	for _, l := range h.logs.All() {
		for _, f := range l.Context {
			if strings.Contains(f.String, numFR) {
				t.Fatalf("log line carries the number: %+v", l)
			}
		}
	}
}

// The verify reads the number it replaces; if the store cannot say, the
// verify fails as a store outage and the challenge is not consumed.
func TestEventsVerifyStoreReadFailure(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUK, StatusPending)
	code := h.sender.LastCode(t)
	h.users.failGet.Store(true)
	_, err := h.verify("u", code)
	wantErr(t, err, ErrUnavailable)
	h.users.failGet.Store(false)
	h.rec.take()
	h.mustVerify("u", code)
	h.wantEvents(ev(events.TypeVerified, "u", numUK, numFR))
}

// Remove deletes the number and any open challenge, and emits
// phone.removed with the number removed; removing nothing emits nothing.
func TestEventsRemove(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUK, StatusPending)
	code := h.sender.LastCode(t)
	h.rec.take()
	old, err := h.svc.Remove(h.ctx, "u")
	if err != nil || old.PhoneNumber != numFR || !old.Verified {
		t.Fatalf("Remove = %+v, %v", old, err)
	}
	h.wantEvents(ev(events.TypeRemoved, "u", "", numFR))
	h.wantUser("u", "", false)
	_, err = h.verify("u", code)
	wantErr(t, err, ErrNoPending)

	if _, err := h.svc.Remove(h.ctx, "u"); err != nil {
		t.Fatal(err)
	}
	h.wantEvents()

	h.users.failSet.Store(true)
	h.seedUnverified("w", numDE)
	if _, err := h.svc.Remove(h.ctx, "w"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Remove with the store down: %v", err)
	}
	h.wantEvents()
}

// seedUnverified writes a user straight into the memory store.
func (h *eventsHarness) seedUnverified(user, number string) {
	h.t.Helper()
	h.rec.take()
	if err := h.users.MemoryUsers.Set(h.ctx, storeUser(user, number, false)); err != nil {
		h.t.Fatal(err)
	}
}

// notify_previous: a verify that replaces a verified number sends the old
// number an SMS with no code.
func TestNotifyPrevious(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) { c.NotifyPrevious = true })
	h.seedVerified("u", numFR)
	if n := h.sender.Count(); n != 1 {
		t.Fatalf("%d SMS for a first number, want 1 (no notify)", n)
	}
	h.mustUpdate("u", numUK, StatusPending)
	h.mustVerify("u", h.sender.LastCode(t))
	m := h.sender.Last(t)
	if m.To != numFR || m.Purpose != PurposeNotify || m.Code != "" || m.UserID != "u" || m.ID == "" {
		t.Fatalf("notify SMS = %+v", m)
	}
	if m.Body != "Your Acme phone number was changed. If this wasn't you, contact support." {
		t.Fatalf("notify body %q", m.Body)
	}
	if m.TemplateOptions == nil || m.Locale != "en" {
		t.Fatalf("notify SMS = %+v", m)
	}
	if n := h.sender.Count(); n != 3 {
		t.Fatalf("%d SMS, want 3", n)
	}
}

// No notify when nothing verified is replaced: a first number, an
// unverified one replaced, or notify_previous off.
func TestNotifyPreviousOnlyForVerifiedReplaced(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) { c.NotifyPrevious = true })
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numUK, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
	for _, a := range h.sender.Attempts() {
		if a.Msg.Purpose == PurposeNotify {
			t.Fatalf("notify sent: %+v", a.Msg)
		}
	}

	off := newEventsHarness(t)
	off.seedVerified("u", numFR)
	off.mustUpdate("u", numUK, StatusPending)
	off.mustVerify("u", off.sender.LastCode(t))
	if m := off.sender.Last(t); m.Purpose == PurposeNotify {
		t.Fatalf("notify sent with notify_previous off: %+v", m)
	}
}

// A failed notify SMS is logged, and the verify still succeeds.
func TestNotifyPreviousFailureIsLogged(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) { c.NotifyPrevious = true })
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUK, StatusPending)
	code := h.sender.LastCode(t)
	h.sender.FailNext(1)
	h.mustVerify("u", code)
	h.wantUser("u", numUK, true)
	if a := h.sender.Attempts(); !a[len(a)-1].Failed || a[len(a)-1].Msg.To != numFR {
		t.Fatalf("last attempt %+v, want the failed notify", a[len(a)-1])
	}
	lines := h.logs.FilterMessage("notify_previous SMS failed").All()
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1", len(lines))
	}
	if to := lines[0].ContextMap()["to"]; to != numbers.Mask(numFR) {
		t.Fatalf("logged to = %v, want the masked number", to)
	}
}

// With verification off, replacing a verified number at once notifies it.
func TestNotifyPreviousVerificationOff(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) { c.NotifyPrevious = true; c.Verification = false })
	if err := h.users.MemoryUsers.Set(h.ctx, storeUser("u", numFR, true)); err != nil {
		t.Fatal(err)
	}
	h.mustUpdate("u", numUK, StatusUpdated)
	m := h.sender.Last(t)
	if m.To != numFR || m.Purpose != PurposeNotify || m.Code != "" {
		t.Fatalf("notify SMS = %+v", m)
	}
	h.mustUpdate("u", numDE, StatusUpdated) // numUK was not verified
	if n := h.sender.Count(); n != 1 {
		t.Fatalf("%d SMS, want 1", n)
	}
}

func TestNotifyTemplate(t *testing.T) {
	h := newEventsHarness(t, func(c *Config) {
		c.NotifyPrevious, c.NotifyTemplate = true, "{app}: number changed"
	})
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUK, StatusPending)
	h.mustVerify("u", h.sender.LastCode(t))
	if m := h.sender.Last(t); m.Body != "Acme: number changed" {
		t.Fatalf("body %q", m.Body)
	}
	cfg := baseConfig()
	cfg.NotifyTemplate = "code {code}"
	if _, err := New(cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender, Numbers: numbers.Policy{}}); err == nil {
		t.Fatal("a notify template with {code} was accepted")
	}
}

func storeUser(id, number string, verified bool) store.User {
	return store.User{ID: id, PhoneNumber: number, Verified: verified}
}

// Issue 9, item 7: phone.pending is recorded before the answer, before the
// challenge even: one that cannot be recorded stops the change (503),
// with no challenge opened and no code sent.
func TestPendingRecordedBeforeTheChallenge(t *testing.T) {
	h := newEventsHarness(t)
	h.seedVerified("u", numFR)
	h.rec.take()
	sent := h.sender.Count()
	h.rec.fail = true
	_, err := h.update("u", numUS)
	wantErr(t, err, ErrUnavailable)
	if c := h.challenge("u"); c != nil {
		t.Fatalf("a challenge was opened: %+v", c)
	}
	if h.sender.Count() != sent {
		t.Fatal("a code was sent though phone.pending was not recorded")
	}
	h.rec.fail = false
	h.mustUpdate("u", numUS, StatusPending)
	h.wantEvents(events.Event{Type: events.TypePending, UserID: "u", PhoneNumber: numUS, PreviousPhoneNumber: numFR})
}
