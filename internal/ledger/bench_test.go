package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchKey is row i's key as the importer makes it: in file order
// ("id:cust-000000012", a customerId column numbered as the rows are) or in
// none ("email:" and an email, which comes in no order). benchKeySQL makes
// the same keys in SQLite.
func benchKey(i int, ordered bool) string {
	if ordered {
		return fmt.Sprintf("id:cust-%09d", i)
	}
	return "email:" + benchEmail(i)
}

// benchSend is the Send of row i, on line i+2 of the file.
func benchSend(i int, ordered bool) Send {
	return Send{Key: benchKey(i, ordered), Email: benchEmail(i), FoldedEmail: benchFolded(i, ordered), Type: "individual",
		CustomerID: "5f0c6a4e-1b7d-5c1e-9a39-0d7f7c1c2b11", Fingerprint: "9f86d081884c7d65", SourceFile: "customers.csv", SourceLine: i + 2}
}

// benchFolded is row i's Send.FoldedEmail: its email when it is keyed by a
// customerId, as the importer sets it.
func benchFolded(i int, ordered bool) string {
	if ordered {
		return benchEmail(i)
	}
	return ""
}

// benchEmail is row i's email: a hash, in no order, as people's are.
func benchEmail(i int) string {
	return fmt.Sprintf("%08x@example.com", uint32(i)*2654435761) // a bijection on uint32
}

func benchKeySQL(ordered bool) string {
	if ordered {
		return `printf('id:cust-%09d', i)`
	}
	return `'email:' || ` + benchEmailSQL
}

func benchFoldedSQL(ordered bool) string {
	if ordered {
		return benchEmailSQL
	}
	return `''`
}

const benchEmailSQL = `printf('%08x@example.com', (i * 2654435761) % 4294967296)`

// BenchmarkLedgerOutcomes measures group commit as the importer uses it:
// each of N workers marks a row in flight (waiting for the commit), then
// records its outcome (not waiting). One outcome is one row's MarkInFlight
// and Record.
func BenchmarkLedgerOutcomes(b *testing.B) {
	for _, keys := range []string{"ordered", "unordered"} {
		for _, workers := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("keys=%s/workers=%d", keys, workers), func(b *testing.B) {
				benchOutcomes(b, workers, keys == "ordered")
			})
		}
	}
}

func benchOutcomes(b *testing.B, workers int, ordered bool) {
	ctx := context.Background()
	r := benchRun(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				s := benchSend(i, ordered)
				if err := r.MarkInFlight(ctx, s); err != nil {
					b.Error(err)
					return
				}
				o := Outcome{Key: s.Key, Status: Created, CustomerID: s.CustomerID, HTTPStatus: 201}
				if err := r.Record(ctx, o); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "outcomes/s")
}

// benchRun starts a run on a fresh ledger; it is finished and closed when
// the benchmark ends.
func benchRun(b *testing.B) *Run {
	b.Helper()
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(b.TempDir(), "ledger.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	r, err := l.StartRun(ctx, RunInfo{Target: benchTarget, SourceFile: "customers.csv"})
	if err != nil {
		l.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.Finish(ctx, RunEnd{Outcome: "completed"}); err != nil {
			b.Error(err)
		}
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	})
	return r
}

// BenchmarkLedgerLookup measures what a resume over a million finished rows
// costs: Lookup in batches of 256 keys, in file order, as the importer
// plans its rows.
func BenchmarkLedgerLookup(b *testing.B) {
	const rows, batch = 1_000_000, 256
	for _, keys := range []string{"ordered", "unordered"} {
		ordered := keys == "ordered"
		l := lookupFixture(b, rows, ordered)
		all := make([]string, rows)
		for i := range all {
			all[i] = benchKey(i, ordered)
		}
		b.Run(fmt.Sprintf("keys=%s/rows=1M/batch=%d", keys, batch), func(b *testing.B) {
			ctx := context.Background()
			asked, found := 0, 0
			start := time.Now()
			for i := range b.N {
				lo := (i * batch) % rows
				keys := all[lo:min(lo+batch, rows)]
				got, err := l.Lookup(ctx, benchTarget, keys)
				if err != nil {
					b.Fatal(err)
				}
				asked += len(keys)
				found += len(got)
			}
			if found != asked {
				b.Fatalf("Lookup found %d keys, want %d", found, asked)
			}
			perKey := time.Since(start).Seconds() / float64(found)
			b.ReportMetric(1/perKey, "keys/s")
			b.ReportMetric(perKey*rows, "s/1M-keys")
		})
	}
}

const benchTarget = "https://api.example.com client"

// lookupFixture makes a ledger of n created rows on benchTarget, written in
// one statement so that it takes seconds, not minutes.
func lookupFixture(b *testing.B, n int, ordered bool) *Ledger {
	b.Helper()
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(b.TempDir(), "ledger.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	r, err := l.StartRun(ctx, RunInfo{Target: benchTarget, SourceFile: "customers.csv"})
	if err != nil {
		b.Fatal(err)
	}
	_, err = l.db.ExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
		INSERT INTO rows (target_id, row_key, email, type, customer_id_sent, customer_id, status, attempts, http_status,
			source_file, source_line, fingerprint, first_run, last_run, created_at, updated_at, folded_email)
		SELECT ?, `+benchKeySQL(ordered)+`, `+benchEmailSQL+`, 'individual',
			printf('5f0c6a4e-1b7d-5c1e-9a39-%012d', i), printf('srv-%012d', i), 'created', 1, 201,
			'customers.csv', i + 2, printf('%016x', i * 7919), ?, ?, '2025-01-02T03:04:05Z', '2025-01-02T03:04:05Z',
			`+benchFoldedSQL(ordered)+`
		FROM s`, n-1, r.targetID, r.ID, r.ID)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Finish(ctx, RunEnd{Outcome: "completed"}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkLedgerOutcomesBatched measures the ledger as the importer drives
// it: one feeder marks the rows it hands out in batches
// (MarkInFlightBatch, waiting for the commit), and N workers record each
// row's outcome (not waiting).
func BenchmarkLedgerOutcomesBatched(b *testing.B) {
	for _, keys := range []string{"ordered", "unordered"} {
		for _, batch := range []int{64, 256} {
			b.Run(fmt.Sprintf("keys=%s/batch=%d/workers=64", keys, batch), func(b *testing.B) {
				benchOutcomesBatched(b, batch, 64, keys == "ordered", 0)
			})
		}
	}
}

// BenchmarkLedgerOutcomesOnAMillion is BenchmarkLedgerOutcomesBatched (256
// a write) on a ledger that holds a million rows of the target already: the
// key index is then thousands of pages, so new keys in no order share a
// page less often than on an empty ledger.
func BenchmarkLedgerOutcomesOnAMillion(b *testing.B) {
	for _, keys := range []string{"ordered", "unordered"} {
		b.Run(fmt.Sprintf("keys=%s/batch=256/workers=64", keys), func(b *testing.B) {
			benchOutcomesBatched(b, 256, 64, keys == "ordered", 1_000_000)
		})
	}
}

// benchOutcomesBatched marks and records b.N new rows; with prefill, on a
// ledger holding prefill rows (keys 0 to prefill-1) already.
func benchOutcomesBatched(b *testing.B, batch, workers int, ordered bool, prefill int) {
	ctx := context.Background()
	var r *Run
	if prefill > 0 {
		b.StopTimer()
		l := lookupFixture(b, prefill, ordered)
		var err error
		if r, err = l.StartRun(ctx, RunInfo{Target: benchTarget, SourceFile: "customers.csv"}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := r.Finish(ctx, RunEnd{Outcome: "completed"}); err != nil {
				b.Error(err)
			}
		})
		b.StartTimer()
	} else {
		r = benchRun(b)
	}
	marked := make(chan Send, batch)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range marked {
				o := Outcome{Key: s.Key, Status: Created, CustomerID: s.CustomerID, HTTPStatus: 201}
				if err := r.Record(ctx, o); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	// As the importer does: the feeder marks a batch (committed), hands it
	// to a starter that waits for it to be durable before the workers get
	// it, and marks the next batch meanwhile.
	type markedBatch struct {
		sends   []Send
		pending *Pending
	}
	batches := make(chan markedBatch)
	started := make(chan struct{})
	go func() {
		defer close(started)
		for mb := range batches {
			if err := mb.pending.Durable(); err != nil {
				b.Error(err)
				continue
			}
			for _, s := range mb.sends {
				marked <- s
			}
		}
	}()
	for i := 0; i < b.N; {
		sends := make([]Send, 0, batch)
		for ; i < b.N && len(sends) < batch; i++ {
			sends = append(sends, benchSend(prefill+i, ordered))
		}
		p, err := r.MarkInFlightCommitted(ctx, sends)
		if err != nil {
			b.Fatal(err)
		}
		batches <- markedBatch{sends, p}
	}
	close(batches)
	<-started
	close(marked)
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// And the log copied into the file, as Close does: a checkpoint
	// deferred past the timed part would flatter a long interval.
	if _, err := r.l.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "outcomes/s")
}
