package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// Metrics live in Caddy's registry as caddy_phone_*. Labels never carry a
// user, a number, a code or a token: only fixed names.
var phoneMetrics = struct {
	once        sync.Once
	sends       *prometheus.CounterVec   // provider, channel, result
	outcomes    *prometheus.CounterVec   // op, result
	rateLimited *prometheus.CounterVec   // limit
	storeTime   *prometheus.HistogramVec // op, result
}{}

func initMetrics(reg *prometheus.Registry) error {
	const ns, sub = "caddy", "phone"
	phoneMetrics.once.Do(func() {
		phoneMetrics.sends = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "sms_sends_total", Help: "Code delivery attempts by provider, channel (sms, whatsapp, voice) and result (ok, error)."},
			[]string{"provider", "channel", "result"})
		phoneMetrics.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Update, verify and resend calls by outcome (ok or the error code)."}, []string{"op", "result"})
		phoneMetrics.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rate_limited_total", Help: "Requests refused by a limit, by limit name."}, []string{"limit"})
		phoneMetrics.storeTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "store_duration_seconds", Help: "User store call latency by operation and result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op", "result"})
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{phoneMetrics.sends, phoneMetrics.outcomes, phoneMetrics.rateLimited, phoneMetrics.storeTime} {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}

// observe counts one rules call by its outcome.
func observe(op string, err error) {
	if err == nil {
		countersOf(phoneMetrics.outcomes, op, "ok").Inc()
		return
	}
	k := kindOf(err)
	countersOf(phoneMetrics.outcomes, op, k.code).Inc()
	if re, ok := flow.AsRetry(err); ok && k.is == flow.ErrRateLimited {
		countersOf(phoneMetrics.rateLimited, re.Limit, "").Inc()
	}
}

// countersOf is vec's counter for one or two label values, kept once
// found: WithLabelValues hashes and checks its labels on every call, and
// every refusal of a flood counts one or two. The labels are fixed names
// (ops, error codes, limits).
func countersOf(vec *prometheus.CounterVec, a, b string) prometheus.Counter {
	return counters.get(counterKey{vec, a, b}, func() prometheus.Counter {
		if b == "" {
			return vec.WithLabelValues(a)
		}
		return vec.WithLabelValues(a, b)
	})
}

type counterKey struct {
	vec  *prometheus.CounterVec
	a, b string
}

var counters = internTable[counterKey, prometheus.Counter]{max: 1024}

// meteredProvider counts a provider's sends.
type meteredProvider struct{ sms.Provider }

// Carries passes on what the provider carries.
func (m meteredProvider) Carries(channel string) bool { return sms.Carries(m.Provider, channel) }

func (m meteredProvider) Send(ctx context.Context, msg sms.Message) error {
	err := m.Provider.Send(ctx, msg)
	result := "ok"
	if err != nil {
		result = "error"
	}
	phoneMetrics.sends.WithLabelValues(m.Name(), sms.ChannelOf(msg), result).Inc()
	return err
}

// meteredUsers times the user store's calls.
type meteredUsers struct{ store.Users }

func (m meteredUsers) Get(ctx context.Context, userID string) (store.User, error) {
	start := time.Now()
	u, err := m.Users.Get(ctx, userID)
	observeStore("get", start, err)
	return u, err
}

func (m meteredUsers) Set(ctx context.Context, u store.User) error {
	start := time.Now()
	err := m.Users.Set(ctx, u)
	observeStore("set", start, err)
	return err
}

// SetWithEvent passes through, timed as a set; store.ErrNoOutbox when the
// store cannot write events.
func (m meteredUsers) SetWithEvent(ctx context.Context, u store.User, e store.OutboxEvent) error {
	es, ok := m.Users.(store.EventSetter)
	if !ok {
		return store.ErrNoOutbox
	}
	start := time.Now()
	err := es.SetWithEvent(ctx, u, e)
	if errors.Is(err, store.ErrNoOutbox) {
		return err
	}
	observeStore("set", start, err)
	return err
}

func observeStore(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, store.ErrPhoneInUse):
		result = "in_use"
	case err != nil:
		result = "error"
	}
	phoneMetrics.storeTime.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}
