package importer

import (
	"context"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// Store is where the importer finds what earlier runs did and records what
// this one does. It stores only: what to do with a row is decide's. The
// SQLite ledger (through Ledger), the PostgreSQL ledger and the dry run's
// memory store implement it. The two ledgers, and ledger/memstore, pass the
// suite of package ledger/storetest; the dry run's store reads through the
// ledger and keeps only its plan.
type Store interface {
	// Lookup returns what the store holds on target for each of keys it
	// knows.
	Lookup(ctx context.Context, target string, keys []string) (map[string]ledger.Prior, error)
	// LookupByEmail returns, for each of emails, the row that holds it as
	// its Send.FoldedEmail on target, if any.
	LookupByEmail(ctx context.Context, target string, emails []string) (map[string]ledger.Prior, error)
	// AssignsIDs reports whether a run on target recorded that it assigns
	// its own customer ids (Run.RecordAssignsIDs).
	AssignsIDs(ctx context.Context, target string) (bool, error)
	// KeepsIDs reports whether a run on target recorded that it keeps the
	// customer ids it is sent (Run.RecordKeepsIDs).
	KeepsIDs(ctx context.Context, target string) (bool, error)
	// StartRun starts recording a run; ledger.ErrBusy when another holds
	// the target.
	StartRun(ctx context.Context, info ledger.RunInfo) (Run, error)
}

// Run records one import run. Safe for concurrent use.
type Run interface {
	// MarkInFlightCommitted marks sends in flight; no request may leave
	// before the returned Pending's Durable returns nil.
	MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (Pending, error)
	// MarkInFlight marks one row in flight again, counting an attempt, and
	// returns once the mark is durable.
	MarkInFlight(ctx context.Context, s ledger.Send) error
	// Record writes how a row's sending ended.
	Record(ctx context.Context, o ledger.Outcome) error
	// Release puts a row marked in flight back as prior (nil: away).
	Release(ctx context.Context, key string, prior *ledger.Prior) error
	// RecordLineIssue writes a row kept by its file and line.
	RecordLineIssue(ctx context.Context, li ledger.LineIssue) error
	// ClearLineIssue forgets the line issue at file:line if its
	// ledger.LineIssue.Digest is digest; any issue there when digest is "".
	ClearLineIssue(ctx context.Context, file string, line int, digest string) error
	// SetMessage sets the message of the row under key, whose state stays.
	SetMessage(ctx context.Context, key, message string) error
	// ReplaceWithLineIssue removes the row under key and writes li instead.
	ReplaceWithLineIssue(ctx context.Context, key string, li ledger.LineIssue) error
	// RecordAssignsIDs records that the run's target assigns its own
	// customer ids, for this run's lookups and every later run's.
	RecordAssignsIDs(ctx context.Context) error
	// RecordKeepsIDs records that the run's target keeps the customer ids
	// it is sent, for every later run.
	RecordKeepsIDs(ctx context.Context) error
	// Finish records how the run ended and releases the target.
	Finish(ctx context.Context, end ledger.RunEnd) error
}

// Pending is a write committed but maybe not yet durable.
type Pending interface {
	// Durable waits until the write is on disk, or says why it is not.
	Durable() error
}

// Sender creates customers; *ripio.Client is one. Its errors go to
// ripio.Classify.
type Sender interface {
	CreateCustomer(ctx context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error)
}

// Pacer paces the requests of the whole pool; *ratelimit.Limiter is one.
type Pacer interface {
	// Reserve blocks until a request may leave, or shortly before, or
	// until ctx is done, and returns what the request calls just before
	// it goes (nil: nothing; see ripio.CreateCustomerRequest.Leave). An
	// error with ctx alive (a shared budget out of reach) stops the run.
	Reserve(ctx context.Context) (leave func(context.Context) error, err error)
	// Accepted tells the pacer the server took a request.
	Accepted()
	// Throttled tells it the server answered 429, asking to wait retryAfter.
	Throttled(retryAfter time.Duration)
	// Pause holds every request for d without slowing the rate.
	Pause(d time.Duration)
}

// Ledger is l as the importer's Store; nil when l is nil (a dry run without
// a ledger file plans against nothing).
func Ledger(l *ledger.Ledger) Store {
	if l == nil {
		return nil
	}
	return ledgerStore{l}
}

type ledgerStore struct{ *ledger.Ledger }

func (s ledgerStore) StartRun(ctx context.Context, info ledger.RunInfo) (Run, error) {
	r, err := s.Ledger.StartRun(ctx, info)
	if err != nil {
		return nil, err
	}
	return ledgerRun{r}, nil
}

type ledgerRun struct{ *ledger.Run }

func (r ledgerRun) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (Pending, error) {
	p, err := r.Run.MarkInFlightCommitted(ctx, sends)
	if err != nil {
		return nil, err
	}
	return p, nil
}
