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

	"github.com/caddy-phone/caddy-phone/store"
)

// Outbox holds the events not yet delivered, as encoded bodies (see
// store.Outbox): the dispatcher encodes an Event before Add and decodes
// the rows of Due. Implementations: MemoryOutbox here, and the durable
// the stores that offer one (store.Backend.Outbox).
type Outbox = store.Outbox

// Pending is an event claimed from an outbox, decoded.
type Pending struct {
	Event Event
	// Body is the JSON stored by Add, posted as it is: every retry sends
	// the same bytes.
	Body []byte
	// Attempts counts the failed deliveries so far.
	Attempts int
}

// Encode returns the JSON body of e, as outboxes store it.
func Encode(e Event) ([]byte, error) {
	if err := Check(e); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Decode reads a row of Due. An undecodable body still yields a Pending
// that posts the stored bytes, so a damaged row is retried, not lost.
func Decode(r store.OutboxRow) Pending {
	p := Pending{Body: r.Body, Attempts: r.Attempts}
	if err := json.Unmarshal(r.Body, &p.Event); err != nil {
		p.Event = Event{}
	}
	p.Event.ID = r.ID
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
	// Lease is how long Due hands out an event; store.DefaultOutboxLease
	// when 0.
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
func (m *MemoryOutbox) Add(ctx context.Context, e store.OutboxEvent) error {
	if err := e.CheckAdd(""); err != nil {
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
	m.items[e.ID] = &memItem{seq: m.seq, body: slices.Clone(e.Body)}
	return nil
}

// Due claims up to limit due events, oldest first.
func (m *MemoryOutbox) Due(ctx context.Context, now time.Time, limit int) ([]store.OutboxRow, error) {
	if limit <= 0 {
		return nil, nil
	}
	lease := m.Lease
	if lease <= 0 {
		lease = store.DefaultOutboxLease
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
	out := make([]store.OutboxRow, len(ds))
	for i, d := range ds {
		d.it.next = now.Add(lease)
		out[i] = store.OutboxRow{ID: d.id, Body: d.it.body, Attempts: d.it.attempts}
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
