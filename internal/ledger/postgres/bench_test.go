package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchKey is row i's key as the importer makes it: in file order
// ("id:cust-000000012", a customerId column numbered as the rows are) or in
// none ("email:" and an email, which comes in no order).
func benchKey(i int, ordered bool) string {
	if ordered {
		return fmt.Sprintf("id:cust-%09d", i)
	}
	return "email:" + benchEmail(i)
}

// benchEmail is row i's email: a hash, in no order, as people's are.
func benchEmail(i int) string {
	return fmt.Sprintf("%08x@example.com", uint32(i)*2654435761) // a bijection on uint32
}

// benchSend is the Send of row i, on line i+2 of the file, as package
// ledger's benchmarks make it.
func benchSend(i int, ordered bool) Send {
	folded := ""
	if ordered {
		folded = benchEmail(i)
	}
	return Send{Key: benchKey(i, ordered), Email: benchEmail(i), FoldedEmail: folded, Type: "individual",
		CustomerID: "5f0c6a4e-1b7d-5c1e-9a39-0d7f7c1c2b11", Fingerprint: "9f86d081884c7d65", SourceFile: "customers.csv", SourceLine: i + 2}
}

const benchTarget = "https://api.example.com client"

// BenchmarkLedgerOutcomesBatched is package ledger's benchmark of the same
// name on this store: one feeder marks the rows it hands out in batches
// (MarkInFlightCommitted, then Durable), and N workers record each row's
// outcome (not waiting). One outcome is one row's mark and Record.
func BenchmarkLedgerOutcomesBatched(b *testing.B) {
	for _, keys := range []string{"ordered", "unordered"} {
		for _, batch := range []int{64, 256} {
			b.Run(fmt.Sprintf("keys=%s/batch=%d/workers=64", keys, batch), func(b *testing.B) {
				benchOutcomesBatched(b, batch, 64, keys == "ordered")
			})
		}
	}
}

func benchOutcomesBatched(b *testing.B, batch, workers int, ordered bool) {
	ctx := context.Background()
	l := newLedger(b)
	r, err := l.StartRun(ctx, RunInfo{Target: benchTarget, SourceFile: "customers.csv"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.Finish(ctx, RunEnd{Outcome: "completed"}); err != nil {
			b.Error(err)
		}
	})
	marked := make(chan Send, batch)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for s := range marked {
				o := Outcome{Key: s.Key, Status: Created, CustomerID: s.CustomerID, HTTPStatus: 201}
				if err := r.Record(ctx, o); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
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
			sends = append(sends, benchSend(i, ordered))
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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "outcomes/s")
}

// BenchmarkLedgerLookup is package ledger's benchmark of that name on this
// store: what a resume over a million finished rows costs, Lookup in
// batches of 256 keys in file order, as the importer plans its rows.
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

// lookupFixture makes a ledger of n created rows on benchTarget, written in
// one statement, with the keys and emails benchKey and benchEmail make.
func lookupFixture(b *testing.B, n int, ordered bool) *Ledger {
	b.Helper()
	ctx := context.Background()
	l := newLedger(b)
	r, err := l.StartRun(ctx, RunInfo{Target: benchTarget, SourceFile: "customers.csv"})
	if err != nil {
		b.Fatal(err)
	}
	email := `lpad(to_hex(((i::bigint * 2654435761) % 4294967296)), 8, '0') || '@example.com'`
	key, folded := `'email:' || `+email, `''`
	if ordered {
		key, folded = `'id:cust-' || lpad(i::text, 9, '0')`, email
	}
	_, err = l.pool.Exec(ctx, `INSERT INTO rows (target_id, row_key, email, type, customer_id_sent, customer_id, status, attempts,
			http_status, source_file, source_line, fingerprint, folded_email, first_run, last_run, created_at, updated_at)
		SELECT $1, `+key+`, `+email+`, 'individual', '5f0c6a4e-1b7d-5c1e-9a39-' || lpad(i::text, 12, '0'),
			'srv-' || lpad(i::text, 12, '0'), 'created', 1, 201, 'customers.csv', i + 2, to_hex(i::bigint * 7919), `+folded+`,
			$2, $2, now(), now()
		FROM generate_series(0, $3 - 1) AS i`, r.targetID, r.ID, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Finish(ctx, RunEnd{Outcome: "completed"}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.pool.Exec(ctx, `VACUUM ANALYZE rows`); err != nil {
		b.Fatal(err)
	}
	return l
}
