package ratelimit

import (
	"math"
	"time"
)

// The control law: what each answer of the server tells the limiter.

// Accepted records a request the server did not throttle.
func (l *Limiter) Accepted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	l.answer(now)
	l.clumpAccepted = true
	l.pendingAt, l.pendingN = time.Time{}, 0 // its 429s collided
	l.answers++
	l.accepted++
	l.backoffs = 0
	l.refusedInARow = 0
	l.lastAccepted = now
	l.win.add(now, 1, 0, 0)
}

// Throttled records a 429. retryAfter is the server's wait, 0 when it gave
// none. The rate drops once per episode: 429s that answer requests sent
// before the last decrease do not count again. The pool pauses only when
// the server refuses everything.
//
// 429s answered in one clump (each within a fraction of the interval of
// the one before) with an accepted request are collisions the client
// caused: a starved machine delivers evenly paced requests in clumps, and
// a strict bucket takes one of each clump whatever its limit. They are no
// evidence of the limit. So 429s are judged when their clump is over.
func (l *Limiter) Throttled(retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	l.answer(now)
	l.answers++
	l.throttles++
	l.refusedInARow++
	if l.refusedInARow >= closedAfter && now.Sub(l.lastAccepted) >= closedFor {
		// The server refuses everything: that says when, not how fast.
		// Before a limit is measured, the average it accepted since the
		// start is the best guess of how fast for a server that opens
		// and closes (a fixed window).
		l.pendingAt, l.pendingN = time.Time{}, 0
		l.pause(now, retryAfter)
		if s := &l.st; s.Limit == 0 && l.accepted > 0 && now.After(l.start) {
			avg := float64(l.accepted) / now.Sub(l.start).Seconds()
			s.Rate = min(max(s.Margin*avg, l.cfg.MinRate), s.RateAt(now, l.ceiling))
			s.Since = now
		}
		return
	}
	if l.clumpAccepted {
		return // a collision
	}
	if l.pendingAt.IsZero() {
		l.pendingAt = now
	}
	l.pendingN++
}

// answer notes an answer at now: one that does not come with the one
// before starts a new clump, and the 429s of the one before are judged.
// l.mu is held.
func (l *Limiter) answer(now time.Time) {
	if !l.clumped(now) {
		l.judge()
		l.clumpAccepted = false
	}
	l.lastAnswer = now
}

// settle judges the 429s waiting for their clump to end, if it has by now.
// l.mu is held.
func (l *Limiter) settle(now time.Time) {
	if !l.clumped(now) {
		l.judge()
	}
}

// judge counts the 429s of a clump without an accepted answer, and the
// first opens an episode unless one is open. l.mu is held.
func (l *Limiter) judge() {
	at, n := l.pendingAt, l.pendingN
	if at.IsZero() {
		return
	}
	l.pendingAt, l.pendingN = time.Time{}, 0
	l.win.add(at, 0, n, 0)
	if !l.cutAt.IsZero() && l.answers-l.cutAnswers < l.cutInflight && at.Sub(l.cutAt) < maxEpisode {
		return
	}
	l.decrease(at)
}

// clumped reports whether an answer at now comes within a fraction of the
// interval after the one before. l.mu is held.
func (l *Limiter) clumped(now time.Time) bool {
	r := l.st.RateAt(now, l.ceiling)
	if l.lastAnswer.IsZero() || math.IsInf(r, 1) {
		return false
	}
	return now.Sub(l.lastAnswer) < time.Duration(clump*float64(time.Second)/r)
}

// Pause holds the whole pool for wait (a doubling backoff when 0) without
// slowing the rate: for an answer that asks to wait but says nothing about
// the rate of creates, such as a 429 from the token endpoint.
func (l *Limiter) Pause(wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pause(l.cfg.Now(), wait)
}

// pause moves the end of the pool's pause to now+wait at least. l.mu is
// held.
func (l *Limiter) pause(now time.Time, wait time.Duration) {
	// A second the server asked the pool to sit out is no evidence of its
	// limit. A backoff of the client's own choosing is: the server was
	// refusing everything meanwhile (a spent fixed window).
	told := wait > 0
	if !told {
		if now.Before(l.st.PausedUntil) {
			return // the answers of requests sent before the pause began
		}
		wait = l.cfg.Backoff << min(l.backoffs, 16)
		l.backoffs++
	}
	wait = min(wait, l.cfg.MaxPause)
	if until := now.Add(wait); until.After(l.st.PausedUntil) {
		l.paused += until.Sub(maxTime(now, l.st.PausedUntil))
		l.st.PausedUntil = until
		if told {
			l.evidence = until
		}
	}
}

// decrease applies the law to a 429 that opens an episode. l.mu is held.
func (l *Limiter) decrease(now time.Time) {
	s := &l.st
	cur := l.st.RateAt(now, l.ceiling)
	acc, thr, sent, span, ok := l.win.lastSecond(now, l.evidence)
	// Saturated: the server refused a notable share of the second's
	// answers, and a few at least (one of twenty is chance).
	sat := thr >= max(minSaturated, saturated*(acc+thr))
	switch {
	case !ok && s.Limit == 0:
		// Early: what the server accepted since the last cut is its rate
		// (its bucket was empty then), whatever its burst. With too few
		// accepted since to tell, the average since the start is the
		// better guess: a fixed window refuses everything until it
		// turns. Bounded to [cur/4, cur].
		got, from := l.accepted-l.cutAccepted, l.cutAt
		if got < 3 || from.IsZero() {
			got, from = l.accepted, l.evidence
		}
		next := cur / 2
		if math.IsInf(cur, 1) {
			cur = max(float64(l.sent)/max(now.Sub(l.evidence).Seconds(), 1), 10*l.cfg.MinRate)
			next = cur
		}
		if got >= 3 && now.After(from) {
			next = min(max(float64(got)/now.Sub(from).Seconds(), cur/4), cur)
		}
		s.Rate = s.Margin * next
	case !ok:
		// Just after a pause: no new evidence; hold under the limit.
		s.Rate = min(cur, s.Margin*s.Limit)
	case s.Limit > 0 && sent < clientBound*s.Margin*s.Limit*span.Seconds() && !sat:
		// The client sent clearly less than the rate it holds (CPU
		// starvation, GC, too few workers), and the server refused few:
		// a 429 now is requests its stalls bunched, not the server's
		// limit. The law goes on as if it had not come.
		return
	case sat || s.Limit == 0:
		// The server refused a notable share: it took what it could,
		// whatever its shape.
		s.Limit = acc / span.Seconds()
		if !sat {
			// First measure, unsaturated: the limit is near the rate that
			// met the 429.
			s.Limit = max(s.Limit, cur*(1-thr/(acc+thr)))
		}
		s.Rate = s.Margin * s.Limit
	case now.Sub(s.Since) > probeHold:
		// A probe was refused: the limit is the rate that met the 429
		// (a second's count is too coarse to tell a few percent) if that
		// is above it, and the margin held under it was safe. Only
		// saturation lowers the limit: a probe refused under it met
		// jitter, not the limit.
		s.Limit = max(s.Limit, cur)
		s.Margin = min(s.Margin+marginStep, maxMargin)
		s.Rate = s.Margin * s.Limit
	default:
		// Refused while holding under the limit, unsaturated: requests
		// collided at a strict bucket, or the limit is a little lower than
		// measured (a burst or a fixed window's edge counted in); hold
		// further under it, faster when the 429s are many. The probe
		// keeps its time: collisions must not stop the search for a
		// higher limit.
		step := marginStep
		if thr >= max(minSaturated, manyRefused*(acc+thr)) {
			step *= 3
		}
		s.Margin = max(s.Margin-step, minMargin)
		s.Rate = min(max(s.Margin*s.Limit, l.cfg.MinRate), l.ceiling)
		l.cut(now)
		return
	}
	s.Rate = min(max(s.Rate, l.cfg.MinRate), l.ceiling)
	s.Since = now
	l.cut(now)
}

// cut opens an episode at now. l.mu is held.
func (l *Limiter) cut(now time.Time) {
	l.cutAt = now
	l.cutAnswers = l.answers
	l.cutAccepted = l.accepted
	l.cutInflight = max(l.sent-l.answers, 0) + 1
}
