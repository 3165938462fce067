package ratelimit

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestSleeper_UntilReturnsNotBeforeTheTime: whatever part of the wait
// nanosleep takes, until never returns early, and a time already past
// returns at once.
func TestSleeper_UntilReturnsNotBeforeTheTime(t *testing.T) {
	t.Parallel()
	s := sleeper{now: time.Now}
	for _, d := range []time.Duration{0, 200 * time.Microsecond, fineWait, 3 * time.Millisecond} {
		until := time.Now().Add(d)
		if err := s.until(context.Background(), until); err != nil {
			t.Fatalf("until(now+%v) = %v", d, err)
		}
		if now := time.Now(); now.Before(until) {
			t.Errorf("until(now+%v) returned %v early", d, until.Sub(now))
		}
	}
	if err := s.until(context.Background(), time.Now().Add(-time.Hour)); err != nil {
		t.Errorf("until an hour ago = %v, want nil", err)
	}
}

// TestSleeper_UntilEndsWithTheContext: a wait ends with its context's
// cause, not at its time.
func TestSleeper_UntilEndsWithTheContext(t *testing.T) {
	t.Parallel()
	cause := errors.New("stopped")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(10*time.Millisecond, func() { cancel(cause) })
	s := sleeper{now: time.Now}
	if err := s.until(ctx, time.Now().Add(time.Hour)); !errors.Is(err, cause) {
		t.Errorf("until an hour ahead with the context cancelled = %v, want %v", err, cause)
	}
}

// TestSleeper_UnderATestClockSleepsOnTimers: a clock that nanosleep does
// not move (synctest's) gives no lead, and until moves it to the time
// exactly.
func TestSleeper_UnderATestClockSleepsOnTimers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := sleeper{now: time.Now}
		if lead := s.lead(); lead != 0 {
			t.Errorf("lead() under synctest = %v, want 0", lead)
		}
		start := time.Now()
		for _, d := range []time.Duration{500 * time.Microsecond, 7 * time.Millisecond} {
			until := start.Add(d)
			if err := s.until(context.Background(), until); err != nil {
				t.Fatal(err)
			}
			if now := time.Now(); !now.Equal(until) {
				t.Errorf("until(start+%v) returned at start+%v", d, now.Sub(start))
			}
		}
	})
}
