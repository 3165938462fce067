package ratelimit

import (
	"syscall"
	"time"
)

// fineWait is how much of a wait sleepFine sleeps: more than the runtime's
// timers are late.
const fineWait = 1500 * time.Microsecond

// sleepFine sleeps d with the OS's nanosleep, which blocks this goroutine's
// thread for d (the runtime hands its other goroutines to another thread),
// and reports whether it did. A signal (the runtime preempts with one)
// ends nanosleep early with what is left, which it sleeps again.
func sleepFine(d time.Duration) bool {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		switch err := syscall.Nanosleep(&ts, &left); err {
		case nil:
			return true
		case syscall.EINTR:
			ts = left
		default:
			return false
		}
	}
}
