package sandbox

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// RateStep sets the create rate limit at After, counted from the first
// create request the server receives.
type RateStep struct {
	After time.Duration
	Limit float64 // creates per second; 0 removes the limit
}

// shape plays the rate limits a plain token bucket does not: a fixed
// window (Options.RateWindow) and a limit that changes on a schedule
// (Options.RateSchedule). A nil shape leaves the bucket as it is.
type shape struct {
	window time.Duration // 0: the token bucket decides
	burst  int           // Options.RateBurst, for the bucket a step makes

	mu       sync.Mutex
	steps    []RateStep // not yet applied, by After
	start    time.Time  // the first create request; zero before it
	limit    float64    // the limit in force
	windowAt int64      // which window used counts
	used     int
}

func newShape(o Options) *shape {
	if o.RateWindow == 0 && len(o.RateSchedule) == 0 {
		return nil
	}
	return &shape{window: o.RateWindow, burst: o.RateBurst, steps: o.RateSchedule, limit: o.RateLimit}
}

func (o Options) validateShape() error {
	if o.RateWindow < 0 {
		return fmt.Errorf("sandbox: RateWindow %v is negative", o.RateWindow)
	}
	var prev time.Duration
	for i, st := range o.RateSchedule {
		if st.After < prev {
			return fmt.Errorf("sandbox: RateSchedule[%d].After %v is before the step before it", i, st.After)
		}
		if st.Limit < 0 || math.IsNaN(st.Limit) || math.IsInf(st.Limit, 0) {
			return fmt.Errorf("sandbox: RateSchedule[%d].Limit %v must be a finite number >= 0", i, st.Limit)
		}
		prev = st.After
	}
	return nil
}

// allow applies the steps that are due, then decides for a fixed window.
// decided is false when the token bucket decides.
func (sh *shape) allow(s *Server) (wait time.Duration, ok, decided bool) {
	if sh == nil {
		return 0, false, false
	}
	now := s.opts.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.start.IsZero() {
		sh.start = now
	}
	for len(sh.steps) > 0 && now.Sub(sh.start) >= sh.steps[0].After {
		sh.limit = sh.steps[0].Limit
		sh.steps = sh.steps[1:]
		if sh.window == 0 {
			s.SetRateLimit(sh.limit, sh.burst)
		}
	}
	if sh.window == 0 {
		return 0, false, false
	}
	if !(sh.limit > 0) {
		return 0, true, true
	}
	// Windows are aligned to the clock, as servers that count per
	// calendar second do.
	w := now.UnixNano() / int64(sh.window)
	if w != sh.windowAt {
		sh.windowAt, sh.used = w, 0
	}
	if float64(sh.used+1) <= sh.limit*sh.window.Seconds()+1e-9 {
		sh.used++
		return 0, true, true
	}
	return time.Unix(0, (w+1)*int64(sh.window)).Sub(now), false, true
}
