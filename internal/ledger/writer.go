package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// writer is the ledger's one writer. Callers hand it operations; it commits
// as many as are waiting (up to maxBatch) in one transaction, so a thousand
// workers' writes cost one fsync, not a thousand. After a failed commit every
// later operation fails with the same error: a ledger that cannot write must
// stop the import, not drop outcomes.
//
// Commits are made durable by a second goroutine, the syncer: SQLite commits
// with synchronous=NORMAL (the log is written, not fsynced), and the syncer
// fsyncs the log for the commits somebody waits for, one fsync for all
// those committed meanwhile. So the writer applies the next batch while the
// disk syncs the last one, and an operation is acknowledged as durable only
// once an fsync that began after its commit has returned.
//
// It owns one connection for its life and talks to the driver below
// database/sql: its statements stay prepared in that connection's cache,
// readers never wait for it to give one back, and no write pays for
// database/sql's locking and reflective argument conversion.
type writer struct {
	conn     *sql.Conn
	file     string       // the ledger's file, as SQLite resolved it
	wal      *os.File     // the log, open for the writer's life
	syncWAL  func() error // wal.Sync, but for tests
	ops      chan writeOp
	maxBatch int
	// changes counts the commits that changed the ledger; only the writer's
	// loop touches it. Each sync request carries the count its fsync must
	// cover.
	changes uint64
	toSync  chan syncRequest
	done    chan struct{} // closed when the loop and the syncer have ended

	mu  sync.Mutex
	err error

	sendMu  sync.RWMutex // held to send on ops; close takes it to close ops
	closing bool
}

type writeOp struct {
	apply func(tx *wtx) error
	// committed, when not nil, gets the commit's result as soon as it is
	// known: readers see the write from then on.
	committed chan error
	// done, when not nil, gets the result once the write is durable (or
	// failed). Nil for fire-and-forget.
	done chan error
}

func newWriter(ctx context.Context, db *sql.DB, maxBatch int) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	file, wal, err := openLog(ctx, conn)
	if err != nil {
		// Back to the pool as the DSN set it.
		conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL")
		conn.Close()
		return nil, err
	}
	w := &writer{conn: conn, file: file, wal: wal, syncWAL: wal.Sync,
		ops: make(chan writeOp, maxBatch), maxBatch: maxBatch,
		toSync: make(chan syncRequest, 64), done: make(chan struct{})}
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		w.syncLoop()
	}()
	go func() {
		defer close(w.done)
		w.loop()
		close(w.toSync)
		<-synced
	}()
	return w, nil
}

var errClosed = errors.New("ledger: closed")

// submit queues op; with wait it blocks until op's batch is committed and
// on disk.
func (w *writer) submit(ctx context.Context, apply func(*wtx) error, wait bool) error {
	op := writeOp{apply: apply}
	if wait {
		op.done = make(chan error, 1)
	}
	if err := w.send(ctx, op); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	// Once queued, the write happens whatever ctx says; wait for it so the
	// caller never believes a committed write failed.
	return <-op.done
}

// Pending is a committed write on its way to disk.
type Pending struct {
	done chan error // nil: there was nothing to write
	err  error
	once sync.Once
}

// Durable waits until the write is on disk, power cut included, and
// returns its error: nil, or why the ledger could not sync it (then the
// ledger is failed, and the write may be lost with the machine).
func (p *Pending) Durable() error {
	p.once.Do(func() {
		if p.done != nil {
			p.err = <-p.done
		}
	})
	return p.err
}

// submitCommitted queues op and blocks until its batch is committed:
// readers see it then. Pending tells when it is durable.
func (w *writer) submitCommitted(ctx context.Context, apply func(*wtx) error) (*Pending, error) {
	op := writeOp{apply: apply, committed: make(chan error, 1), done: make(chan error, 1)}
	if err := w.send(ctx, op); err != nil {
		return nil, err
	}
	if err := <-op.committed; err != nil {
		return nil, err
	}
	return &Pending{done: op.done}, nil
}

func (w *writer) send(ctx context.Context, op writeOp) error {
	if err := w.failed(); err != nil {
		return err
	}
	w.sendMu.RLock()
	defer w.sendMu.RUnlock()
	if w.closing {
		return errClosed
	}
	select {
	case w.ops <- op:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// flush waits until everything queued before it is committed and on disk.
func (w *writer) flush(ctx context.Context) error {
	return w.submit(ctx, func(*wtx) error { return nil }, true)
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// fail records err as the writer's first error.
func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// linger is how long the writer waits for more writes when none of those
// it holds is waited for: outcomes arrive one by one as answers come in,
// and a commit of dozens costs little more than a commit of one.
const linger = time.Millisecond

func (w *writer) loop() {
	batch := make([]writeOp, 0, w.maxBatch)
	timer := time.NewTimer(linger)
	timer.Stop()
	for op := range w.ops {
		batch = append(batch[:0], op)
		waited := op.done != nil
		lingering := false
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
				waited = waited || op.done != nil
				continue
			default:
			}
			if waited {
				break
			}
			// Nobody waits: give the next outcomes a moment, counted from
			// the first time the queue ran dry, to join this commit.
			if !lingering {
				timer.Reset(linger)
				lingering = true
			}
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
				waited = op.done != nil
			case <-timer.C:
				lingering = false
				break fill
			}
		}
		if lingering {
			timer.Stop()
		}
		err := w.failed()
		if err == nil {
			if err = w.commit(batch); err != nil {
				w.fail(err)
			}
		}
		req := syncRequest{changes: w.changes}
		for _, op := range batch {
			if op.committed != nil {
				op.committed <- err
			}
			if op.done == nil {
				continue
			}
			if err != nil {
				op.done <- err
			} else {
				req.waiters = append(req.waiters, op.done)
			}
		}
		if len(req.waiters) > 0 {
			w.toSync <- req
		}
	}
}

// commit applies batch in one transaction, and counts it in changes when
// it changed the ledger. SQLite writes the commit to the log without an
// fsync (synchronous=NORMAL): it survives the process dying but not yet
// the machine; the syncer's fsync makes it durable.
func (w *writer) commit(batch []writeOp) error {
	// The batch is committed even when the caller that queued it gave up:
	// those writes describe requests that may already be out.
	ctx := context.Background()
	var changed bool
	err := w.conn.Raw(func(dc any) error {
		c, ok := dc.(driverConn)
		if !ok {
			return fmt.Errorf("ledger: write: driver connection %T cannot execute", dc)
		}
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
			return fmt.Errorf("ledger: write: begin: %w", classifySQLite(err))
		}
		tx := &wtx{ctx: ctx, c: c, args: make([]driver.NamedValue, 0, 16)}
		for _, op := range batch {
			if err := op.apply(tx); err != nil {
				c.ExecContext(ctx, "ROLLBACK", nil)
				return fmt.Errorf("ledger: write: %w", classifySQLite(err))
			}
		}
		if _, err := c.ExecContext(ctx, "COMMIT", nil); err != nil {
			// SQLite may keep the transaction open after a failed COMMIT.
			c.ExecContext(ctx, "ROLLBACK", nil)
			return fmt.Errorf("ledger: write: commit: %w", classifySQLite(err))
		}
		changed = tx.changed
		return nil
	})
	if err == nil && changed {
		w.changes++
	}
	return err
}

// close commits what is queued, waits for its syncs, stops the writer and
// gives its connection back. It returns the writer's first error.
func (w *writer) close() error {
	w.sendMu.Lock()
	first := !w.closing
	if first {
		w.closing = true
		close(w.ops)
	}
	w.sendMu.Unlock()
	<-w.done
	err := w.failed()
	if first {
		if cerr := w.wal.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ledger: write: %w", cerr)
		}
		if cerr := w.conn.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ledger: write: %w", cerr)
		}
	}
	return err
}
