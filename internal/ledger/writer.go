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
// It owns one connection for its life and talks to the driver below
// database/sql: its statements stay prepared in that connection's cache,
// readers never wait for it to give one back, and no write pays for
// database/sql's locking and reflective argument conversion.
type writer struct {
	conn     *sql.Conn
	syncMode string // the writer connection's synchronous setting
	// unsynced: a NORMAL commit changed the log since its last fsync.
	unsynced bool
	syncWAL  func() error
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
	ctx     context.Context
	c       driverConn
	args    []driver.NamedValue
	changed bool // a statement changed a row
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
	res, err := tx.c.ExecContext(tx.ctx, query, tx.args)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			tx.changed = true
		}
	}
	return res, err
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

func newWriter(ctx context.Context, db *sql.DB, maxBatch int, walPath string) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{conn: conn, syncMode: "FULL", syncWAL: func() error { return syncLog(walPath) }, ops: make(chan writeOp, maxBatch), maxBatch: maxBatch, done: make(chan struct{})}
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
			err = w.commit(batch, waited)
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

// commit applies batch in one transaction. A batch that nobody waits for
// (outcomes, line issues) is committed with synchronous=NORMAL: no fsync of
// its own, so it survives the process dying but not yet the machine. A
// waited batch (a mark, Flush, Finish) is committed with synchronous=FULL,
// and its fsync of the log covers the earlier NORMAL commits too; when it
// changed nothing, SQLite writes and syncs nothing, so the log is synced
// here.
func (w *writer) commit(batch []writeOp, waited bool) error {
	// The batch is committed even when the caller that queued it gave up:
	// those writes describe requests that may already be out.
	ctx := context.Background()
	var changed bool
	err := w.conn.Raw(func(dc any) error {
		c, ok := dc.(driverConn)
		if !ok {
			return fmt.Errorf("ledger: write: driver connection %T cannot execute", dc)
		}
		mode := "NORMAL"
		if waited {
			mode = "FULL"
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
		changed = tx.changed
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case !waited:
		w.unsynced = w.unsynced || changed
	case changed:
		w.unsynced = false // SQLite synced the log at COMMIT
	case w.unsynced:
		if err := w.syncWAL(); err != nil {
			return fmt.Errorf("ledger: write: sync: %w", err)
		}
		w.unsynced = false
	}
	return nil
}

// syncLog fsyncs the ledger's write-ahead log.
func syncLog(walPath string) error {
	f, err := os.OpenFile(walPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
