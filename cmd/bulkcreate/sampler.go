package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// sampleEvery is how often the sampler takes a sample; the environment's
// BULKCREATE_SAMPLE_EVERY (a Go duration) overrides it, for tests that want
// a series from a run of seconds.
const sampleEvery = 5 * time.Second

// sampler records an import's time series in the ledger for the run
// report: every interval, the requests and rows since the last sample (from
// the importer's progress) and the rate limit in force. It writes each
// sample as it takes it, so a crash loses the last interval at most.
//
// It cannot see the importer's run, so it finds it in the ledger: the first
// run on the target, newer than the newest before the import began, that
// this process started. Samples taken before that run is recorded are kept
// until it is.
type sampler struct {
	l        *ledger.Ledger
	im       *importer.Importer
	target   string
	logger   *slog.Logger
	interval time.Duration
	before   int64 // the ledger's newest run before the import

	runID   int64
	pending []ledger.Sample
	last    importer.Summary
	lastAt  time.Time
	failed  bool // a write failed: stop writing, the import reports the ledger's error

	done chan struct{}
	wg   sync.WaitGroup
}

// startSampler starts sampling im's run, or returns nil for a dry run (no
// run, no limiter) or when the ledger cannot say where runs begin. Call it
// before Import, and stop after.
func startSampler(ctx context.Context, e env, l *ledger.Ledger, im *importer.Importer, target string, logger *slog.Logger) *sampler {
	if l == nil || im.Limiter() == nil {
		return nil
	}
	before, err := l.LastRunID(ctx)
	if err != nil {
		logger.Warn("run report: no time series for this run", "err", err)
		return nil
	}
	interval := sampleEvery
	if d, err := time.ParseDuration(e.getenv("BULKCREATE_SAMPLE_EVERY")); err == nil && d > 0 {
		interval = d
	}
	s := &sampler{l: l, im: im, target: target, logger: logger, interval: interval, before: before,
		lastAt: time.Now(), done: make(chan struct{})}
	s.wg.Add(1)
	go s.loop(ctx)
	return s
}

// stop takes the last sample, up to now, and writes what is pending; the
// ledger's Close commits it. A nil sampler does nothing.
func (s *sampler) stop() {
	if s == nil {
		return
	}
	close(s.done)
	s.wg.Wait()
}

func (s *sampler) loop(ctx context.Context) {
	defer s.wg.Done()
	// The import's context ends on Ctrl-C while the run still finishes:
	// its last samples are still wanted.
	ctx = context.WithoutCancel(ctx)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			s.take(ctx)
			return
		case <-t.C:
			s.take(ctx)
		}
	}
}

// take samples the time since the last sample and writes what it can.
func (s *sampler) take(ctx context.Context) {
	now := time.Now()
	p := s.im.Progress()
	st := s.im.Limiter().Stats()
	sm := ledger.Sample{
		At: s.lastAt, Span: now.Sub(s.lastAt),
		Requests: p.Requests - s.last.Requests, Throttled: p.Throttled - s.last.Throttled,
		Created: p.Created - s.last.Created, Exists: p.Exists - s.last.Exists, Rejected: p.Rejected - s.last.Rejected,
		Failed: p.Failed - s.last.Failed, InDoubt: p.InDoubt - s.last.InDoubt,
		Rows:      finished(p) - finished(s.last),
		RateLimit: st.Rate, // +Inf (no limit) is stored as 0
	}
	s.last, s.lastAt = p, now
	if s.failed {
		return
	}
	s.pending = append(s.pending, sm)
	if s.runID == 0 {
		id, ok, err := s.l.OwnRunAfter(ctx, s.target, s.before)
		if err != nil || !ok {
			return // not started yet (or the ledger cannot say): keep them
		}
		s.runID = id
	}
	if err := s.l.AppendSamples(ctx, s.runID, s.pending); err != nil {
		s.failed = true
		// The writer failed: the import stops and says why.
		s.logger.Debug("run report: stopped recording the time series", "err", err)
	}
	s.pending = s.pending[:0]
}
