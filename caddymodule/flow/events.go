package flow

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/events"
	"github.com/caddy-phone/caddy-phone/store"
)

// emit hands an event to Deps.Events. A failure is logged, never
// returned: the change it tells of is made already.
func (s *Service) emit(ctx context.Context, typ, userID, number, previous string, attrs []Attr) {
	if e := s.event(typ, userID, number, previous, attrs); e != nil {
		s.emitEvent(ctx, *e)
	}
}

// event builds an event for Deps.Events; nil without it. attrs are the
// vendor-specific attributes of the update behind it, if any.
func (s *Service) event(typ, userID, number, previous string, attrs []Attr) *events.Event {
	if s.events == nil {
		return nil
	}
	return &events.Event{ID: events.NewID(), Type: typ, UserID: userID, PhoneNumber: number,
		PreviousPhoneNumber: previous, OccurredAt: s.clock.Now().UTC(), Attributes: attrs}
}

// setAndEmit writes u and, unless e is nil, records e. When Deps.Events is
// a TxEvents and the store a store.EventSetter with an outbox, both go in
// one store transaction: kept together or not at all. Otherwise u is set,
// then e emitted (a failed emit is logged: the change is made already).
// Either way an error means u was not written, and no event recorded.
func (s *Service) setAndEmit(ctx context.Context, u store.User, e *events.Event) error {
	if e != nil {
		if tx, ok := s.events.(TxEvents); ok {
			if es, ok := s.users.(store.EventSetter); ok {
				if oe, err := tx.OutboxEvent(*e); err == nil {
					err := es.SetWithEvent(ctx, u, oe)
					if !errors.Is(err, store.ErrNoOutbox) {
						if err == nil {
							tx.Poke()
						}
						return err
					}
				}
			}
		}
	}
	if err := s.users.Set(ctx, u); err != nil {
		return err
	}
	if e != nil {
		s.emitEvent(ctx, *e)
	}
	return nil
}

func (s *Service) emitEvent(ctx context.Context, e events.Event) {
	if err := s.events.Emit(ctx, e); err != nil {
		s.logger.Error("phone event not recorded", zap.String("id", e.ID), zap.String("type", e.Type),
			zap.String("user_id", e.UserID), zap.Error(err))
	}
}
