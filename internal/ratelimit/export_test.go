package ratelimit

import "time"

// SetLateWakeUps makes each waiter of l wake late() after its timer, as
// the scheduler of a busy machine wakes it.
func SetLateWakeUps(l *Limiter, late func() time.Duration) { l.late = late }

// LeadUnderSynctest makes l's Reserve return its lead before each slot
// even under a test's clock, as on a real one; its leave must then not be
// called (nanosleep does not move a test's clock).
func LeadUnderSynctest(l *Limiter) {
	l.sleeper.once.Do(func() {})
	l.sleeper.coarse = false
}
