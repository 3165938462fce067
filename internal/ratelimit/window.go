package ratelimit

import (
	"time"
)

// window counts answers in 100ms slots over the last three seconds.
type window struct {
	acc, thr [slots]int
	col      [slots]int   // clumps whose 429s were taken for collisions, not in thr
	sent     [slots]int   // departures
	tick     [slots]int64 // which 100ms tick each slot holds
}

const (
	slot    = 100 * time.Millisecond
	second  = 10 // slots
	seconds = 3  // seconds kept
	slots   = seconds * second
)

func (w *window) add(now time.Time, acc, thr, sent int) {
	w.count(now, acc, thr, 0, sent)
}

// collide counts a clump whose 429s were taken for collisions at now.
func (w *window) collide(now time.Time) {
	w.count(now, 0, 0, 1, 0)
}

func (w *window) count(now time.Time, acc, thr, col, sent int) {
	t := now.UnixNano() / int64(slot)
	i := t % slots
	if w.tick[i] != t {
		w.tick[i], w.acc[i], w.thr[i], w.col[i], w.sent[i] = t, 0, 0, 0, 0
	}
	w.acc[i] += acc
	w.thr[i] += thr
	w.col[i] += col
	w.sent[i] += sent
}

// lastSecond returns the answers of the last second (to slot precision:
// the current slot and the nine before) and the time they span. ok is
// false unless the whole span is after since: a shorter one makes a
// server's burst allowance or a fixed window's edge read as its rate.
func (w *window) lastSecond(now, since time.Time) (acc, thr, sent float64, span time.Duration, ok bool) {
	t := now.UnixNano() / int64(slot)
	first := t - second + 1
	start := time.Unix(0, first*int64(slot))
	if since.IsZero() || since.After(start) {
		return 0, 0, 0, 0, false
	}
	for i := range slots {
		if w.tick[i] >= first && w.tick[i] <= t {
			acc += float64(w.acc[i])
			thr += float64(w.thr[i])
			sent += float64(w.sent[i])
		}
	}
	return acc, thr, sent, now.Sub(start), true
}

// refusing returns how many of the last second's slots hold a 429.
func (w *window) refusing(now time.Time) int {
	t := now.UnixNano() / int64(slot)
	n := 0
	for i := range slots {
		if w.tick[i] > t-second && w.tick[i] <= t && w.thr[i] > 0 {
			n++
		}
	}
	return n
}

// refusedEach returns the 429s of the last three seconds as a share of
// their answers, and whether each of the three holds one. ok is false
// unless all three are after since.
func (w *window) refusedEach(now, since time.Time) (share float64, each, ok bool) {
	t := now.UnixNano() / int64(slot)
	first := t - slots + 1
	if since.IsZero() || since.After(time.Unix(0, first*int64(slot))) {
		return 0, false, false
	}
	var acc, thr int
	var in [seconds]bool
	for i := range slots {
		if w.tick[i] >= first && w.tick[i] <= t {
			acc += w.acc[i]
			thr += w.thr[i]
			if w.thr[i] > 0 {
				in[(w.tick[i]-first)/second] = true
			}
		}
	}
	if acc+thr == 0 {
		return 0, false, true
	}
	each = true
	for _, refused := range in {
		each = each && refused
	}
	return float64(thr) / float64(acc+thr), each, true
}

// colliding returns the clumps whose 429s were taken for collisions as a
// share of the last second's answers, and how many of its slots hold one.
func (w *window) colliding(now time.Time) (share float64, in int) {
	t := now.UnixNano() / int64(slot)
	var col, all int
	for i := range slots {
		if w.tick[i] > t-second && w.tick[i] <= t {
			col += w.col[i]
			all += w.acc[i] + w.thr[i] + w.col[i]
			if w.col[i] > 0 {
				in++
			}
		}
	}
	if all == 0 {
		return 0, 0
	}
	return float64(col) / float64(all), in
}
