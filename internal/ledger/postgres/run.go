package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Run is one import on one target. Its writes go through the ledger's
// group-committing writer. Safe for concurrent use.
type Run struct {
	l        *Ledger
	ID       int64
	targetID int64
	// Recovered counts rows a dead run left in flight, now in_doubt.
	Recovered int64

	mu   sync.Mutex
	lock *pgx.Conn // the connection holding the target's lock; nil once released

	ahead []chan error // QueueAhead's writes not yet seen committed, oldest first

	stopWatch chan struct{} // closed to stop watchLock
	stopOnce  sync.Once
	watchDone chan struct{} // closed when watchLock has returned
}

// ErrLockLost is the error of every write after the connection holding a
// run's lock ended before the run did (the database restarted, or the
// network failed): another import may have taken the target since, so
// this one must stop.
var ErrLockLost = errors.New("ledger: the database connection holding this import's lock ended; stopping, as another import may have taken the target")

// lockCheckEvery is how often a run checks that its lock's connection lives.
const lockCheckEvery = 5 * time.Second

// StartRun takes the lock for info.Target (ledger.ErrBusy when another
// import holds it), turns rows a dead run or worker left in flight into
// in_doubt (recoverSQL), marks dead runs crashed, and records the new run.
// The lock serializes the imports that read files; workers never take it,
// and a fleet import's run outlives its lock while its chunks are open.
func (l *Ledger) StartRun(ctx context.Context, info ledger.RunInfo) (*Run, error) {
	tid, _, err := l.targetID(ctx, info.Target, true)
	if err != nil {
		return nil, fmt.Errorf("ledger: start run: %w", err)
	}
	lock, err := l.lockTarget(ctx, tid)
	if err != nil {
		return nil, err
	}
	r := &Run{l: l, targetID: tid, lock: lock, stopWatch: make(chan struct{}), watchDone: make(chan struct{})}
	go r.watchLock(l.lockCheckEvery)
	l.addRun(r)
	opts, err := json.Marshal(info.Options)
	if err != nil {
		r.unlock()
		return nil, fmt.Errorf("ledger: start run: options: %w", err)
	}
	host, _ := os.Hostname()
	// Holding the lock, this run is the target's only one: whatever is in
	// flight there was left by a run that died.
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, recoverSQL, tid, "the run sending it ended before an answer came", leaseRanOut)
		if err != nil {
			return err
		}
		r.Recovered = tag.RowsAffected()
		// A dead run wrote no counts: its rows tell what it did, while
		// they still name it as the run that wrote them last.
		if _, err := tx.Exec(ctx, `UPDATE runs SET outcome = 'crashed', counts = `+deadRunCounts+`
			WHERE target_id = $1 AND outcome = 'running' AND loaded_at IS NULL
				AND NOT EXISTS (SELECT 1 FROM chunks WHERE run_id = runs.id AND NOT done)`, tid); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO runs (target_id, source_file, options, pid, host)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, tid, info.SourceFile, string(opts), os.Getpid(), host).Scan(&r.ID)
	})
	if err != nil {
		r.unlock()
		return nil, fmt.Errorf("ledger: start run: %w", err)
	}
	return r, nil
}

// deadRunCounts is the counts of the run of the row updated (runs) that
// died before it wrote any: its rows tell what it did, while they still
// name it as the run that wrote them last.
const deadRunCounts = `COALESCE((
		SELECT jsonb_object_agg(status, n) FROM (
			SELECT status, SUM(n) AS n FROM (
				SELECT status, COUNT(*) AS n FROM rows WHERE target_id = runs.target_id AND last_run = runs.id GROUP BY status
				UNION ALL
				SELECT status, COUNT(*) AS n FROM line_issues WHERE target_id = runs.target_id AND run_id = runs.id GROUP BY status
			) AS each GROUP BY status) AS total), '{}')`

// recoverSQL turns the rows of target $1 left in flight by a process that
// is gone into in_doubt: rows no fleet queued, whose run's lock this run
// now holds, and rows of chunks whose lease ran out or was given back.
// Rows in flight in a chunk whose lease holds are a live worker's.
const recoverSQL = `UPDATE rows SET status = 'in_doubt', updated_at = now(),
		error_message = CASE WHEN chunk_id IS NULL THEN $2 ELSE $3 END
	WHERE target_id = $1 AND status = 'in_flight' AND (chunk_id IS NULL OR chunk_id IN (
		SELECT id FROM chunks WHERE target_id = $1 AND (lease_until IS NULL OR lease_until < now())))`

// watchLock pings the lock's connection every interval until unlock stops
// it. A ping that fails or gets no answer within the interval fails the
// ledger with ErrLockLost: the import stops rather than go on without its
// lock. (Until it is noticed, another import could take the target; the
// stable customerId keeps a row sent by both from being created twice.)
func (r *Run) watchLock(interval time.Duration) {
	defer close(r.watchDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stopWatch:
			return
		case <-t.C:
		}
		r.mu.Lock()
		var err error
		if r.lock != nil {
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			err = r.lock.Ping(ctx)
			cancel()
		}
		r.mu.Unlock()
		if err != nil {
			r.l.w.fail(fmt.Errorf("%w: %v", ErrLockLost, err))
			return
		}
	}
}

// lockTarget takes the target's lock on a connection of its own, taken
// out of the pool: an advisory lock held by the connection (not by a
// transaction), which PostgreSQL releases when the connection ends,
// however the process holding it ended. Its keys are the schema's oid and
// the target's id, unique in the database.
func (l *Ledger) lockTarget(ctx context.Context, targetID int64) (*pgx.Conn, error) {
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: lock target: %w", err)
	}
	conn := pc.Hijack()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(l.schemaOID), int32(targetID)).Scan(&got); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("ledger: lock target: %w", err)
	}
	if !got {
		closeConn(conn)
		return nil, fmt.Errorf("%w (schema %s); wait for it to finish, or use another --ledger", ledger.ErrBusy, l.schema)
	}
	return conn, nil
}

// closeConn ends a connection, and with it the locks it holds. It unlocks
// first: the server ends a closed connection's backend, and drops its locks,
// a moment after the socket closes, when a next StartRun may already ask.
// If the server does not answer, closing the socket ends the connection all
// the same.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	c.Close(ctx)
}

// unlock releases the target's lock; it may be called more than once.
func (r *Run) unlock() {
	r.stopOnce.Do(func() { close(r.stopWatch) })
	<-r.watchDone
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lock != nil {
		closeConn(r.lock)
		r.lock = nil
	}
	r.l.removeRun(r)
}

// Pending is a committed write. In PostgreSQL a commit is on disk when it
// returns, so it is durable already.
type Pending struct{}

// Durable returns nil: the write is on disk.
func (*Pending) Durable() error { return nil }

// MarkInFlight durably records that a request for s is about to leave, and
// counts the attempt. It returns once the mark is committed.
func (r *Run) MarkInFlight(ctx context.Context, s ledger.Send) error {
	return r.MarkInFlightBatch(ctx, []ledger.Send{s})
}

// MarkInFlightBatch marks every row of sends in flight, as MarkInFlight
// does, in one write; sends may be reused once it returns.
func (r *Run) MarkInFlightBatch(ctx context.Context, sends []ledger.Send) error {
	_, err := r.MarkInFlightCommitted(ctx, sends)
	return err
}

// MarkInFlightCommitted marks sends in flight as MarkInFlightBatch does.
// It returns once the marks are committed, which is on disk; the Pending
// is for callers written for stores where the two differ.
func (r *Run) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (*Pending, error) {
	if len(sends) == 0 {
		return &Pending{}, nil
	}
	if err := r.l.w.submit(ctx, writeOp{kind: opMark, targetID: r.targetID, runID: r.ID, sends: sends}, true); err != nil {
		return nil, err
	}
	return &Pending{}, nil
}

// Record writes o. It does not wait for the commit: Flush or Finish does,
// and a failed commit fails every later write of the ledger.
func (r *Run) Record(ctx context.Context, o ledger.Outcome) error {
	return r.l.w.submit(ctx, writeOp{kind: opRecord, targetID: r.targetID, runID: r.ID, outcome: o}, false)
}

// Release undoes MarkInFlight for a request that never reached the server:
// the row goes back to prior, as Lookup returned it, attempts included, or
// away when the ledger did not know it before. A row no longer in flight
// (recorded since) stays as it is.
func (r *Run) Release(ctx context.Context, key string, prior *ledger.Prior) error {
	if prior != nil {
		p := *prior // the write happens later; the caller may reuse *prior
		prior = &p
	}
	return r.l.w.submit(ctx, writeOp{kind: opRelease, targetID: r.targetID, runID: r.ID, key: key, prior: prior}, false)
}

// RecordLineIssue writes li, replacing what the ledger held for its line.
// Like Record, it does not wait for the commit.
func (r *Run) RecordLineIssue(ctx context.Context, li ledger.LineIssue) error {
	return r.l.w.submit(ctx, writeOp{kind: opLineIssue, targetID: r.targetID, runID: r.ID, issue: li}, false)
}

// SetMessage sets the message of the row under key, which stays as it is
// otherwise, and makes r the run that wrote it last. Like Record, it does
// not wait for the commit.
func (r *Run) SetMessage(ctx context.Context, key, message string) error {
	return r.l.w.submit(ctx, writeOp{kind: opSetMessage, targetID: r.targetID, runID: r.ID, key: key, message: message}, false)
}

// ReplaceWithLineIssue removes the row under key and writes li, in one
// commit: the row is kept by its file and line from now on. Like Record, it
// does not wait for the commit.
func (r *Run) ReplaceWithLineIssue(ctx context.Context, key string, li ledger.LineIssue) error {
	return r.l.w.submit(ctx, writeOp{kind: opReplace, targetID: r.targetID, runID: r.ID, key: key, issue: li}, false)
}

// ClearLineIssue forgets the line issue at file:line. Like Record, it does
// not wait for the commit.
//
// With a digest (ledger.IssueDigest) it clears the issue only when it is
// still the one the digest names: the writes queued before are committed
// first, so that the issue read is the one this run left there, and this
// run's lock keeps any other import off the target meanwhile.
func (r *Run) ClearLineIssue(ctx context.Context, file string, line int, digest string) error {
	if digest != "" {
		if err := r.l.w.flush(ctx); err != nil {
			return err
		}
		var (
			st                 string
			email, typ, custID []byte
			reason             string
		)
		err := r.l.pool.QueryRow(ctx, `SELECT status, email, type, customer_id, reason FROM line_issues
			WHERE target_id = $1 AND source_file = $2 AND source_line = $3`, r.targetID, file, line).
			Scan(&st, &email, &typ, &custID, &reason)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger: clear line issue: %w", err)
		}
		if ledger.IssueDigest(row.Status(st), string(email), string(typ), string(custID), reason) != digest {
			return nil
		}
	}
	return r.l.w.submit(ctx, writeOp{kind: opClearLineIssue, targetID: r.targetID, runID: r.ID,
		issue: ledger.LineIssue{SourceFile: file, SourceLine: line}}, false)
}

// Flush waits until every write queued so far is committed.
func (r *Run) Flush(ctx context.Context) error { return r.l.w.flush(ctx) }

// Finish commits what is pending, records how the run ended and releases
// the target's lock. It releases the lock even when it fails.
func (r *Run) Finish(ctx context.Context, end ledger.RunEnd) error {
	defer r.unlock()
	counts, err := json.Marshal(end.Counts.Record())
	if err != nil {
		return fmt.Errorf("ledger: finish run: %w", err)
	}
	err = r.l.w.submit(ctx, writeOp{kind: opFinish, targetID: r.targetID, runID: r.ID, end: end, endCounts: counts}, true)
	if err != nil {
		return fmt.Errorf("ledger: finish run: %w", err)
	}
	return nil
}
