package fake

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/sms"
)

func TestSenderRecordsInOrder(t *testing.T) {
	var s Sender
	ctx := context.Background()
	msgs := []sms.Message{
		{To: "+33612345678", UserID: "a", Code: "111111", Body: "code 111111"},
		{To: "+447911123456", UserID: "b", Code: "222222", Body: "code 222222"},
		{To: "+33612345678", UserID: "a", Code: "333333", Body: "code 333333"},
	}
	for _, m := range msgs {
		if err := s.Send(ctx, m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3", s.Count())
	}
	if got := s.Messages(); !slices.EqualFunc(got, msgs, func(a, b sms.Message) bool { return a.Code == b.Code }) {
		t.Fatalf("Messages = %+v, want %+v", got, msgs)
	}
	if m := s.Last(t); m.Code != "333333" {
		t.Fatalf("Last = %+v", m)
	}
	if c := s.LastCode(t); c != "333333" {
		t.Fatalf("LastCode = %q", c)
	}
	if m := s.LastTo("+447911123456"); m.Code != "222222" {
		t.Fatalf("LastTo = %+v", m)
	}
	if m := s.LastFor("a"); m.Code != "333333" {
		t.Fatalf("LastFor = %+v", m)
	}
	if m := s.LastTo("+14155552671"); m.To != "" || m.Code != "" {
		t.Fatalf("LastTo(unknown) = %+v, want the zero Message", m)
	}
	if m := s.LastFor("nobody"); m.UserID != "" {
		t.Fatalf("LastFor(unknown) = %+v, want the zero Message", m)
	}
	for _, a := range s.Attempts() {
		if a.Failed {
			t.Fatalf("attempt %+v marked failed", a)
		}
	}
}

func TestSenderFailsWhenTold(t *testing.T) {
	var s Sender
	ctx := context.Background()
	send := func() error { return s.Send(ctx, sms.Message{To: "+33612345678", Code: "1", Body: "1"}) }
	s.FailNext(2)
	for i := range 2 {
		if err := send(); !errors.Is(err, ErrSend) || !errors.Is(err, sms.ErrDeliveryFailed) {
			t.Fatalf("send %d: %v, want ErrSend wrapping sms.ErrDeliveryFailed", i, err)
		}
	}
	if err := send(); err != nil {
		t.Fatalf("after FailNext(2), the third send: %v", err)
	}
	s.FailAll(true)
	for i := range 3 {
		if err := send(); !errors.Is(err, ErrSend) {
			t.Fatalf("FailAll send %d: %v", i, err)
		}
	}
	s.FailAll(false)
	if err := send(); err != nil {
		t.Fatalf("after FailAll(false): %v", err)
	}
	var failed []bool
	for _, a := range s.Attempts() {
		failed = append(failed, a.Failed)
	}
	if want := []bool{true, true, false, true, true, true, false}; !slices.Equal(failed, want) {
		t.Fatalf("Failed flags = %v, want %v", failed, want)
	}
	if s.Count() != 7 || len(s.Messages()) != 7 {
		t.Fatalf("Count = %d, Messages = %d; want failed attempts counted", s.Count(), len(s.Messages()))
	}
}

func TestSenderConcurrentSends(t *testing.T) {
	var s Sender
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Send(context.Background(), sms.Message{UserID: fmt.Sprint(i), To: fmt.Sprint("+1", i)})
			_ = s.LastFor(fmt.Sprint(i))
			_ = s.Count()
		}()
	}
	wg.Wait()
	if s.Count() != 50 {
		t.Fatalf("Count = %d, want 50", s.Count())
	}
	for i := range 50 {
		if m := s.LastFor(fmt.Sprint(i)); m.To != fmt.Sprint("+1", i) {
			t.Fatalf("LastFor(%d) = %+v", i, m)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatal ends only the goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalOf runs f with a recorder and returns what it failed with.
func fatalOf(t *testing.T, f func(testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestSenderLastFailsTheTest(t *testing.T) {
	var s Sender
	if msg := fatalOf(t, func(tb testing.TB) { s.Last(tb) }); msg == "" {
		t.Fatal("Last with nothing sent did not fail the test")
	}
	if msg := fatalOf(t, func(tb testing.TB) { s.LastCode(tb) }); msg == "" {
		t.Fatal("LastCode with nothing sent did not fail the test")
	}
	_ = s.Send(context.Background(), sms.Message{Code: "123456", Body: "no code here"})
	if msg := fatalOf(t, func(tb testing.TB) { s.LastCode(tb) }); msg == "" {
		t.Fatal("LastCode of a body without its code did not fail the test")
	}
	_ = s.Send(context.Background(), sms.Message{Body: "empty code"})
	if msg := fatalOf(t, func(tb testing.TB) { s.LastCode(tb) }); msg == "" {
		t.Fatal("LastCode of a message without a code did not fail the test")
	}
	if msg := fatalOf(t, func(tb testing.TB) { s.Last(tb) }); msg != "" {
		t.Fatalf("Last with a message sent failed: %s", msg)
	}
}
