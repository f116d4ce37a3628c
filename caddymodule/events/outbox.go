package events

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Outbox holds the events not yet delivered. Implementations: MemoryOutbox
// here, and the durable store.SQLiteOutbox and store.PostgresOutbox.
type Outbox interface {
	// Add stores e, due at once. Adding an id already held is a no-op, so
	// a caller may retry an Add whose outcome it did not learn.
	Add(ctx context.Context, e Event) error
	// Due claims up to limit events due at now, oldest first, and returns
	// them. Claiming leases an event: it is not due again until the
	// outbox's lease has passed, so two dispatchers over one outbox (two
	// Caddy configs overlapping during a reload, two instances on one
	// database) do not send it together, and an event claimed by a
	// process that died is sent again later. The dispatcher ends the lease
	// with Delivered or Retry.
	Due(ctx context.Context, now time.Time, limit int) ([]Pending, error)
	// Delivered forgets the event. An unknown id is not an error.
	Delivered(ctx context.Context, id string) error
	// Retry records the failed attempts so far and makes the event due
	// again at next. An unknown id is not an error.
	Retry(ctx context.Context, id string, attempts int, next time.Time) error
}

// Pending is an event claimed from an outbox.
type Pending struct {
	Event Event
	// Body is the JSON stored by Add, posted as it is: every retry sends
	// the same bytes.
	Body []byte
	// Attempts counts the failed deliveries so far.
	Attempts int
}

// DefaultLease is how long Due hands an event to one dispatcher. It must
// exceed the time a dispatcher may spend on one batch (DefaultBatch
// attempts of at most DefaultTimeout each) so that a live dispatcher's
// claim does not lapse under it.
const DefaultLease = 5 * time.Minute

// Encode returns the JSON body of e, as outboxes store it.
func Encode(e Event) ([]byte, error) {
	if err := Check(e); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Decode reads a stored body. An undecodable body still yields a Pending
// that posts the stored bytes, so a damaged row is retried, not lost.
func Decode(id string, body []byte, attempts int) Pending {
	p := Pending{Body: body, Attempts: attempts}
	if err := json.Unmarshal(body, &p.Event); err != nil {
		p.Event = Event{}
	}
	p.Event.ID = id
	return p
}

// DefaultMemoryMax bounds a MemoryOutbox.
const DefaultMemoryMax = 100_000

// ErrOutboxFull: a MemoryOutbox holds Max events; the event was not kept.
var ErrOutboxFull = errors.New("events: outbox full")

// MemoryOutbox is an Outbox in this process's memory, for the stores that
// have no table of their own (memory, http). Its events are lost when the
// process stops: delivery is at-least-once only while Caddy runs.
type MemoryOutbox struct {
	// Lease is how long Due hands out an event; DefaultLease when 0.
	Lease time.Duration
	// Max bounds the events held; Add fails with ErrOutboxFull beyond
	// it. DefaultMemoryMax when 0.
	Max int

	mu    sync.Mutex
	seq   uint64
	items map[string]*memItem
}

type memItem struct {
	seq      uint64
	body     []byte
	attempts int
	next     time.Time // zero: due at once
}

// NewMemoryOutbox returns an empty MemoryOutbox.
func NewMemoryOutbox() *MemoryOutbox {
	return &MemoryOutbox{items: make(map[string]*memItem)}
}

// Add keeps e, due at once.
func (m *MemoryOutbox) Add(ctx context.Context, e Event) error {
	body, err := Encode(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil {
		m.items = make(map[string]*memItem)
	}
	if _, ok := m.items[e.ID]; ok {
		return nil
	}
	limit := m.Max
	if limit <= 0 {
		limit = DefaultMemoryMax
	}
	if len(m.items) >= limit {
		return fmt.Errorf("%w (%d events)", ErrOutboxFull, len(m.items))
	}
	m.seq++
	m.items[e.ID] = &memItem{seq: m.seq, body: body}
	return nil
}

// Due claims up to limit due events, oldest first.
func (m *MemoryOutbox) Due(ctx context.Context, now time.Time, limit int) ([]Pending, error) {
	if limit <= 0 {
		return nil, nil
	}
	lease := m.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	type due struct {
		id string
		it *memItem
	}
	var ds []due
	for id, it := range m.items {
		if !it.next.After(now) {
			ds = append(ds, due{id, it})
		}
	}
	slices.SortFunc(ds, func(a, b due) int { return cmp.Compare(a.it.seq, b.it.seq) })
	if len(ds) > limit {
		ds = ds[:limit]
	}
	out := make([]Pending, len(ds))
	for i, d := range ds {
		d.it.next = now.Add(lease)
		out[i] = Decode(d.id, d.it.body, d.it.attempts)
	}
	return out, nil
}

// Delivered forgets the event.
func (m *MemoryOutbox) Delivered(ctx context.Context, id string) error {
	m.mu.Lock()
	delete(m.items, id)
	m.mu.Unlock()
	return nil
}

// Retry records attempts and makes the event due at next.
func (m *MemoryOutbox) Retry(ctx context.Context, id string, attempts int, next time.Time) error {
	m.mu.Lock()
	if it, ok := m.items[id]; ok {
		it.attempts, it.next = attempts, next
	}
	m.mu.Unlock()
	return nil
}

// Len returns the number of events not yet delivered.
func (m *MemoryOutbox) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

var _ Outbox = (*MemoryOutbox)(nil)
