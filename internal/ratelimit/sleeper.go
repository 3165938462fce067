package ratelimit

import (
	"context"
	"sync"
	"time"
)

// sleeper sleeps until a time closer to it than the runtime's timers do:
// they wake up to a millisecond late, the OS's nanosleep (sleepFine) about
// a tenth of that. At a server that takes a request only a whole interval
// after the one before (a token bucket of burst 1), how evenly paced
// requests leave decides how close to its limit a pool can hold.
//
// Under a test's clock (testing/synctest), which does not move while the
// OS sleeps, it sleeps on the runtime's timers only: the first time it is
// used it sleeps a microsecond with nanosleep and looks whether its clock
// moved. A sleeper is safe for concurrent use.
type sleeper struct {
	now func() time.Time

	once   sync.Once
	coarse bool // nanosleep does not move now, or there is none
}

// lead is how long before a time a caller may stop waiting on its own
// timers and leave the rest to until: fineWait, or 0 under a test's clock.
func (s *sleeper) lead() time.Duration {
	s.once.Do(func() {
		before := s.now()
		s.coarse = fineWait == 0 || !sleepFine(time.Microsecond) || !s.now().After(before)
	})
	if s.coarse {
		return 0
	}
	return fineWait
}

// until sleeps until t, or until ctx is done, when it returns ctx's cause.
// A t already past returns at once. The last lead of the wait is slept
// with nanosleep.
func (s *sleeper) until(ctx context.Context, t time.Time) error {
	for {
		d := t.Sub(s.now())
		if d <= 0 {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if d <= s.lead() && sleepFine(d) {
			return nil
		}
		if err := sleepTimer(ctx, max(d-s.lead(), time.Microsecond), nil); err != nil {
			return err
		}
	}
}

// sleepTimer sleeps d on the runtime's timers, or until ctx is done, and
// late() more when late is set (a test's busy scheduler).
func sleepTimer(ctx context.Context, d time.Duration, late func() time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		if late != nil {
			time.Sleep(late())
		}
		return nil
	}
}
