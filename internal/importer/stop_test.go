package importer

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) rules(cfg StopConfig) *stopRules {
	cfg.Now = c.now
	return newStopRules(cfg)
}

var (
	refused     = ripio.Verdict{Outcome: ripio.NotSent, Reason: "ripio: create customer: not sent: dial tcp 127.0.0.1:9: connect: connection refused"}
	unavailable = ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 503, Reason: "ripio: 503"}
	created     = ripio.Verdict{Outcome: ripio.Created, HTTPStatus: 201}
	rejected    = ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400}
	throttled   = ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429, RetryAfter: time.Second}
)

// feed observes v every step for n steps and returns the first error and
// the step it came at (-1: none).
func feed(s *stopRules, c *fakeClock, v ripio.Verdict, n int, step time.Duration) (int, error) {
	for i := range n {
		if err := s.observe(v); err != nil {
			return i, err
		}
		c.add(step)
	}
	return -1, nil
}

func TestStopRules_UnreachableAbortsAfterTheWindowNamingTheCause(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerRequests: -1, BreakerWindow: -1})
	if !s.waitForAnswer() {
		t.Fatal("waitForAnswer() = false before any request, want true")
	}
	s.sending()
	c.add(5 * time.Second) // the first request takes 5 s to fail
	at, err := feed(s, c, refused, 1000, time.Second)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("observe(connection refused) for 1000 s = %v, want ErrUnreachable", err)
	}
	if at != 25 {
		t.Errorf("aborted at second %d after the first failure, want 25 (30 after the first request left)", at)
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "127.0.0.1:9") {
		t.Errorf("error %q does not name the cause and the address", err)
	}
}

func TestStopRules_UnreachableNeverFiresOnceTheServerAnswered(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerRequests: -1, BreakerWindow: -1})
	if err := s.observe(rejected); err != nil {
		t.Fatal(err)
	}
	if _, err := feed(s, c, refused, 120, time.Second); err != nil {
		t.Errorf("observe(connection refused) after an answer = %v, want nil (the breaker's job, off here)", err)
	}
	if s.waitForAnswer() {
		t.Error("waitForAnswer() = true after a 400 answer, want false")
	}
}

func TestStopRules_BreakerOpensAfterTheRequestCount(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerRequests: 200})
	if err := s.observe(created); err != nil {
		t.Fatal(err)
	}
	at, err := feed(s, c, unavailable, 1000, time.Millisecond)
	if !errors.Is(err, ErrServerFailing) {
		t.Fatalf("observe(503) x1000 = %v, want ErrServerFailing", err)
	}
	if at != 199 {
		t.Errorf("opened at request %d, want the 200th (index 199)", at)
	}
	if !strings.Contains(err.Error(), "503 Service Unavailable (200 of them)") {
		t.Errorf("error %q does not name the dominant cause with its count", err)
	}
}

func TestStopRules_BreakerOpensAfterTheWindowWithEnoughRequests(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerWindow: time.Minute})
	// A few failures a minute (one worker backing off) never open it.
	if _, err := feed(s, c, unavailable, breakerMinRequests-1, 10*time.Second); err != nil {
		t.Fatalf("observe(503) every 10 s, %d times = %v, want nil", breakerMinRequests-1, err)
	}
	if err := s.observe(unavailable); !errors.Is(err, ErrServerFailing) {
		t.Errorf("observe(503) number %d, %s after the first = %v, want ErrServerFailing",
			breakerMinRequests, time.Duration(breakerMinRequests-1)*10*time.Second, err)
	}
}

func TestStopRules_ASuccessClosesTheBreaker(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerRequests: 200, BreakerWindow: -1})
	for range 10 {
		if _, err := feed(s, c, unavailable, 150, time.Millisecond); err != nil {
			t.Fatalf("150 failures between successes = %v, want nil", err)
		}
		if err := s.observe(created); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopRules_RowErrorsNeverCount(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{})
	if _, err := feed(s, c, rejected, 10000, 10*time.Millisecond); err != nil {
		t.Errorf("observe(400) x10000 = %v, want nil: the server answered", err)
	}
}

func TestStopRules_LongRetryAfterAbortsAtOnce(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{MaxRetryAfter: 10 * time.Minute})
	year := throttled
	year.RetryAfter = 365 * 24 * time.Hour
	err := s.observe(year)
	if !errors.Is(err, ErrThrottledTooLong) {
		t.Fatalf("observe(429, Retry-After a year) = %v, want ErrThrottledTooLong", err)
	}
	if !strings.Contains(err.Error(), "8760h") {
		t.Errorf("error %q does not name the server's Retry-After", err)
	}
	ok := throttled
	ok.RetryAfter = 10 * time.Minute
	if err := c.rules(StopConfig{MaxRetryAfter: 10 * time.Minute}).observe(ok); err != nil {
		t.Errorf("observe(429, Retry-After = the cap) = %v, want nil", err)
	}
}

func TestStopRules_OnlyThrottledForTheCapAborts(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{MaxRetryAfter: 10 * time.Minute})
	at, err := feed(s, c, throttled, 1000, time.Second)
	if !errors.Is(err, ErrThrottledTooLong) {
		t.Fatalf("observe(429) every second for 1000 s = %v, want ErrThrottledTooLong", err)
	}
	if at != 600 {
		t.Errorf("aborted at second %d, want 600", at)
	}
	// One accepted request between 429s starts the stretch again.
	s = c.rules(StopConfig{MaxRetryAfter: 10 * time.Minute})
	for range 5 {
		if _, err := feed(s, c, throttled, 500, time.Second); err != nil {
			t.Fatalf("500 s of 429s between accepted requests = %v, want nil", err)
		}
		if err := s.observe(created); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopRules_NegativeTurnsARuleOff(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{UnreachableAfter: -1, BreakerRequests: -1, BreakerWindow: -1, MaxRetryAfter: -1})
	if s.waitForAnswer() {
		t.Error("waitForAnswer() = true with the unreachable rule off, want false: rows would retry forever")
	}
	for _, v := range []ripio.Verdict{refused, unavailable, throttled} {
		if _, err := feed(s, c, v, 5000, time.Second); err != nil {
			t.Errorf("observe(%s) with every rule off = %v, want nil", v.Outcome, err)
		}
	}
}

func TestStopRules_CausesStayBounded(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	s := c.rules(StopConfig{BreakerRequests: -1, BreakerWindow: -1, UnreachableAfter: -1})
	s.observe(created)
	for i := range 10000 {
		v := refused
		v.Reason = strconv.Itoa(i) + strings.Repeat("x", 10000)
		s.observe(v)
	}
	if len(s.causes) > maxCauses {
		t.Errorf("len(causes) = %d, want at most %d", len(s.causes), maxCauses)
	}
	for c := range s.causes {
		if len(c) > 400 {
			t.Fatalf("a cause of %d bytes kept, want at most about 300", len(c))
		}
	}
}
