package sandbox_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// createN sends n creates and returns how many were throttled, and the
// Retry-After of the last 429.
func createN(t *testing.T, s *sandbox.Server, tok, prefix string, n int) (throttled int, retryAfter string) {
	t.Helper()
	for i := range n {
		a := create(t, s, tok, customerJSON(fmt.Sprint(prefix, i), "a@example.com", "INDIVIDUAL"))
		switch a.status {
		case 201:
		case 429:
			throttled++
			retryAfter = a.header.Get("Retry-After")
		default:
			t.Fatalf("create %s%d: status = %d, want 201 or 429; body %s", prefix, i, a.status, a.raw)
		}
	}
	return throttled, retryAfter
}

func TestCreate_FixedWindowThrottles(t *testing.T) {
	t.Parallel()
	for _, retryAfter := range []bool{true, false} {
		t.Run(fmt.Sprint("RetryAfter", retryAfter), func(t *testing.T) {
			t.Parallel()
			clk := newClock() // 6µs into a second
			s := start(t, sandbox.Options{RateLimit: 5, RateWindow: time.Second, RetryAfter: retryAfter, Now: clk.Now})
			tok := token(t, s)
			// The whole window's 5 at once (no bucket spacing), then 429s.
			if thr, ra := createN(t, s, tok, "w1-", 8); thr != 3 {
				t.Errorf("8 creates in one 5/s window: %d throttled, want 3", thr)
			} else if want := map[bool]string{true: "1", false: ""}[retryAfter]; ra != want {
				t.Errorf("Retry-After = %q, want %q", ra, want)
			}
			// The next window, aligned to the clock's second, takes 5 more.
			clk.Advance(time.Second - 6*time.Microsecond)
			if thr, _ := createN(t, s, tok, "w2-", 6); thr != 1 {
				t.Errorf("6 creates in the next window: %d throttled, want 1", thr)
			}
		})
	}
}

func TestCreate_RateScheduleMovesTheLimit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		window time.Duration
		want   int // of 5 after the step to 2/s
	}{
		{0, 1},           // a full bucket of 4 at the new rate
		{time.Second, 3}, // a window of 2
	} {
		window := tt.window
		t.Run(fmt.Sprint("Window", window), func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			clk.Advance(time.Second - 6*time.Microsecond) // to a whole second
			s := start(t, sandbox.Options{
				RateLimit: 4, RateBurst: 4, RateWindow: window, RetryAfter: true, Now: clk.Now,
				RateSchedule: []sandbox.RateStep{{After: 10 * time.Second, Limit: 2}, {After: 20 * time.Second, Limit: 0}},
			})
			tok := token(t, s)
			if thr, _ := createN(t, s, tok, "a", 5); thr != 1 {
				t.Errorf("5 creates at 4/s: %d throttled, want 1", thr)
			}
			clk.Advance(10 * time.Second)
			if thr, _ := createN(t, s, tok, "b", 5); thr != tt.want {
				t.Errorf("5 creates after the step to 2/s: %d throttled, want %d", thr, tt.want)
			}
			clk.Advance(10 * time.Second)
			if thr, _ := createN(t, s, tok, "c", 50); thr != 0 {
				t.Errorf("50 creates after the step to no limit: %d throttled, want 0", thr)
			}
		})
	}
}

func TestNewServer_RefusesBadShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts sandbox.Options
		want string
	}{
		{"NegativeWindow", sandbox.Options{RateWindow: -time.Second}, "RateWindow"},
		{"StepsOutOfOrder", sandbox.Options{RateSchedule: []sandbox.RateStep{{After: 2 * time.Second}, {After: time.Second}}}, "RateSchedule[1]"},
		{"NegativeStep", sandbox.Options{RateSchedule: []sandbox.RateStep{{After: time.Second, Limit: -1}}}, "RateSchedule[0].Limit"},
	}
	for _, tt := range tests {
		s, err := sandbox.NewServer(tt.opts)
		if err == nil {
			s.Close()
			t.Errorf("%s: NewServer(%+v) = nil error, want one naming %s", tt.name, tt.opts, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewServer error = %q, want it to name %s", tt.name, err, tt.want)
		}
	}
}
