package fake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/sms"
)

// ErrSend is what Sender.Send returns when told to fail. It wraps
// sms.ErrDeliveryFailed, as a real provider's failure does.
var ErrSend = fmt.Errorf("%w: fake provider down", sms.ErrDeliveryFailed)

// Attempt is one call of Sender.Send.
type Attempt struct {
	Msg    sms.Message
	Failed bool // Send returned ErrSend
}

// Sender is an sms.Sender for tests: it records every message it is given,
// delivers nothing, and fails when told to (FailNext, FailAll). Failed
// attempts are recorded too, so every reader below (Count, Messages, Last…)
// sees every call of Send, in order. The zero Sender is ready to use; it
// is safe for concurrent use.
type Sender struct {
	mu       sync.Mutex
	log      []Attempt
	failAll  bool
	failNext int
}

// Send records m and returns nil, or ErrSend when told to fail. It ignores
// ctx.
func (s *Sender) Send(_ context.Context, m sms.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := s.failAll || s.failNext > 0
	if s.failNext > 0 {
		s.failNext--
	}
	s.log = append(s.log, Attempt{Msg: m, Failed: fail})
	if fail {
		return ErrSend
	}
	return nil
}

// FailAll makes every later Send fail (on) or succeed again (off).
func (s *Sender) FailAll(on bool) {
	s.mu.Lock()
	s.failAll = on
	s.mu.Unlock()
}

// FailNext makes the next n Sends fail.
func (s *Sender) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Attempts returns every call of Send, failed ones included, in order.
func (s *Sender) Attempts() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Attempt(nil), s.log...)
}

// Messages returns the message of every call of Send, failed ones
// included, in order.
func (s *Sender) Messages() []sms.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sms.Message, len(s.log))
	for i, a := range s.log {
		out[i] = a.Msg
	}
	return out
}

// Count returns how many times Send was called, failed calls included.
func (s *Sender) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Last returns the last message, failing the test when none was sent.
func (s *Sender) Last(t testing.TB) sms.Message {
	t.Helper()
	m, ok := s.last(func(sms.Message) bool { return true })
	if !ok {
		t.Fatal("no SMS was sent")
	}
	return m
}

// LastCode returns the code of the last message, failing the test when
// none was sent or its body does not carry its code.
func (s *Sender) LastCode(t testing.TB) string {
	t.Helper()
	m := s.Last(t)
	if m.Code == "" || !strings.Contains(m.Body, m.Code) {
		t.Fatalf("last message body %q does not carry its code %q", m.Body, m.Code)
	}
	return m.Code
}

// LastTo returns the last message sent to the number to, or the zero
// Message when there is none.
func (s *Sender) LastTo(to string) sms.Message {
	m, _ := s.last(func(m sms.Message) bool { return m.To == to })
	return m
}

// LastFor returns the last message sent for the user, or the zero Message
// when there is none.
func (s *Sender) LastFor(user string) sms.Message {
	m, _ := s.last(func(m sms.Message) bool { return m.UserID == user })
	return m
}

func (s *Sender) last(match func(sms.Message) bool) (sms.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.log) - 1; i >= 0; i-- {
		if match(s.log[i].Msg) {
			return s.log[i].Msg, true
		}
	}
	return sms.Message{}, false
}
