package memstore

import (
	"context"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Run is one import on one target, as ledger.Run. Its writes are visible at
// once and durable never. Safe for concurrent use.
type Run struct {
	s  *Store
	t  *target
	ID int64
	// Recovered counts rows a dead run left in flight, now in_doubt.
	Recovered int64
}

// MarkInFlight records that a request for s is about to leave, and counts
// the attempt.
func (r *Run) MarkInFlight(ctx context.Context, s ledger.Send) error {
	return r.MarkInFlightBatch(ctx, []ledger.Send{s})
}

// MarkInFlightBatch marks every row of sends in flight.
func (r *Run) MarkInFlightBatch(ctx context.Context, sends []ledger.Send) error {
	_, err := r.MarkInFlightCommitted(ctx, sends)
	return err
}

// MarkInFlightCommitted marks sends in flight; the returned Pending has
// nothing to wait for.
func (r *Run) MarkInFlightCommitted(_ context.Context, sends []ledger.Send) (*ledger.Pending, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, s := range sends {
		k, ok := r.t.rows[s.Key]
		if !ok {
			k = &keyed{firstRun: r.ID}
			r.t.rows[s.Key] = k
		}
		k.Email, k.Type, k.CustomerIDSent, k.FoldedEmail = s.Email, s.Type, s.CustomerID, s.FoldedEmail
		k.Status, k.Attempts = row.InFlight, k.Attempts+1
		k.SourceFile, k.SourceLine, k.Fingerprint, k.LastRun = s.SourceFile, s.SourceLine, s.Fingerprint, r.ID
	}
	return &ledger.Pending{}, nil
}

// Record writes o.
func (r *Run) Record(_ context.Context, o ledger.Outcome) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	k, ok := r.t.rows[o.Key]
	if !ok {
		return nil
	}
	k.Status, k.httpStatus, k.errorCode, k.Message = o.Status, o.HTTPStatus, o.ErrorCode, o.Message
	if o.CustomerID != "" {
		k.CustomerID = o.CustomerID
	}
	return nil
}

// Release puts a row in flight back as prior, or away when prior is nil.
func (r *Run) Release(_ context.Context, key string, prior *ledger.Prior) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	k, ok := r.t.rows[key]
	if !ok || k.Status != row.InFlight {
		return nil
	}
	if prior == nil {
		delete(r.t.rows, key)
		return nil
	}
	lastRun, msg := k.LastRun, k.Message
	k.Prior = *prior
	k.Message = msg
	if prior.LastRun <= 0 {
		k.LastRun = lastRun
	}
	return nil
}

// RecordLineIssue writes li, replacing what the store held for its line.
func (r *Run) RecordLineIssue(_ context.Context, li ledger.LineIssue) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.putLineIssue(li)
	return nil
}

func (r *Run) putLineIssue(li ledger.LineIssue) {
	r.t.issues[lineKey{li.SourceFile, li.SourceLine}] = &issue{LineIssue: li, runID: r.ID}
}

// ClearLineIssue forgets the line issue at file:line when its Digest is
// digest, or whatever issue is there when digest is "".
func (r *Run) ClearLineIssue(_ context.Context, file string, line int, digest string) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	lk := lineKey{file, line}
	if i, ok := r.t.issues[lk]; ok && (digest == "" || i.Digest() == digest) {
		delete(r.t.issues, lk)
	}
	return nil
}

// SetMessage sets the message of the row under key and makes r its last run.
func (r *Run) SetMessage(_ context.Context, key, message string) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if k, ok := r.t.rows[key]; ok {
		k.Message, k.LastRun = message, r.ID
	}
	return nil
}

// ReplaceWithLineIssue removes the row under key and writes li.
func (r *Run) ReplaceWithLineIssue(_ context.Context, key string, li ledger.LineIssue) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	delete(r.t.rows, key)
	r.putLineIssue(li)
	return nil
}

// Flush has nothing to wait for.
func (r *Run) Flush(context.Context) error { return nil }

// Finish records how the run ended and frees the target.
func (r *Run) Finish(_ context.Context, end ledger.RunEnd) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.t.locked = false
	if end.ReadWholeFile {
		for lk, i := range r.t.issues {
			if lk.file == end.SourceFile && i.runID < r.ID {
				delete(r.t.issues, lk)
			}
		}
	}
	for _, rr := range r.t.runs {
		if rr.ID == r.ID {
			rr.running, rr.Outcome, rr.EndedAt, rr.Counts = false, end.Outcome, now(), end.Counts.Record()
		}
	}
	return nil
}

// RecordAssignsIDs records that the run's target assigns its own customer
// ids.
func (r *Run) RecordAssignsIDs(context.Context) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.t.assignsIDs = true
	return nil
}

// RecordKeepsIDs records that the run's target keeps the customer ids it
// is sent.
func (r *Run) RecordKeepsIDs(context.Context) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.t.keepsIDs = true
	return nil
}
