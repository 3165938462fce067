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
	if l.pendingN > 0 && !l.tooManyCollisions(now) {
		l.collide(now) // its 429s collided
		l.pendingAt, l.pendingN = time.Time{}, 0
	}
	l.answers++
	l.accepted++
	l.backoffs = 0
	l.refusedInARow = 0
	l.lastAccepted = now
	if now.Sub(l.closedAt) >= closedFor {
		l.reopened = true // not an answer the closure overtook
	}
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
		// Before a limit is measured, what it accepted since the start,
		// per second over a second at least, is its limit: it opens and
		// closes (a fixed window, which took all it will in its first
		// second before it closed). Its 429s count among the second's
		// answers all the same.
		//
		// When the limit was measured so and the server closes again
		// within reclosed of the last time, having opened between, it
		// opens and closes on a clock: what it accepted in the last
		// second is its window (the first count, from the start, may
		// hold the end of one window and the whole next), and the limit
		// drops to it. A limit measured otherwise is kept (that second
		// may hold a bucket's outage and what the client sent below its
		// limit), but for one: the rate that grew past the limit at the
		// start, when the server closes within reclosed of that and
		// twice more so. A rate that grows past a window in the run's
		// first second may read it as up to twice its allowance, and
		// then meets it closed every second.
		l.win.add(now, 0, l.pendingN+1, 0)
		l.pendingAt, l.pendingN = time.Time{}, 0
		l.pause(now, retryAfter)
		again := l.reopened && !l.closedAt.IsZero() && now.Sub(l.closedAt) <= reclosed
		if l.reopened || l.closedAt.IsZero() {
			if again {
				l.reclosures++
			} else {
				l.reclosures, l.closuresFrom = 0, now
			}
			l.closedAt = now
		}
		l.reopened = false
		s := &l.st
		limit := 0.0
		switch {
		case s.Limit == 0 && l.accepted > 0:
			limit = float64(l.accepted) / max(now.Sub(l.start).Seconds(), 1)
		case again && (l.closedLimit || l.grewPastAWindow()):
			if acc, _, _, _, ok := l.win.lastSecond(now, l.start); ok && acc > 0 {
				limit = acc
			}
		}
		if limit > 0 && (s.Limit == 0 || limit < s.Limit) {
			s.Limit = limit
			s.Rate = min(max(s.Margin*s.Limit, l.cfg.MinRate), s.RateAt(now, l.ceiling))
			s.Since = now
			l.closedLimit = true
		}
		return
	}
	if l.clumpAccepted && !l.tooManyCollisions(now) {
		l.collide(now)
		return
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
		l.clumpCollided = false
	}
	l.lastAnswer = now
}

// grewPastAWindow reports whether the limit is the rate that grew past the
// server's at the start, and the closures in a row began within reclosed
// of that. l.mu is held.
func (l *Limiter) grewPastAWindow() bool {
	if l.grownAt.IsZero() {
		return false
	}
	after := l.closuresFrom.Sub(l.grownAt)
	return after <= sameEvent && l.reclosures >= 1 || after <= reclosed && l.reclosures >= 2
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
	inEpisode := !l.cutAt.IsZero() && l.answers-l.cutAnswers < l.cutInflight && at.Sub(l.cutAt) < maxEpisode
	if inEpisode && (l.cutSaturated || !l.saturated(at)) {
		return
	}
	l.decrease(at)
}

// saturated reports whether the server refused saturated of the last
// second's answers or more, in spread of its 100ms slots at least:
// refusing what it cannot take, not requests that jitter brought early or
// a stall of the client's machine bunched; or whether too many 429s were
// taken for collisions (see tooManyCollisions); or, where the limit was
// measured when the server closed, whether it refused refusedShare of the
// last three seconds' answers, in each of them (see refusedShare). l.mu
// is held.
func (l *Limiter) saturated(now time.Time) bool {
	acc, thr, _, _, ok := l.win.lastSecond(now, l.evidence)
	if ok && thr >= saturated*(acc+thr) && l.win.refusing(now) >= spread || l.tooManyCollisions(now) {
		return true
	}
	if !l.closedLimit {
		return false
	}
	share, each, ok := l.win.refusedEach(now, l.evidence)
	return ok && each && share >= refusedShare
}

// collide counts a clump whose 429s were taken for collisions, once. l.mu
// is held.
func (l *Limiter) collide(now time.Time) {
	if !l.clumpCollided {
		l.clumpCollided = true
		l.win.collide(now)
	}
}

// tooManyCollisions reports whether clumps whose 429s were taken for
// collisions were a quarter or more of the last second's answers, in
// spread of its 100ms slots at least. A stall of the client's machine
// bunches many requests into one clump, whatever share of them the server
// refuses; a server over its limit whose creates take about an interval
// longer than its 429s answers each 429 with the create sent before it,
// a clump of two for every other answer. l.mu is held.
func (l *Limiter) tooManyCollisions(now time.Time) bool {
	share, in := l.win.colliding(now)
	return share >= collisionShare && in >= spread
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
	cur := s.RateAt(now, l.ceiling)
	l.cutSaturated = false
	switch {
	case s.Limit == 0 && (s.Since.IsZero() || now.Sub(s.Since) <= startHold):
		// Early, and the rate was not growing: still too fast. The
		// second of evidence starts again at the new rate.
		s.Rate = l.early(now, cur)
		l.evidence = now
	case s.Limit == 0:
		// Early, while the rate grew: the limit is about the rate that
		// met it. The second of evidence starts at the limit.
		s.Limit = (1 - backoff) * cur
		s.Rate = s.Margin * cur
		l.grownAt = now
		l.evidence = now
	default:
		l.step(now, cur)
	}
	s.Rate = min(max(s.Rate, l.cfg.MinRate), l.ceiling)
	s.Since = now
	l.cut(now)
}

// step lowers the rate once the limit is known: by backoff, and by a
// quarter of the share of the last second's answers that were 429s on
// top. While the server is not saturated (see saturated), it took about
// what it was sent: the limit is at least the rate that met the 429 (what
// the client really sent, if less), and the rate stays at floorShare of
// the limit at the least, so that a slow or jittery client is not read as
// the limit. Once it is saturated, it refused what it could not take: the
// limit is no more than the rate stepped down to, nor than what the
// server accepted, unless the client was slow. The client was slow if it
// sent clearly less in the last second than the rate in force at its
// start (the rate grows after a cut, so that is the least it was since):
// CPU starvation, GC, or workers asleep on a throttled row's Retry-After.
// l.mu is held.
func (l *Limiter) step(now time.Time, cur float64) {
	s := &l.st
	acc, thr, sent, span, ok := l.win.lastSecond(now, l.evidence)
	if !ok {
		// Just after a pause: no new evidence, and the rate in force
		// grew through it; step down from under the limit.
		s.Rate = max((1-backoff)*min(cur, s.Limit), floorShare*s.Limit)
		return
	}
	share, sentRate := thr/max(acc+thr, 1), sent/span.Seconds()
	slow := sentRate < clientBound*s.RateAt(maxTime(now.Add(-span), s.Since), l.ceiling)
	next := (1 - min(backoff+share/4, 0.5)) * cur
	if l.cutSaturated = l.saturated(now); l.cutSaturated {
		limit := acc / span.Seconds()
		if slow {
			limit = s.Limit // it accepted less than it could take
		}
		s.Limit, s.Rate = min(limit, next), next
		return
	}
	s.Limit = max(s.Limit, min(cur, sentRate))
	s.Rate = max(next, floorShare*s.Limit)
}

// early returns the rate after a 429 that comes before any limit is
// measured and while the rate was not growing. At the first 429 every
// request left at cur, so the server's rate is cur times the share of the
// answers it accepted. After, the client has sent faster than the server
// took since the start, so its rate is what it accepted per second since
// then (a little less: answers take time to come back). Bounded to
// [cur/4, cur]; cur/2 while nothing was accepted. l.mu is held.
func (l *Limiter) early(now time.Time, cur float64) float64 {
	if math.IsInf(cur, 1) {
		cur = max(float64(l.sent)/max(now.Sub(l.start).Seconds(), 1), 10*l.cfg.MinRate)
	}
	next := cur / 2
	switch {
	case l.accepted == 0 || !now.After(l.start):
	case l.cutAt.IsZero():
		next = cur * float64(l.accepted) / float64(l.answers)
	default:
		next = float64(l.accepted) / now.Sub(l.start).Seconds()
	}
	return l.st.Margin * min(max(next, cur/4), cur)
}

// cut opens an episode at now. l.mu is held.
func (l *Limiter) cut(now time.Time) {
	l.cutAt = now
	l.cutAnswers = l.answers
	l.cutInflight = max(l.sent-l.answers, 0) + 1
}
