package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/store"
)

// eventsRuntime is what `events` provisioned: the dispatcher of this
// config and, for stores without an outbox table, its hold on the pooled
// memory outbox.
type eventsRuntime struct {
	dispatcher *events.Dispatcher
	logger     *zap.Logger
	poolKey    string // "" unless the outbox is a pooled memory outbox
}

// memoryOutboxes keeps the memory outbox of each receiver across config
// reloads, so that events not yet delivered when a config is replaced are
// delivered by the next one. They are lost when Caddy stops.
var memoryOutboxes = caddy.NewUsagePool()

type pooledOutbox struct {
	*events.MemoryOutbox
	logger *zap.Logger
}

// Destruct runs when no loaded config posts to this receiver any more.
func (p *pooledOutbox) Destruct() error {
	if n := p.Len(); n > 0 {
		p.logger.Error("events dropped: no config posts to their receiver any more and the store keeps no outbox",
			zap.Int("events", n))
	}
	return nil
}

// provisionEvents builds the dispatcher of `events` over the outbox of the
// store (p.users must be open) and starts it. It returns nil, nil without
// `events`.
func (p *Phone) provisionEvents(ctx caddy.Context, url string) (flow.Events, error) {
	if p.Events == nil {
		return nil, nil
	}
	secret := caddy.NewReplacer().ReplaceKnown(p.Events.Secret, "")
	logger := p.logger.Named("events")
	if secret == "" {
		logger.Warn("events: no secret: events are posted unsigned")
	}
	// The stream names the receiver in the outbox tables without writing
	// its URL (which may hold a token) to the database.
	sum := sha256.Sum256([]byte("phone-events\x00" + url))
	stream := hex.EncodeToString(sum[:16])

	rt := &eventsRuntime{logger: logger}
	outbox, err := p.eventsOutbox(ctx, stream, rt)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	d, err := events.NewDispatcher(events.Config{URL: url, Secret: []byte(secret), Outbox: outbox, Logger: logger})
	if err != nil {
		rt.release()
		return nil, err // names the field already
	}
	rt.dispatcher = d
	p.eventsRT = rt
	// Events kept for a receiver URL no longer configured are never sent
	// to the new one: say so rather than leave them silently behind.
	if o, ok := outbox.(interface {
		Others(context.Context) (int, error)
	}); ok {
		if n, err := o.Others(ctx); err == nil && n > 0 {
			logger.Warn("events: undelivered events wait in the outbox for a receiver URL no longer configured",
				zap.Int("events", n))
		}
	}
	// Stopped by Cleanup, which hands back what it was sending; the
	// config's context ends it too.
	d.Start(ctx)
	if p.backend.Outbox != nil {
		// The store writes each change's event in the change's own
		// transaction, into the table this dispatcher reads.
		return txEvents{Dispatcher: d, stream: stream}, nil
	}
	return d, nil
}

// txEvents lets the rules have the store write an event in the
// transaction of the change it tells of (flow.TxEvents), into the outbox
// table of the dispatcher's stream.
type txEvents struct {
	*events.Dispatcher
	stream string
}

// OutboxEvent encodes e as the outbox's Add would store it.
func (t txEvents) OutboxEvent(e events.Event) (store.OutboxEvent, error) {
	body, err := events.Encode(e)
	if err != nil {
		return store.OutboxEvent{}, err
	}
	return store.OutboxEvent{ID: e.ID, Stream: t.stream, Body: body}, nil
}

var _ flow.TxEvents = txEvents{}

// eventsOutbox picks the outbox beside the store: a table in the sqlite
// file or the postgres database, else (memory and http stores) a memory
// outbox shared by the configs of this process.
func (p *Phone) eventsOutbox(ctx caddy.Context, stream string, rt *eventsRuntime) (events.Outbox, error) {
	if p.backend.Outbox != nil {
		return p.backend.Outbox(ctx, stream)
	}
	rt.logger.Warn("events: this store keeps no outbox: events not yet delivered are held in memory and lost if Caddy stops (use store sqlite or postgres for delivery across restarts)")
	key := "events/" + stream
	v, _, err := memoryOutboxes.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &pooledOutbox{MemoryOutbox: events.NewMemoryOutbox(), logger: rt.logger}, nil
	})
	if err != nil {
		return nil, err
	}
	rt.poolKey = key
	return v.(*pooledOutbox).MemoryOutbox, nil
}

// stopEvents stops the dispatcher, before the store under its outbox is
// closed. Safe when nothing was provisioned.
func (p *Phone) stopEvents() error {
	rt := p.eventsRT
	if rt == nil {
		return nil
	}
	p.eventsRT = nil
	var err error
	if rt.dispatcher != nil {
		err = rt.dispatcher.Close()
	}
	return errors.Join(err, rt.release())
}

func (rt *eventsRuntime) release() error {
	if rt.poolKey == "" {
		return nil
	}
	_, err := memoryOutboxes.Delete(rt.poolKey)
	rt.poolKey = ""
	return err
}
