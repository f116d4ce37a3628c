package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// Defaults of Config.
const (
	// DefaultMinBackoff is the wait after a first failed delivery; it
	// doubles with each further failure (1s, 2s, 4s, …).
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultTimeout bounds one delivery attempt (SPEC §8: 10 s).
	DefaultTimeout = 10 * time.Second
	// DefaultPoll is how often the outbox is read for events whose retry
	// is due, or that another dispatcher released.
	DefaultPoll = time.Second
	// DefaultBatch is how many events one read of the outbox claims.
	DefaultBatch = 8
)

const (
	// writeTimeout bounds an outbox write made by Emit or after an
	// attempt; such writes do not end with the request or the dispatcher.
	writeTimeout = 5 * time.Second
	// spillMax bounds the events held in memory while the outbox refuses
	// them (a store outage).
	spillMax = 10_000
)

// Config configures a Dispatcher. URL and Outbox are required.
type Config struct {
	// URL receives each event as a POST (http:// or https://).
	URL string
	// Secret signs each body in X-Phone-Signature; empty sends unsigned.
	Secret []byte
	// Outbox holds the events until they are delivered.
	Outbox Outbox
	// Client makes the calls; nil means one that does not follow
	// redirects (a redirected POST is a failure). Each attempt is bounded
	// by Timeout whatever the client's own timeout.
	Client *http.Client
	// Logger gets a line per failed attempt (event id, type, attempts,
	// cause: never a phone number). Nil logs nothing.
	Logger *zap.Logger
	// MinBackoff and MaxBackoff shape the retries: MinBackoff after the
	// first failure, doubling up to MaxBackoff. Defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// Poll is how often the outbox is read when nothing wakes the
	// dispatcher; default 1s.
	Poll time.Duration
	// Batch is how many events one read claims; default 8.
	Batch int
	// Lease is how long the outbox hands out a claim (its own Lease);
	// default store.DefaultOutboxLease. An event is attempted only while
	// its claim outlives the attempt (Timeout) and the outbox write after
	// it; the rest of a batch is handed back and claimed afresh, so no
	// claim lapses under a live dispatcher and a dead one's lapses soon.
	Lease time.Duration
	// Clock tells the time of events, due times and backoffs, and times
	// the poll and each attempt; default SystemClock. The signature
	// always uses the real time.
	Clock Clock
}

// Dispatcher delivers the events of an Outbox to one URL. Emit writes an
// event to the outbox (so it is durable before the caller answers its
// client) and wakes the worker; the worker, started by Start and stopped
// by its context or Close, posts the due events one by one, oldest first.
//
// A failed attempt sets the event's next attempt after an exponential
// backoff. When the failure says the receiver is down (no answer, a 5xx,
// 408 or 429) the dispatcher pauses until then, and the other events of
// the batch wait with it, so an outage costs one attempt per backoff step
// rather than one per event and the order is kept; when the receiver
// refuses one event only (another 4xx, a 3xx), the others go on.
// An event is never dropped: it is retried, at most MaxBackoff apart,
// until the receiver takes it.
type Dispatcher struct {
	cfg    Config
	client *http.Client
	logger *zap.Logger

	mu         sync.Mutex
	spill      []Event // refused by the outbox; added again by the worker
	pauseUntil time.Time
	idle       *idleWait // the worker's wait, while it waits
	woken      bool      // poked while busy: the worker does not wait
	cancel     context.CancelFunc
	done       chan struct{}
}

// idleWait is one wait of the worker: it ends when its poll timer fires
// or a poke comes, whichever is first.
type idleWait struct {
	stop func() bool // the poll timer's
	wake chan struct{}
	once sync.Once
}

func (w *idleWait) end() { w.once.Do(func() { close(w.wake) }) }

// CheckURL checks a receiver URL (`events <url>`).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may hold credentials: do not echo it.
		return errors.New("events: url must be an absolute http:// or https:// URL")
	}
	return nil
}

// NewDispatcher checks cfg and fills its defaults. Call Start to deliver.
func NewDispatcher(cfg Config) (*Dispatcher, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Outbox == nil {
		return nil, errors.New("events: an outbox is required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Lease <= 0 {
		cfg.Lease = store.DefaultOutboxLease
	}
	if cfg.Timeout+writeTimeout >= cfg.Lease {
		return nil, fmt.Errorf("events: an attempt (timeout %s, then %s to record it) must fit in the outbox lease of %s",
			cfg.Timeout, writeTimeout, cfg.Lease)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	d := &Dispatcher{cfg: cfg, client: cfg.Client, logger: cfg.Logger}
	if d.client == nil {
		d.client = sms.NoRedirectClient(cfg.Timeout)
	}
	if d.logger == nil {
		d.logger = zap.NewNop()
	}
	return d, nil
}

// Emit makes e durable in the outbox and wakes the worker; it returns once
// the outbox holds e, whether or not e has been delivered. An empty ID or
// a zero OccurredAt is filled in. The write is not cut short by ctx being
// canceled (a client hanging up must not lose the event of a change
// already made), only bounded in time.
//
// When the outbox refuses e (its store is down), e is held in memory and
// written again by the worker; Emit fails only when that memory is full
// too, and the caller should log it.
func (d *Dispatcher) Emit(ctx context.Context, e Event) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = d.cfg.Clock.Now()
	}
	if err := Check(e); err != nil {
		return err
	}
	err := d.add(ctx, e)
	if err != nil {
		d.mu.Lock()
		held := len(d.spill) < spillMax
		if held {
			d.spill = append(d.spill, e)
		}
		d.mu.Unlock()
		if !held {
			return fmt.Errorf("events: %s %s lost: the outbox refused it and %d events already wait in memory: %w",
				e.Type, e.ID, spillMax, err)
		}
		d.logger.Warn("outbox refused an event; holding it in memory until it accepts it",
			zap.String("id", e.ID), zap.String("type", e.Type), zap.Error(err))
	}
	d.poke()
	return nil
}

// Poke wakes the worker: an event was written to the outbox by someone
// else than Emit (the user store, in the transaction of the change).
func (d *Dispatcher) Poke() { d.poke() }

// poke ends the worker's wait, or, when it is busy, spares it the next
// one. The poll timer of an ended wait is stopped before poke returns.
func (d *Dispatcher) poke() {
	d.mu.Lock()
	w := d.idle
	d.idle = nil
	if w == nil {
		d.woken = true
	}
	d.mu.Unlock()
	if w != nil {
		w.stop()
		w.end()
	}
}

// Start runs the worker until ctx is done or Close is called. It first
// delivers what the outbox already holds (events of a previous run).
// Starting twice is a no-op.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done != nil {
		return
	}
	ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	go d.run(ctx, d.done)
}

// Close stops the worker and waits for it. An attempt in flight is cut
// short, and the events it had claimed are handed back to the outbox, due
// at once, for the next dispatcher. Events held in memory because the
// outbox refused them are written one last time, and lost if it still
// refuses (each is logged).
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	d.flushSpill(context.Background())
	d.mu.Lock()
	lost := d.spill
	d.spill = nil
	d.mu.Unlock()
	for _, e := range lost {
		d.logger.Error("event lost: the outbox refused it until shutdown",
			zap.String("id", e.ID), zap.String("type", e.Type), zap.String("user_id", e.UserID))
	}
	return nil
}

func (d *Dispatcher) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		d.flushSpill(ctx)
		d.drain(ctx)
		d.wait(ctx)
	}
}

// wait returns after Poll, at a poke, or when ctx is done; at once when a
// poke came while the worker was busy. Its poll timer is pending exactly
// while the worker waits with nothing to do, which is how a test with a
// fake clock knows it is idle.
func (d *Dispatcher) wait(ctx context.Context) {
	d.mu.Lock()
	if d.woken {
		d.woken = false
		d.mu.Unlock()
		return
	}
	w := &idleWait{wake: make(chan struct{})}
	w.stop = d.cfg.Clock.AfterFunc(d.cfg.Poll, w.end)
	d.idle = w
	d.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-w.wake:
	}
	d.mu.Lock()
	if d.idle == w {
		d.idle = nil
	}
	d.mu.Unlock()
	w.stop()
}

// flushSpill writes the events held in memory to the outbox, keeping
// those it still refuses, in order.
func (d *Dispatcher) flushSpill(ctx context.Context) {
	d.mu.Lock()
	held := d.spill
	d.spill = nil
	d.mu.Unlock()
	if len(held) == 0 {
		return
	}
	for i, e := range held {
		if err := d.add(ctx, e); err != nil {
			d.mu.Lock()
			d.spill = append(held[i:len(held):len(held)], d.spill...)
			d.mu.Unlock()
			return
		}
	}
}

// add encodes e and writes it to the outbox, even while stopping.
func (d *Dispatcher) add(ctx context.Context, e Event) error {
	body, err := Encode(e)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	return d.cfg.Outbox.Add(wctx, store.OutboxEvent{ID: e.ID, Body: body})
}

// drain delivers due events until none is left, the receiver is down, or
// ctx is done.
func (d *Dispatcher) drain(ctx context.Context) {
claim:
	for ctx.Err() == nil {
		now := d.cfg.Clock.Now()
		d.mu.Lock()
		paused := now.Before(d.pauseUntil)
		d.mu.Unlock()
		if paused {
			return
		}
		rows, err := d.cfg.Outbox.Due(ctx, now, d.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				d.logger.Warn("reading the outbox failed; retrying", zap.Error(err))
			}
			return
		}
		if len(rows) == 0 {
			return
		}
		batch := make([]Pending, len(rows))
		for i, r := range rows {
			batch[i] = Decode(r)
		}
		claimEnds := now.Add(d.cfg.Lease)
		for i, p := range batch {
			if ctx.Err() != nil {
				d.handBack(ctx, batch[i:])
				return
			}
			if d.cfg.Clock.Now().Add(d.cfg.Timeout + writeTimeout).After(claimEnds) {
				// The claim could lapse during this attempt, and another
				// dispatcher send the event too: claim it afresh.
				d.handBack(ctx, batch[i:])
				continue claim
			}
			err := d.post(ctx, p)
			if err == nil {
				d.write(ctx, "delivered", p, func(c context.Context) error { return d.cfg.Outbox.Delivered(c, p.Event.ID) })
				continue
			}
			if ctx.Err() != nil {
				// Stopping, not the receiver's fault: not an attempt.
				d.handBack(ctx, batch[i:])
				return
			}
			attempts := p.Attempts + 1
			wait := d.backoff(attempts)
			var de *deliveryError
			if errors.As(err, &de) && de.retryAfter > wait {
				wait = min(de.retryAfter, d.cfg.MaxBackoff)
			}
			next := d.cfg.Clock.Now().Add(wait)
			d.logger.Warn("event delivery failed; will retry",
				zap.String("id", p.Event.ID), zap.String("type", p.Event.Type),
				zap.Int("attempts", attempts), zap.Duration("retry_in", wait), zap.Error(err))
			d.write(ctx, "retry", p, func(c context.Context) error {
				return d.cfg.Outbox.Retry(c, p.Event.ID, attempts, next)
			})
			if errors.As(err, &de) && !de.down {
				continue // this event only: the others go on
			}
			// The receiver is down: the rest of the batch, and every
			// event after it, waits with this one.
			d.mu.Lock()
			d.pauseUntil = next
			d.mu.Unlock()
			for _, q := range batch[i+1:] {
				d.write(ctx, "retry", q, func(c context.Context) error {
					return d.cfg.Outbox.Retry(c, q.Event.ID, q.Attempts, next)
				})
			}
			return
		}
		if len(batch) < d.cfg.Batch {
			return
		}
	}
}

// handBack releases claimed events, unattempted, for the next dispatcher.
func (d *Dispatcher) handBack(ctx context.Context, ps []Pending) {
	now := d.cfg.Clock.Now()
	for _, p := range ps {
		d.write(ctx, "release", p, func(c context.Context) error {
			return d.cfg.Outbox.Retry(c, p.Event.ID, p.Attempts, now)
		})
	}
}

// write records an outcome in the outbox, even while stopping. A failure
// is logged: the lease then lapses and the event is sent again, which
// at-least-once allows.
func (d *Dispatcher) write(ctx context.Context, op string, p Pending, fn func(context.Context) error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := fn(wctx); err != nil {
		d.logger.Warn("outbox write failed; the event will be sent again once its lease lapses",
			zap.String("op", op), zap.String("id", p.Event.ID), zap.Error(err))
	}
}

// backoff is the wait after the n-th failed attempt (n >= 1).
func (d *Dispatcher) backoff(n int) time.Duration {
	w := d.cfg.MinBackoff
	for i := 1; i < n && w < d.cfg.MaxBackoff; i++ {
		w *= 2
	}
	return min(w, d.cfg.MaxBackoff)
}

// errAttemptTimeout is the cause of an attempt cut at Timeout.
var errAttemptTimeout = errors.New("events: attempt timed out")

// deliveryError is a failed attempt.
type deliveryError struct {
	status     int           // 0 when there was no answer
	down       bool          // the receiver as a whole is failing
	retryAfter time.Duration // the receiver's Retry-After, when given
	err        error
}

func (e *deliveryError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("receiver answered %d", e.status)
	}
	return "no answer: " + e.err.Error()
}

func (e *deliveryError) Unwrap() error { return e.err }

// post makes one attempt.
func (d *Dispatcher) post(ctx context.Context, p Pending) error {
	body := p.Body
	if len(body) == 0 {
		b, err := Encode(p.Event)
		if err != nil {
			return &deliveryError{down: false, err: err}
		}
		body = b
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := d.cfg.Clock.AfterFunc(d.cfg.Timeout, func() { cancel(errAttemptTimeout) })
	defer stop()
	status, header, err := sms.PostSigned(actx, d.client, d.cfg.URL, d.cfg.Secret, body)
	if err != nil {
		if context.Cause(actx) == errAttemptTimeout {
			err = fmt.Errorf("timed out after %s: %w", d.cfg.Timeout, context.DeadlineExceeded)
		}
		return &deliveryError{down: true, err: err}
	}
	if status >= 200 && status <= 299 {
		return nil
	}
	de := &deliveryError{status: status, err: errors.New(http.StatusText(status))}
	switch {
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		de.down = true
		if s, err := strconv.Atoi(strings.TrimSpace(header.Get("Retry-After"))); err == nil && s > 0 {
			de.retryAfter = time.Duration(min(s, 86400)) * time.Second
		}
	}
	return de
}
