//go:build !linux

package ratelimit

import "time"

// fineWait is 0 where the OS gives no finer sleep than the runtime's
// timers.
const fineWait = 0

// sleepFine reports that it cannot sleep finer than the runtime's timers.
func sleepFine(time.Duration) bool { return false }
