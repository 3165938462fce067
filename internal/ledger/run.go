package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

// RunInfo describes an import run as it starts.
type RunInfo struct {
	Target     string // base URL + client id
	SourceFile string // as the rows will name it
	Options    any    // recorded as JSON; must hold no secret
}

// Run is one import on one target. Its writes go through the ledger's
// group-committing writer. Safe for concurrent use.
type Run struct {
	l        *Ledger
	ID       int64
	targetID int64
	// Recovered counts rows a dead run left in flight, now in_doubt.
	Recovered int64

	// inFlight maps the keys this run marked in flight and has not yet
	// recorded to their rows' ids, so Record finds the row without a
	// search of the key index. Only the writer's goroutine touches it.
	inFlight map[string]int64

	mu   sync.Mutex
	lock *os.File // nil once released
}

// StartRun takes the lock for info.Target (ErrBusy when another import holds
// it), turns rows a dead run left in flight into in_doubt, marks such runs
// crashed, and records the new run.
func (l *Ledger) StartRun(ctx context.Context, info RunInfo) (*Run, error) {
	tid, _, err := l.targetID(ctx, info.Target, true)
	if err != nil {
		return nil, fmt.Errorf("ledger: start run: %w", err)
	}
	lock, err := lockTarget(l.w.file, tid)
	if err != nil {
		return nil, err
	}
	r := &Run{l: l, targetID: tid, lock: lock, inFlight: map[string]int64{}}
	l.addRun(r)
	opts, err := json.Marshal(info.Options)
	if err != nil {
		r.unlock()
		return nil, fmt.Errorf("ledger: start run: options: %w", err)
	}
	host, _ := os.Hostname()
	err = l.w.submit(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE rows SET status = ?, error_message = ?, updated_at = ?
			WHERE target_id = ? AND status = ?`,
			row.InDoubt, "the run sending it ended before an answer came", now(), tid, row.InFlight)
		if err != nil {
			return err
		}
		r.Recovered, _ = res.RowsAffected()
		// A dead run wrote no counts: its rows tell what it did, while
		// they still name it as the run that wrote them last.
		if _, err := tx.exec(`UPDATE runs SET outcome = 'crashed', counts = COALESCE((
				SELECT json_group_object(status, n) FROM (
					SELECT status, SUM(n) AS n FROM (
						SELECT status, COUNT(*) AS n FROM rows WHERE target_id = runs.target_id AND last_run = runs.id GROUP BY status
						UNION ALL
						SELECT status, COUNT(*) AS n FROM line_issues WHERE target_id = runs.target_id AND run_id = runs.id GROUP BY status)
					GROUP BY status)), '{}')
			WHERE target_id = ? AND outcome = 'running'`, tid); err != nil {
			return err
		}
		res, err = tx.exec(`INSERT INTO runs (target_id, source_file, started_at, options, pid, host)
			VALUES (?, ?, ?, ?, ?, ?)`, tid, info.SourceFile, now(), string(opts), os.Getpid(), host)
		if err != nil {
			return err
		}
		r.ID, err = res.LastInsertId()
		return err
	}, true)
	if err != nil {
		r.unlock()
		return nil, fmt.Errorf("ledger: start run: %w", err)
	}
	return r, nil
}

// lockTarget takes an exclusive lock on a file beside the ledger's file
// (as SQLite resolved it, so that every name of the ledger takes the same
// lock), one per target. The operating system drops it when the process
// dies, so a crashed run never blocks the next.
func lockTarget(ledgerPath string, targetID int64) (*os.File, error) {
	p := fmt.Sprintf("%s.target-%d.lock", ledgerPath, targetID)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s); wait for it to finish, or use another --ledger", ErrBusy, ledgerPath)
		}
		return nil, fmt.Errorf("ledger: lock %s: %w", p, err)
	}
	// A link made since Open would let a run under the other name take
	// another lock file: checked with the lock held, before any row moves.
	fi, err := os.Stat(ledgerPath)
	if err == nil {
		err = checkLinks(ledgerPath, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// unlock releases the target's lock; it may be called more than once.
func (r *Run) unlock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lock != nil {
		// Unlocked before it is closed: a process forked meanwhile (by a
		// test, say) holds a copy of the descriptor until it execs, and
		// the lock with it, where an explicit unlock releases it at once.
		_ = syscall.Flock(int(r.lock.Fd()), syscall.LOCK_UN)
		r.lock.Close()
		r.lock = nil
	}
	r.l.removeRun(r)
}

// Send describes a row about to be sent.
type Send struct {
	Key         string
	Email       string
	Type        string
	CustomerID  string // the customerId sent
	Fingerprint string
	SourceFile  string
	SourceLine  int
	// FoldedEmail, when not "", is what LookupByEmail finds the row by.
	FoldedEmail string
}

// MarkInFlight durably records that a request for s is about to leave, and
// counts the attempt. It returns once the mark is committed and on disk.
func (r *Run) MarkInFlight(ctx context.Context, s Send) error {
	return r.MarkInFlightBatch(ctx, []Send{s})
}

// MarkInFlightBatch marks every row of sends in flight, as MarkInFlight
// does, in one write: the importer marks the rows it is about to hand to its
// workers together, so a commit carries hundreds of marks, not one per
// worker waiting. It returns once the marks are committed and on disk;
// sends may be reused then.
func (r *Run) MarkInFlightBatch(ctx context.Context, sends []Send) error {
	p, err := r.MarkInFlightCommitted(ctx, sends)
	if err != nil {
		return err
	}
	return p.Durable()
}

// MarkInFlightCommitted marks sends in flight as MarkInFlightBatch does,
// but returns once the marks are committed, before they are on disk:
// lookups see them, and the caller can plan and mark its next rows while
// the disk syncs these. No request for sends may leave before p.Durable()
// returns nil. sends may be reused once it returns.
func (r *Run) MarkInFlightCommitted(ctx context.Context, sends []Send) (p *Pending, err error) {
	if len(sends) == 0 {
		return &Pending{}, nil
	}
	return r.l.w.submitCommitted(ctx, func(tx *wtx) error {
		t := now()
		for _, s := range sends {
			args := []any{r.targetID, s.Key, s.Email, s.Type, s.CustomerID, row.InFlight,
				s.SourceFile, s.SourceLine, s.Fingerprint, r.ID, r.ID, t, t, s.FoldedEmail}
			// Most rows are new: a plain insert, whose id SQLite gives
			// for free. Only a row the ledger holds already takes the
			// upsert, which costs a statement journal and a RETURNING.
			res, err := tx.exec(markNewSQL, args...)
			if err != nil {
				return err
			}
			var id int64
			if n, _ := res.RowsAffected(); n == 1 {
				id, err = res.LastInsertId()
			} else {
				id, err = tx.queryInt(markInFlightSQL, args...)
			}
			if err != nil {
				return err
			}
			r.inFlight[s.Key] = id
			tx.changed = true
		}
		return nil
	})
}

// markSQL inserts a row in flight; markNewSQL and markInFlightSQL say what
// a row the ledger holds already gets.
const markSQL = `INSERT INTO rows (target_id, row_key, email, type, customer_id_sent, status, attempts,
		source_file, source_line, fingerprint, first_run, last_run, created_at, updated_at, folded_email)
	VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)`

const markNewSQL = markSQL + `
	ON CONFLICT (target_id, row_key) DO NOTHING`

const markInFlightSQL = markSQL + `
	ON CONFLICT (target_id, row_key) DO UPDATE SET
		email = excluded.email, type = excluded.type, customer_id_sent = excluded.customer_id_sent,
		folded_email = excluded.folded_email,
		status = excluded.status, attempts = rows.attempts + 1,
		source_file = excluded.source_file, source_line = excluded.source_line,
		fingerprint = excluded.fingerprint, last_run = excluded.last_run, updated_at = excluded.updated_at
	RETURNING id`

// Outcome is the end of one row's sending in this run.
type Outcome struct {
	Key        string
	Status     row.Status // Created, Exists, Rejected, Failed or InDoubt
	CustomerID string     // the id the server returned, for Created
	HTTPStatus int
	ErrorCode  int
	Message    string
}

// Record writes o. It does not wait for the commit: Flush or Finish does,
// and a failed commit fails every later write of the ledger.
func (r *Run) Record(ctx context.Context, o Outcome) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		t := now()
		if id, ok := r.inFlight[o.Key]; ok {
			delete(r.inFlight, o.Key)
			// The key too: an id is only as good as the commit that gave it.
			_, err := tx.exec(recordSQL+`WHERE id = ? AND row_key = ?`,
				o.Status, o.CustomerID, o.CustomerID, o.HTTPStatus, o.ErrorCode, o.Message, t, id, o.Key)
			return err
		}
		_, err := tx.exec(recordSQL+`WHERE target_id = ? AND row_key = ?`,
			o.Status, o.CustomerID, o.CustomerID, o.HTTPStatus, o.ErrorCode, o.Message, t, r.targetID, o.Key)
		return err
	}, false)
}

// recordSQL sets a row's outcome; the caller appends how to find the row.
// A row this run marked is found by its id, not by a search of the key
// index: with keys in no order (emails) that search is a page read per row.
const recordSQL = `UPDATE rows SET status = ?,
		customer_id = CASE WHEN ? != '' THEN ? ELSE customer_id END,
		http_status = ?, error_code = ?, error_message = ?, updated_at = ?
	`

// Release undoes MarkInFlight for a request that never reached the server
// (the run stopped, the credentials were refused, or the row was marked
// ahead of its turn and never sent): the row goes back to prior, as Lookup
// returned it, attempts included, or away when the ledger did not know it
// before.
func (r *Run) Release(ctx context.Context, key string, prior *Prior) error {
	if prior != nil {
		p := *prior // the write happens later; the caller may reuse *prior
		prior = &p
	}
	return r.l.w.submit(ctx, func(tx *wtx) error {
		delete(r.inFlight, key)
		if prior == nil {
			_, err := tx.exec(`DELETE FROM rows WHERE target_id = ? AND row_key = ? AND status = ?`, r.targetID, key, row.InFlight)
			return err
		}
		// MarkInFlight wrote this run's row over the prior one; all of it
		// goes back. Keeping the new fingerprint on a row put back to
		// rejected would make the next run take the changed, never sent
		// row for the one the server refused, and skip it; keeping this
		// run as its last would count it among this run's rows should the
		// run die.
		_, err := tx.exec(`UPDATE rows SET status = ?, email = ?, type = ?, customer_id_sent = ?, customer_id = ?,
				fingerprint = ?, source_file = ?, source_line = ?, attempts = ?, folded_email = ?,
				last_run = CASE WHEN ? > 0 THEN ? ELSE last_run END, updated_at = ?
			WHERE target_id = ? AND row_key = ? AND status = ?`,
			prior.Status, prior.Email, prior.Type, prior.CustomerIDSent, prior.CustomerID,
			prior.Fingerprint, prior.SourceFile, prior.SourceLine, prior.Attempts, prior.FoldedEmail, prior.LastRun, prior.LastRun, now(),
			r.targetID, key, row.InFlight)
		return err
	}, false)
}

// LineIssue is a row kept by its place in the file: invalid or duplicate.
type LineIssue struct {
	SourceFile string
	SourceLine int
	Status     row.Status // Invalid or Duplicate
	Email      string
	Type       string
	CustomerID string
	Reason     string
}

// Digest names li's content (IssueDigest): a failures file carries it, so
// that a fixed row replaces this issue only while it is the one there.
func (li LineIssue) Digest() string {
	return IssueDigest(li.Status, li.Email, li.Type, li.CustomerID, li.Reason)
}

// IssueDigest is a short digest of what a failures file shows of a row:
// its status, email, type, customerId and reason. The failures command
// writes it, and a store compares it with the issue at a file and line
// before ClearLineIssue clears that issue; both compute it here, so they
// cannot disagree on it.
func IssueDigest(st row.Status, email, typ, customerID, reason string) string {
	h := sha256.New()
	for _, f := range []string{string(st), email, typ, customerID, reason} {
		// Each field length first: ("ab", "c") and ("a", "bc") differ.
		fmt.Fprintf(h, "%d:%s", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// RecordLineIssue writes li, replacing what the ledger held for its line.
// Like Record, it does not wait for the commit.
func (r *Run) RecordLineIssue(ctx context.Context, li LineIssue) error {
	return r.l.w.submit(ctx, func(tx *wtx) error { return r.putLineIssue(tx, li) }, false)
}

func (r *Run) putLineIssue(tx *wtx, li LineIssue) error {
	_, err := tx.exec(`INSERT INTO line_issues (target_id, source_file, source_line, status, email, type, customer_id, reason, run_id, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (target_id, source_file, source_line) DO UPDATE SET
			status = excluded.status, email = excluded.email, type = excluded.type, customer_id = excluded.customer_id,
			reason = excluded.reason, run_id = excluded.run_id, updated_at = excluded.updated_at`,
		r.targetID, li.SourceFile, li.SourceLine, li.Status, li.Email, li.Type, li.CustomerID, li.Reason, r.ID, now())
	return err
}

// SetMessage sets the message of the row under key, which stays as it is
// otherwise, and makes r the run that wrote it last. Like Record, it does
// not wait for the commit.
func (r *Run) SetMessage(ctx context.Context, key, message string) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		_, err := tx.exec(`UPDATE rows SET error_message = ?, last_run = ?, updated_at = ? WHERE target_id = ? AND row_key = ?`,
			message, r.ID, now(), r.targetID, key)
		return err
	}, false)
}

// ReplaceWithLineIssue removes the row under key and writes li, in one
// write: the row is kept by its file and line from now on. Like Record, it
// does not wait for the commit.
func (r *Run) ReplaceWithLineIssue(ctx context.Context, key string, li LineIssue) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		if _, err := tx.exec(`DELETE FROM rows WHERE target_id = ? AND row_key = ?`, r.targetID, key); err != nil {
			return err
		}
		return r.putLineIssue(tx, li)
	}, false)
}

// ClearLineIssue forgets the line issue at file:line when its Digest is
// digest: a row of a failures file, fixed and imported, supersedes the
// issue it came from, but not another one recorded at that line since (the
// file was edited and imported again). An empty digest (a failures file
// written before failures wrote one) clears whatever issue is there. Like
// Record, it does not wait for the commit.
func (r *Run) ClearLineIssue(ctx context.Context, file string, line int, digest string) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		const where = ` WHERE target_id = ? AND source_file = ? AND source_line = ?`
		if digest != "" {
			li, ok, err := tx.lineIssue(`SELECT status, email, type, customer_id, reason FROM line_issues`+where,
				r.targetID, file, line)
			if err != nil || !ok || li.Digest() != digest {
				return err
			}
		}
		_, err := tx.exec(`DELETE FROM line_issues`+where, r.targetID, file, line)
		return err
	}, false)
}

// Flush waits until every write queued so far is committed and on disk.
func (r *Run) Flush(ctx context.Context) error { return r.l.w.flush(ctx) }

// RunEnd is how a run ended.
type RunEnd struct {
	Outcome string     // completed, interrupted, aborted, failed
	Counts  row.Counts // this run's
	// ReadWholeFile: the run read its file to the end, so line issues of
	// that file left from earlier runs are stale and go.
	ReadWholeFile bool
	SourceFile    string
}

// Finish commits what is pending, records how the run ended and releases
// the target's lock. It releases the lock even when it fails.
func (r *Run) Finish(ctx context.Context, end RunEnd) error {
	defer r.unlock()
	counts, err := json.Marshal(end.Counts.Record())
	if err != nil {
		return fmt.Errorf("ledger: finish run: %w", err)
	}
	err = r.l.w.submit(ctx, func(tx *wtx) error {
		if end.ReadWholeFile {
			if _, err := tx.exec(`DELETE FROM line_issues WHERE target_id = ? AND source_file = ? AND run_id < ?`,
				r.targetID, end.SourceFile, r.ID); err != nil {
				return err
			}
		}
		_, err := tx.exec(`UPDATE runs SET ended_at = ?, outcome = ?, counts = ? WHERE id = ?`,
			now(), end.Outcome, string(counts), r.ID)
		return err
	}, true)
	if err != nil {
		return fmt.Errorf("ledger: finish run: %w", err)
	}
	return nil
}
