package ledger

import (
	"testing"
	"time"
)

func TestSamples_RoundTripInTimeOrder(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	other := startRun(t, l, targetB, "g.csv")
	t0 := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	want := []Sample{
		{At: t0, Span: 5 * time.Second, Requests: 100, Throttled: 3, Created: 90, Exists: 4, Rejected: 1, Failed: 1, InDoubt: 1, Rows: 110, RateLimit: 20},
		{At: t0.Add(5 * time.Second), Span: 2500 * time.Millisecond, Requests: 40, Created: 40, Rows: 40},
	}
	if err := l.AppendSamples(t.Context(), r.ID, want[:1]); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendSamples(t.Context(), r.ID, want[1:]); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendSamples(t.Context(), other.ID, want[:1]); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Samples(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Samples(%d) = %d samples, want %d", r.ID, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Samples(%d)[%d] = %+v, want %+v", r.ID, i, got[i], want[i])
		}
	}
	if got, err := l.Samples(t.Context(), 999); err != nil || len(got) != 0 {
		t.Errorf("Samples(999) = %v, %v; want none", got, err)
	}
}

// A 14-hour run sampled every 5 s keeps at most MaxSamples samples, which
// still add up to the run and cover its time without gaps or overlaps.
func TestSamples_LongRunStaysBounded(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	const n = 14 * 3600 / 5
	var sent, throttled int64
	batch := make([]Sample, 0, 6)
	for i := range n {
		rate := 20.0
		if i >= n/2 {
			rate = 10 // halved for the run's second half
		}
		s := Sample{At: t0.Add(time.Duration(i) * 5 * time.Second), Span: 5 * time.Second,
			Requests: int64(i % 7), Throttled: int64(i % 2), Created: 1, Rows: 1, RateLimit: rate}
		sent += s.Requests
		throttled += s.Throttled
		// The sampler writes about every 30 s.
		if batch = append(batch, s); len(batch) == cap(batch) || i == n-1 {
			if err := l.AppendSamples(t.Context(), r.ID, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Samples(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > MaxSamples || len(got) < MaxSamples/4 {
		t.Errorf("a 14-hour run keeps %d samples, want %d to %d", len(got), MaxSamples/4, MaxSamples)
	}
	var gotSent, gotThrottled, gotRows int64
	next := t0
	for i, s := range got {
		if !s.At.Equal(next) {
			t.Fatalf("sample %d starts at %v, want %v (right after the one before)", i, s.At, next)
		}
		next = s.At.Add(s.Span)
		gotSent += s.Requests
		gotThrottled += s.Throttled
		gotRows += s.Rows
	}
	if end := t0.Add(n * 5 * time.Second); !next.Equal(end) {
		t.Errorf("samples end at %v, want %v", next, end)
	}
	if gotSent != sent || gotThrottled != throttled || gotRows != n {
		t.Errorf("samples add up to %d sent, %d throttled, %d rows; want %d, %d, %d", gotSent, gotThrottled, gotRows, sent, throttled, n)
	}
	if first, last := got[0].RateLimit, got[len(got)-1].RateLimit; first != 20 || last != 10 {
		t.Errorf("rate limit at start, end = %v, %v; want 20, 10", first, last)
	}
}

func TestOwnRunAfter_FindsTheRunThisProcessStarted(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	old := startRun(t, l, targetA, "f.csv")
	finish(t, old, RunEnd{})
	before, err := l.LastRunID(t.Context())
	if err != nil || before != old.ID {
		t.Fatalf("LastRunID() = %d, %v; want %d", before, err, old.ID)
	}
	if _, ok, err := l.OwnRunAfter(t.Context(), targetA, before); ok || err != nil {
		t.Errorf("OwnRunAfter before the run started = %v, %v; want none", ok, err)
	}
	startRun(t, l, targetB, "g.csv") // another target's run is not it
	r := startRun(t, l, targetA, "f.csv")
	if id, ok, err := l.OwnRunAfter(t.Context(), targetA, before); id != r.ID || !ok || err != nil {
		t.Errorf("OwnRunAfter = %d, %v, %v; want %d", id, ok, err, r.ID)
	}
	if _, ok, err := l.OwnRunAfter(t.Context(), "never seen", 0); ok || err != nil {
		t.Errorf("OwnRunAfter(unknown target) = %v, %v; want none", ok, err)
	}
}
