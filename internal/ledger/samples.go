package ledger

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"
)

// Sample is what a run did over one stretch of time, for the run report's
// charts. The counters are the stretch's own, not running totals.
type Sample struct {
	At   time.Time // start of the stretch
	Span time.Duration

	Requests  int64 // create requests sent
	Throttled int64 // of them answered 429
	// Rows that ended so, as the importer counts them: created and exists
	// come from answers; rejected includes rows rejected before and skipped
	// unchanged.
	Created, Exists, Rejected, Failed, InDoubt int64
	Rows                                       int64 // rows finished, whatever their end (skipped and invalid too)
	// RateLimit is the client's rate limit in force, requests per second;
	// 0 when there is none. A merged sample holds the mean over its time.
	RateLimit float64
}

// MaxSamples bounds the samples one run keeps: past it, AppendSamples merges
// them into MaxSamples/2 buckets of equal time, so a 14-hour run sampled
// every 5 s (10,080 samples) keeps at most 1,024, under 100 KB of ledger:
// its older stretches in buckets of a minute or two, its last ones finer.
const MaxSamples = 1024

// AppendSamples adds samples to run runID's series, in time order after
// those it holds, and merges the series into coarser buckets when it holds
// more than MaxSamples. It does not wait for the write: the ledger's writer
// commits it with the run's next batch, and Close commits what is queued.
func (l *Ledger) AppendSamples(ctx context.Context, runID int64, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	samples = append([]Sample(nil), samples...) // the writer reads them later
	err := l.w.submit(ctx, func(tx *wtx) error {
		for _, s := range samples {
			// The span from rounded ends, so that samples that meet still
			// meet in milliseconds.
			at := s.At.UnixMilli()
			span := s.At.Add(s.Span).UnixMilli() - at
			if _, err := tx.exec(`INSERT INTO run_samples (run_id, at_ms, span_ms, requests, throttled,
					created, exists_, rejected, failed, in_doubt, rows_done, rate_milli)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				runID, at, span, s.Requests, s.Throttled,
				s.Created, s.Exists, s.Rejected, s.Failed, s.InDoubt, s.Rows, rateMilli(s.RateLimit)); err != nil {
				return err
			}
		}
		n, err := tx.queryInt(`SELECT COUNT(*) FROM run_samples WHERE run_id = ?`, runID)
		if err != nil || n <= MaxSamples {
			return err
		}
		return compactSamples(tx, runID)
	}, false)
	if err != nil {
		return fmt.Errorf("ledger: append samples: %w", err)
	}
	return nil
}

func rateMilli(r float64) int64 {
	if r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0
	}
	return int64(math.Round(r * 1000))
}

// compactSamples merges run runID's samples into MaxSamples/2 buckets of
// equal time from its first sample. Counters add up; the rate limit is the
// mean over the time it was set.
func compactSamples(tx *wtx, runID int64) error {
	last, err := tx.queryInt(`SELECT MAX(id) FROM run_samples WHERE run_id = ?`, runID)
	if err != nil {
		return err
	}
	start, err := tx.queryInt(`SELECT MIN(at_ms) FROM run_samples WHERE run_id = ?`, runID)
	if err != nil {
		return err
	}
	end, err := tx.queryInt(`SELECT MAX(at_ms + span_ms) FROM run_samples WHERE run_id = ?`, runID)
	if err != nil {
		return err
	}
	width := max(1, (end-start+MaxSamples/2-1)/(MaxSamples/2))
	if _, err := tx.exec(`INSERT INTO run_samples (run_id, at_ms, span_ms, requests, throttled,
			created, exists_, rejected, failed, in_doubt, rows_done, rate_milli)
		SELECT run_id, MIN(at_ms), SUM(span_ms), SUM(requests), SUM(throttled),
			SUM(created), SUM(exists_), SUM(rejected), SUM(failed), SUM(in_doubt), SUM(rows_done),
			COALESCE(SUM(rate_milli * span_ms) / NULLIF(SUM(CASE WHEN rate_milli > 0 THEN span_ms ELSE 0 END), 0), 0)
		FROM run_samples WHERE run_id = ? AND id <= ?
		GROUP BY (at_ms - ?) / ?`, runID, last, start, width); err != nil {
		return err
	}
	_, err = tx.exec(`DELETE FROM run_samples WHERE run_id = ? AND id <= ?`, runID, last)
	return err
}

// Samples returns run runID's series in time order; none for a run that
// recorded none (a dry run, or a run of an older bulkcreate).
func (l *Ledger) Samples(ctx context.Context, runID int64) ([]Sample, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT at_ms, span_ms, requests, throttled, created, exists_,
			rejected, failed, in_doubt, rows_done, rate_milli
		FROM run_samples WHERE run_id = ? ORDER BY at_ms, id`, runID)
	if err != nil {
		return nil, fmt.Errorf("ledger: samples: %w", classifySQLite(err))
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var s Sample
		var at, span, rate int64
		if err := rows.Scan(&at, &span, &s.Requests, &s.Throttled, &s.Created, &s.Exists,
			&s.Rejected, &s.Failed, &s.InDoubt, &s.Rows, &rate); err != nil {
			return nil, fmt.Errorf("ledger: samples: %w", err)
		}
		s.At, s.Span, s.RateLimit = time.UnixMilli(at).UTC(), time.Duration(span)*time.Millisecond, float64(rate)/1000
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: samples: %w", classifySQLite(err))
	}
	return out, nil
}

// LastRunID is the id of the ledger's newest run, of any target; 0 when it
// has none. With OwnRunAfter, it finds a run that an importer starts, for
// callers that cannot see the importer's run.
func (l *Ledger) LastRunID(ctx context.Context) (int64, error) {
	var id int64
	if err := l.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM runs`).Scan(&id); err != nil {
		return 0, fmt.Errorf("ledger: last run: %w", classifySQLite(err))
	}
	return id, nil
}

// OwnRunAfter returns the first run on target newer than run after that
// this process started; ok is false while there is none. The process id
// alone could name a dead process's run; after (LastRunID read before the
// import began) rules those out.
func (l *Ledger) OwnRunAfter(ctx context.Context, target string, after int64) (id int64, ok bool, err error) {
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil || !ok {
		return 0, false, err
	}
	err = l.db.QueryRowContext(ctx, `SELECT COALESCE(MIN(id), 0) FROM runs WHERE target_id = ? AND id > ? AND pid = ?`,
		tid, after, os.Getpid()).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("ledger: own run: %w", classifySQLite(err))
	}
	return id, id > 0, nil
}
