package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// writer is the ledger's one writer. Callers hand it operations; it commits
// as many as are waiting (up to maxBatch) in one transaction, so a thousand
// workers' writes cost one fsync, not a thousand. After a failed commit every
// later operation fails with the same error: a ledger that cannot write must
// stop the import, not drop outcomes.
type writer struct {
	db       *sql.DB
	ops      chan writeOp
	maxBatch int
	done     chan struct{}

	mu  sync.Mutex
	err error

	sendMu  sync.RWMutex // held to send on ops; close takes it to close ops
	closing bool
}

type writeOp struct {
	apply func(ctx context.Context, tx *sql.Tx) error
	done  chan error // nil for fire-and-forget
}

func newWriter(db *sql.DB, maxBatch int) *writer {
	w := &writer{db: db, ops: make(chan writeOp, maxBatch), maxBatch: maxBatch, done: make(chan struct{})}
	go w.loop()
	return w
}

var errClosed = errors.New("ledger: closed")

// submit queues op; with wait it blocks until op's batch is committed.
func (w *writer) submit(ctx context.Context, apply func(context.Context, *sql.Tx) error, wait bool) error {
	if err := w.failed(); err != nil {
		return err
	}
	op := writeOp{apply: apply}
	if wait {
		op.done = make(chan error, 1)
	}
	w.sendMu.RLock()
	if w.closing {
		w.sendMu.RUnlock()
		return errClosed
	}
	select {
	case w.ops <- op:
		w.sendMu.RUnlock()
	case <-ctx.Done():
		w.sendMu.RUnlock()
		return context.Cause(ctx)
	}
	if !wait {
		return nil
	}
	// Once queued, the write happens whatever ctx says; wait for it so the
	// caller never believes a committed write failed.
	return <-op.done
}

// flush waits until everything queued before it is committed.
func (w *writer) flush(ctx context.Context) error {
	return w.submit(ctx, func(context.Context, *sql.Tx) error { return nil }, true)
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]writeOp, 0, w.maxBatch)
	for op := range w.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		err := w.failed()
		if err == nil {
			err = w.commit(batch)
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		for _, op := range batch {
			if op.done != nil {
				op.done <- err
			}
		}
	}
}

func (w *writer) commit(batch []writeOp) error {
	// The batch is committed even when the caller that queued it gave up:
	// those writes describe requests that may already be out.
	ctx := context.Background()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: write: begin: %w", classifySQLite(err))
	}
	for _, op := range batch {
		if err := op.apply(ctx, tx); err != nil {
			tx.Rollback()
			return fmt.Errorf("ledger: write: %w", classifySQLite(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: write: commit: %w", classifySQLite(err))
	}
	return nil
}

// close commits what is queued and stops the writer.
func (w *writer) close() error {
	w.sendMu.Lock()
	if !w.closing {
		w.closing = true
		close(w.ops)
	}
	w.sendMu.Unlock()
	<-w.done
	return w.failed()
}
