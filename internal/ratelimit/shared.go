package ratelimit

import "time"

// A Limiter whose departures another pacer schedules (a fleet sharing one
// budget) uses it for its law only: it records each departure with
// Departed, hears each answer as usual, and takes the state the fleet
// agreed on with Adopt.

// Adopt replaces the law's state with s, which another pacer holds: the
// law goes on from it with this Limiter's own evidence.
func (l *Limiter) Adopt(s State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st = s
}

// Departed records a request that left now on a schedule other than
// Wait's, as the law's evidence of what was sent.
func (l *Limiter) Departed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	l.depart(now, now, now, time.Time{})
}
