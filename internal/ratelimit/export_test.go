package ratelimit

import "time"

// SetLateWakeUps makes each waiter of l wake late() after its timer, as
// the scheduler of a busy machine wakes it.
func SetLateWakeUps(l *Limiter, late func() time.Duration) { l.late = late }
