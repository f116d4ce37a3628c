package fake

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClockStandsStillUntilAdvanced(t *testing.T) {
	c := NewClock(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now = %v", c.Now())
	}
	c.Advance(90 * time.Second)
	if want := t0.Add(90 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("Now = %v, want %v", c.Now(), want)
	}
	var zero Clock
	zero.Advance(time.Second)
	if !zero.Now().Equal(time.Time{}.Add(time.Second)) {
		t.Fatalf("zero clock: Now = %v", zero.Now())
	}
}

func TestClockTimersFireInOrderDuringAdvance(t *testing.T) {
	c := NewClock(t0)
	var got []string
	c.AfterFunc(3*time.Second, func() { got = append(got, "3s") })
	c.AfterFunc(time.Second, func() { got = append(got, "1s") })
	c.AfterFunc(time.Second, func() { got = append(got, "1s again") })
	late := c.AfterFunc(10*time.Second, func() { got = append(got, "10s") })
	ch := c.After(2 * time.Second)
	if want := []time.Duration{3 * time.Second, time.Second, time.Second, 10 * time.Second, 2 * time.Second}; !slices.Equal(c.Pending(), want) {
		t.Fatalf("Pending = %v, want %v", c.Pending(), want)
	}
	c.Advance(999 * time.Millisecond)
	if len(got) != 0 || len(ch) != 0 {
		t.Fatalf("fired early: %v", got)
	}
	c.Advance(5 * time.Second)
	if want := []string{"1s", "1s again", "3s"}; !slices.Equal(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	select {
	case at := <-ch:
		if !at.Equal(t0.Add(2 * time.Second)) {
			t.Fatalf("After sent %v, want its deadline", at)
		}
	default:
		t.Fatal("After did not fire")
	}
	if c.PendingFor(10*time.Second) != 1 || len(c.Pending()) != 1 {
		t.Fatalf("Pending = %v", c.Pending())
	}
	if !late() || late() {
		t.Fatal("stop: want true, then false")
	}
	c.Advance(time.Hour)
	if len(got) != 3 || len(c.Pending()) != 0 {
		t.Fatalf("a stopped timer fired: %v, %v", got, c.Pending())
	}
	now := c.AfterFunc(0, func() { got = append(got, "0") })
	c.Advance(0)
	if got[len(got)-1] != "0" || now() {
		t.Fatalf("a timer of 0 did not fire at Advance(0): %v", got)
	}
}

// Wait sees a goroutine go idle: it sets a timer each time it waits.
func TestClockWaitSeesAnIdleGoroutine(t *testing.T) {
	c := NewClock(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	ticks := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			<-c.After(time.Minute)
			mu.Lock()
			ticks++
			mu.Unlock()
		}
	}()
	for i := range 3 {
		if err := c.Wait(ctx, func() bool { return c.PendingFor(time.Minute) == 1 }); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		c.Advance(time.Minute)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	if ticks != 3 {
		t.Fatalf("%d ticks", ticks)
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.Wait(short, func() bool { return false }); err == nil {
		t.Fatal("Wait outlived its context")
	}
}
