package importer

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// Errors that abort a run because the server, not a row, is the problem.
// Each comes wrapped with the cause the operator needs: the URL and the
// error, the dominant failure, or the server's Retry-After.
var (
	// ErrUnreachable: nothing answered for UnreachableAfter and no request
	// of the run had succeeded yet.
	ErrUnreachable = errors.New("the server cannot be reached")
	// ErrServerFailing: every request failed with a 5xx or a transport
	// error for a sustained stretch (the circuit breaker opened).
	ErrServerFailing = errors.New("every request failed")
	// ErrThrottledTooLong: the server asked to wait longer than
	// MaxRetryAfter, or answered nothing but 429 for that long.
	ErrThrottledTooLong = errors.New("the server keeps throttling")
)

// StopConfig holds the rules that end a run the server cannot serve. Zero
// fields take the documented defaults; a negative duration or count turns
// its rule off.
type StopConfig struct {
	// UnreachableAfter: a run none of whose requests has had an answer from
	// the API aborts once requests have failed to reach it for this long
	// since the first one left. Default 30s.
	UnreachableAfter time.Duration
	// BreakerWindow and BreakerRequests: once at least BreakerRequests
	// requests in a row, or every request for BreakerWindow (at least
	// breakerMinRequests of them), failed with a 5xx or a transport error,
	// the run aborts. Defaults 60s and 200.
	BreakerWindow   time.Duration
	BreakerRequests int
	// MaxRetryAfter: a Retry-After longer than this aborts the run at
	// once, and so does a stretch this long in which every answer was a
	// 429. Default 10m.
	MaxRetryAfter time.Duration
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// breakerMinRequests keeps a slow trickle of failures (a few requests in
// a minute, one worker backing off) from opening the breaker on time alone.
const breakerMinRequests = 20

func (c StopConfig) withDefaults() StopConfig {
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = 30 * time.Second
	}
	if c.BreakerWindow == 0 {
		c.BreakerWindow = time.Minute
	}
	if c.BreakerRequests == 0 {
		c.BreakerRequests = 200
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// stopRules watches every request's verdict and decides when the run must
// end because of the server. A row's own failure (a 4xx) never counts: the
// server answered, so it works. Safe for concurrent use.
type stopRules struct {
	cfg StopConfig

	mu        sync.Mutex
	answered  bool      // some request of the run got an answer from the API
	firstSend time.Time // when the run's first request left
	warned    bool      // firstUnreached has said so

	failSince time.Time      // first of the current run of failed requests
	failCount int            // its length
	causes    map[string]int // its failures by cause, for the message

	throttleSince time.Time // first of the current run of 429s
	throttles     int       // 429s in the current run of them
}

func newStopRules(cfg StopConfig) *stopRules {
	return &stopRules{cfg: cfg.withDefaults(), causes: map[string]int{}}
}

// sending notes that a request is about to leave: the unreachable rule
// counts from the first.
func (s *stopRules) sending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstSend.IsZero() {
		s.firstSend = s.cfg.Now()
	}
}

// firstUnreached reports true once: for the first request of the run that
// did not reach the API while none had, so that the operator hears of it at
// once rather than at the abort.
func (s *stopRules) firstUnreached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answered || s.warned {
		return false
	}
	s.warned = true
	return true
}

// maxCauses bounds the distinct causes kept for the breaker's message.
const maxCauses = 32

// observe takes one request's verdict and returns a wrapped sentinel when
// the run must stop, or nil.
func (s *stopRules) observe(v ripio.Verdict) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if v.Outcome == ripio.Throttled || v.Outcome == ripio.TokenThrottled {
		s.answered = true
		if s.cfg.MaxRetryAfter > 0 && v.RetryAfter > s.cfg.MaxRetryAfter {
			return fmt.Errorf("%w: it asked to wait %s (Retry-After), over --max-retry-after %s",
				ErrThrottledTooLong, v.RetryAfter.Round(time.Second), s.cfg.MaxRetryAfter)
		}
		if s.throttleSince.IsZero() {
			s.throttleSince = now
		}
		s.throttles++
		return s.tooLong(now)
	}
	s.throttleSince, s.throttles = time.Time{}, 0
	if !serverFailure(v) {
		s.answered = true
		s.failSince, s.failCount = time.Time{}, 0
		clear(s.causes)
		return nil
	}
	cause := causeOf(v)
	if s.failCount == 0 {
		s.failSince = now
	}
	s.failCount++
	if _, ok := s.causes[cause]; ok || len(s.causes) < maxCauses {
		s.causes[cause]++
	}
	if !s.answered && v.HTTPStatus == 0 && s.cfg.UnreachableAfter > 0 {
		if s.firstSend.IsZero() {
			s.firstSend = now
		}
		if now.Sub(s.firstSend) >= s.cfg.UnreachableAfter {
			return fmt.Errorf("%w for %s: %s", ErrUnreachable, now.Sub(s.firstSend).Round(time.Second), cause)
		}
	}
	stretch := now.Sub(s.failSince)
	if (s.cfg.BreakerRequests > 0 && s.failCount >= s.cfg.BreakerRequests) ||
		(s.cfg.BreakerWindow > 0 && stretch >= s.cfg.BreakerWindow && s.failCount >= breakerMinRequests) {
		return fmt.Errorf("%w: the last %d requests over %s failed, most often %s",
			ErrServerFailing, s.failCount, stretch.Round(time.Second), s.dominant())
	}
	return nil
}

// tooLong returns ErrThrottledTooLong, wrapped, once every answer since
// throttleSince was a 429 for MaxRetryAfter. s.mu is held.
func (s *stopRules) tooLong(now time.Time) error {
	if s.cfg.MaxRetryAfter > 0 && !s.throttleSince.IsZero() && now.Sub(s.throttleSince) >= s.cfg.MaxRetryAfter {
		return fmt.Errorf("%w: every answer for %s was 429 Too Many Requests (--max-retry-after %s)",
			ErrThrottledTooLong, now.Sub(s.throttleSince).Round(time.Second), s.cfg.MaxRetryAfter)
	}
	return nil
}

// throttledUntil returns when the answers, all 429s since the last other
// one, will have lasted MaxRetryAfter; ok is false while the last answer
// was not a 429, or with no such limit. One 429 is no stretch: the row it
// refused waits its Retry-After (MaxRetryAfter at most) and goes again,
// and that answer decides.
func (s *stopRules) throttledUntil() (until time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxRetryAfter <= 0 || s.throttles < 2 {
		return time.Time{}, false
	}
	return s.throttleSince.Add(s.cfg.MaxRetryAfter), true
}

// throttledTooLong is tooLong now.
func (s *stopRules) throttledTooLong() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tooLong(s.cfg.Now())
}

// waitForAnswer reports whether a row that could not be sent should wait
// for the unreachable rule rather than spend an attempt: while no request
// of the run has had an answer, its end is the run's abort, which leaves
// the row as it was, so that the next run simply starts it.
func (s *stopRules) waitForAnswer() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.answered && s.cfg.UnreachableAfter > 0
}

// serverFailure reports whether v says the server, or the way to it, is
// failing: a 5xx, no answer at all, or any answer that leaves the row in
// doubt (a proxy's 200 maintenance page is no success).
func serverFailure(v ripio.Verdict) bool {
	switch v.Outcome {
	case ripio.InDoubt:
		return true
	case ripio.NotSent:
		return v.HTTPStatus == 0 || v.HTTPStatus >= 500
	}
	return false
}

// causeOf names a failure for grouping: the HTTP status, or the transport
// error with what varies between requests (ports, addresses) kept, since
// it names where the run was pointed.
func causeOf(v ripio.Verdict) string {
	switch {
	case v.HTTPStatus >= 200 && v.HTTPStatus < 300:
		return fmt.Sprintf("%d answers that are not the create answer", v.HTTPStatus)
	case v.HTTPStatus != 0:
		return fmt.Sprintf("%d %s", v.HTTPStatus, http.StatusText(v.HTTPStatus))
	}
	r := v.Reason
	if r == "" {
		r = string(v.Outcome)
	}
	const limit = 300
	if len(r) > limit {
		r = strings.ToValidUTF8(r[:limit], "") + "…"
	}
	return r
}

// dominant is the most frequent cause of the current failure run, with its
// count; ties go to the alphabetically first, so messages are stable.
func (s *stopRules) dominant() string {
	type kv struct {
		cause string
		n     int
	}
	all := make([]kv, 0, len(s.causes))
	for c, n := range s.causes {
		all = append(all, kv{c, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].cause < all[j].cause
	})
	if len(all) == 0 {
		return "an unknown error"
	}
	return fmt.Sprintf("%s (%d of them)", all[0].cause, all[0].n)
}
