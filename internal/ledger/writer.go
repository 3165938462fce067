package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"
)

// writer is the ledger's one writer. Callers hand it operations; it commits
// as many as are waiting (up to maxBatch) in one transaction, so a thousand
// workers' writes cost one fsync, not a thousand. After a failed commit every
// later operation fails with the same error: a ledger that cannot write must
// stop the import, not drop outcomes.
//
// It owns one connection for its life and talks to the driver below
// database/sql: its statements stay prepared in that connection's cache,
// readers never wait for it to give one back, and no write pays for
// database/sql's locking and reflective argument conversion.
type writer struct {
	conn     *sql.Conn
	syncMode string // the writer connection's synchronous setting
	ops      chan writeOp
	maxBatch int
	done     chan struct{}

	mu  sync.Mutex
	err error

	sendMu  sync.RWMutex // held to send on ops; close takes it to close ops
	closing bool
}

type writeOp struct {
	apply func(tx *wtx) error
	done  chan error // nil for fire-and-forget
}

// wtx is the writer's transaction, as its operations see it.
type wtx struct {
	ctx  context.Context
	c    driverConn
	args []driver.NamedValue
}

type driverConn interface {
	driver.ExecerContext
	driver.QueryerContext
}

// exec runs query with args: strings (Status included), ints, int64s.
func (tx *wtx) exec(query string, args ...any) (driver.Result, error) {
	tx.args = tx.args[:0]
	for i, a := range args {
		var v driver.Value
		switch a := a.(type) {
		case string:
			v = a
		case Status:
			v = string(a)
		case int:
			v = int64(a)
		case int64:
			v = a
		default:
			return nil, fmt.Errorf("argument %d: unsupported type %T", i+1, a)
		}
		tx.args = append(tx.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return tx.c.ExecContext(tx.ctx, query, tx.args)
}

// queryInt runs query, which returns one integer.
func (tx *wtx) queryInt(query string, args ...driver.Value) (int64, error) {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	rows, err := tx.c.QueryContext(tx.ctx, query, nv)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	n, ok := dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("%s: got %T, want an integer", query, dest[0])
	}
	return n, nil
}

func newWriter(ctx context.Context, db *sql.DB, maxBatch int) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{conn: conn, syncMode: "FULL", ops: make(chan writeOp, maxBatch), maxBatch: maxBatch, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

var errClosed = errors.New("ledger: closed")

// submit queues op; with wait it blocks until op's batch is committed.
func (w *writer) submit(ctx context.Context, apply func(*wtx) error, wait bool) error {
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
	return w.submit(ctx, func(*wtx) error { return nil }, true)
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// linger is how long the writer waits for more writes when none of those
// it holds is waited for: outcomes arrive one by one as answers come in,
// and a commit of dozens costs little more than a commit of one.
const linger = time.Millisecond

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]writeOp, 0, w.maxBatch)
	timer := time.NewTimer(linger)
	timer.Stop()
	for op := range w.ops {
		batch = append(batch[:0], op)
		waited := op.done != nil
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
				waited = waited || op.done != nil
			default:
				if waited {
					break fill
				}
				// Nobody waits: give the next outcomes a moment to join.
				timer.Reset(linger)
				select {
				case op, ok := <-w.ops:
					timer.Stop()
					if !ok {
						break fill
					}
					batch = append(batch, op)
					waited = op.done != nil
				case <-timer.C:
					break fill
				}
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
	return w.conn.Raw(func(dc any) error {
		c, ok := dc.(driverConn)
		if !ok {
			return fmt.Errorf("ledger: write: driver connection %T cannot execute", dc)
		}
		// A batch that nobody waits for (outcomes, line issues) needs no
		// fsync of its own: the next commit someone waits for (a mark,
		// Flush, Finish) syncs the log up to and including it. Until then
		// it survives the process dying, not the machine.
		mode := "NORMAL"
		for _, op := range batch {
			if op.done != nil {
				mode = "FULL"
				break
			}
		}
		if mode != w.syncMode {
			if _, err := c.ExecContext(ctx, "PRAGMA synchronous = "+mode, nil); err != nil {
				return fmt.Errorf("ledger: write: synchronous: %w", classifySQLite(err))
			}
			w.syncMode = mode
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
		return nil
	})
}

// close commits what is queued, stops the writer and gives its connection
// back. It returns the writer's first error.
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
		if cerr := w.conn.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ledger: write: %w", cerr)
		}
	}
	return err
}
