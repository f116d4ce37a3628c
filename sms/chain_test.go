package sms

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeProvider records calls into a shared log and fails with err when set.
type fakeProvider struct {
	name  string
	err   error
	mu    *sync.Mutex
	calls *[]string
}

func (f fakeProvider) Name() string { return f.name }

func (f fakeProvider) Send(ctx context.Context, m Message) error {
	f.mu.Lock()
	*f.calls = append(*f.calls, f.name)
	f.mu.Unlock()
	return f.err
}

func fakes(spec map[string]error, order ...string) ([]Provider, func() []string) {
	var mu sync.Mutex
	var calls []string
	ps := make([]Provider, len(order))
	for i, name := range order {
		ps[i] = fakeProvider{name: name, err: spec[name], mu: &mu, calls: &calls}
	}
	return ps, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
}

var (
	errA = errors.New("a is down")
	errB = errors.New("b is down")
)

func TestChainFailover(t *testing.T) {
	tests := []struct {
		name      string
		spec      map[string]error
		id        string
		wantCalls []string
		wantErr   []error
	}{
		{"first succeeds", nil, "", []string{"a"}, nil},
		{"fails over in order", map[string]error{"a": errA}, "", []string{"a", "b"}, nil},
		{"third one", map[string]error{"a": errA, "b": errB}, "", []string{"a", "b", "c"}, nil},
		{"all fail", map[string]error{"a": errA, "b": errB, "c": ErrDeliveryFailed}, "", []string{"a", "b", "c"}, []error{ErrDeliveryFailed, errA, errB}},
		{"provider_id picks one", nil, "c", []string{"c"}, nil},
		{"provider_id does not fail over", map[string]error{"b": errB}, "b", []string{"b"}, []error{ErrDeliveryFailed, errB}},
		{"unknown provider_id", nil, "nope", nil, []error{ErrDeliveryFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, calls := fakes(tt.spec, "a", "b", "c")
			m := testMessage()
			m.ProviderID = tt.id
			err := NewChain(ps...).Send(context.Background(), m)
			if got := calls(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls %v, want %v", got, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, does not wrap %v", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") || strings.Count(err.Error(), ErrDeliveryFailed.Error()) != 1 {
				t.Errorf("error text %q: want one line, prefix once", err)
			}
			assertNoLeak(t, err)
		})
	}
}

func TestChainEmptyAndNames(t *testing.T) {
	if err := NewChain().Send(context.Background(), testMessage()); !errors.Is(err, ErrDeliveryFailed) {
		t.Errorf("empty chain: %v", err)
	}
	ps, _ := fakes(nil, "twilio", "webhook")
	c := NewChain(ps[0], nil, ps[1])
	if got := c.Names(); !slices.Equal(got, []string{"twilio", "webhook"}) {
		t.Errorf("Names() = %v", got)
	}
	c.Names()[0] = "changed"
	if c.Names()[0] != "twilio" {
		t.Error("Names() exposes internal state")
	}
}

func TestChainStopsWhenCanceled(t *testing.T) {
	ps, calls := fakes(map[string]error{"a": errA}, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewChain(ps...).Send(ctx, testMessage())
	if !errors.Is(err, ErrDeliveryFailed) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if got := calls(); len(got) != 0 {
		t.Errorf("providers called after cancel: %v", got)
	}
}

func TestChainLogsMaskedFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		mask func(string) string
		want string
	}{
		{"default mask", nil, "+*********78"},
		// The host's own mask, as caddymodule sets numbers.Mask.
		{"host mask", func(n string) string { return n[:3] + "*****" + n[len(n)-4:] }, "+33*****5678"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			ps, _ := fakes(map[string]error{"a": errA}, "a", "b")
			c := NewChain(ps...)
			c.Logger = zap.New(core)
			c.Mask = tc.mask
			if err := c.Send(context.Background(), testMessage()); err != nil {
				t.Fatal(err)
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d log entries, want 1", len(entries))
			}
			e := entries[0]
			fields := e.ContextMap()
			if e.Level != zap.WarnLevel || fields["provider"] != "a" || fields["to"] != tc.want {
				t.Errorf("entry %v %v", e.Level, fields)
			}
			m := testMessage()
			for k, v := range fields {
				if s, _ := v.(string); strings.Contains(s, m.Code) || strings.Contains(s, m.To) {
					t.Errorf("field %s leaks: %q", k, s)
				}
			}
		})
	}
}

// The default mask shows at most the last 2 digits, whatever it is given.
func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{
		"+33612345678":           "+*********78",
		"+14155552671":           "+*********71",
		"+12345678":              "+******78",
		"+1234567":               "****", // too short to show anything
		"+123456789012345678901": "****", // too long to be a number
		"33612345678":            "****",
		"+33 6 12 34 56 78":      "****",
		"":                       "****",
		"+":                      "****",
		"+3361234567a":           "****",
	} {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLogProvider(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	p := NewLog(zap.New(core))
	if p.Name() != "log" {
		t.Errorf("Name() = %q", p.Name())
	}
	m := testMessage()
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	entries := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(entries) != 1 {
		t.Fatalf("%d WARN entries, want 1", len(entries))
	}
	want := map[string]any{"id": m.ID, "to": m.To, "body": m.Body, "purpose": "update", "locale": "en", "channel": "sms"}
	got := entries[0].ContextMap()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v", k, got[k], v)
		}
	}
	if err := NewLog(nil).Send(context.Background(), m); err != nil {
		t.Errorf("nil logger: %v", err)
	}
}
