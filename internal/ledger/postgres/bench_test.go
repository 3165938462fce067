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
