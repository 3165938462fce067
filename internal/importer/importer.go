// Package importer moves rows from a CSV file to the Ripio API and their
// outcomes to a store: read and validate (pipeline.go) -> plan against the
// store (plan.go, by the rules of decide.go) -> a pool of workers
// (errgroup, SetLimit) paced by one Pacer sending through a Sender
// (send.go) -> the store. The importer consumes the small interfaces of
// deps.go; a dry run plans through a memory store (dryrun.go). In fleet
// mode (fleet.go) an import queues its rows to send in the store instead,
// and Work sends the rows a worker claims from it, by the same send path.
//
// A row's failure is data written to the ledger; only a reason to stop
// everything (the ledger cannot write, the credentials are refused, the
// error limit is reached) ends the run early. Cancelling the context passed
// to Import is a soft stop: no new row starts, requests already out finish
// (bounded by the client's timeout) and are recorded.
//
// What the plan promises (decide.go): a key and an email each name one
// person. A row is not sent under a key whose customer another email or type
// created or may have created, nor with an email that another customerId
// holds; both are conflicts, recorded invalid. At a target that assigns its
// own customer ids (assigned.go), rows in doubt are not sent again unless
// Config.ResendInDoubt says so.
package importer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Config configures an import. Zero fields take the documented defaults.
type Config struct {
	// SourceFile names the input in the ledger and in messages.
	SourceFile string
	// Delimiter separates fields. Default: the one Excel's "sep=;" first
	// line names, else the one of , ; tab | that splits the header into our
	// columns (Summary.Input says which).
	Delimiter rune
	// Columns names the file's columns that are ours under another name:
	// our column (email, type, customerId) -> the header as written (case,
	// spaces, '-' and '_' do not count). Default: by name.
	Columns map[string]string
	// MaxLineBytes bounds a row (a line, or the lines of a row with a
	// quoted line break), and so the header and every field: a longer row is
	// skipped and recorded invalid with its size. Default
	// DefaultMaxLineBytes (64 KiB).
	MaxLineBytes int
	// Concurrency is the most requests out at once. Default 16.
	Concurrency int
	// MaxAttempts bounds the requests for one row in one run, 429s not
	// counted. Default 5.
	MaxAttempts int
	// RetryRejected sends rows the server rejected before even when they
	// have not changed.
	RetryRejected bool
	// ResendInDoubt sends rows in doubt again even to a target that assigns
	// its own customer ids, where a second send may create a second
	// customer: for the operator who has checked those people in Ripio.
	// Without it such rows stay in_doubt, not sent (Summary.AssignsIDs).
	ResendInDoubt bool
	// MarkExisting records the rows of the file that the ledger holds in
	// doubt as exists, for the operator who found those people in Ripio,
	// and sends nothing: the way to close rows in doubt at a target that
	// assigns its own ids, which re-sending would duplicate. Other rows are
	// left as they are.
	MarkExisting bool
	// Observe, when set, is told the verdict of every create request (not
	// of a token fetch that kept it from leaving) and how long the call
	// took: the metrics count what the importer decided, not a second
	// reading of the answer.
	Observe func(v ripio.Verdict, took time.Duration)
	// Stop holds the rules that end a run the server cannot serve:
	// unreachable, failing every request, throttling without end.
	Stop StopConfig
	// MaxErrors aborts the run once this many rows ended rejected, failed
	// or in doubt (0: no limit). MaxErrorRate does the same for a fraction
	// of the rows finished so far, once at least 20 have finished (0: no
	// limit).
	MaxErrors    int
	MaxErrorRate float64
	// Backoff is the base of the exponential backoff, with full jitter,
	// between attempts of one row. Default 200ms; at most MaxBackoff (10s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MarkAhead is the most rows marked in flight in one ledger write, ahead
	// of their requests: a bigger batch costs the ledger less per row, and
	// leaves more rows in_doubt, never sent, if the process dies. Default
	// 256; the command sizes it to about half a second of sending.
	MarkAhead int
	// Queue loads the rows to send into the store as queued, in chunks of
	// MarkAhead rows, for workers to send (fleet mode, fleet.go), instead
	// of sending them; the run's store must queue (Queuer). Summary.ToSend
	// counts the rows queued.
	Queue bool
	// DryRun reads, validates and plans against the store, through a memory
	// store that records nothing durable, and sends nothing.
	DryRun bool
	// Jitter returns a random duration in [0, n); default math/rand/v2.
	Jitter func(n time.Duration) time.Duration
	// Logger gets one debug line per row outcome (it names the email, so
	// only at debug level). Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.SourceFile == "" {
		c.SourceFile = "<input>"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.MarkAhead <= 0 {
		c.MarkAhead = batchSize
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Jitter == nil {
		c.Jitter = func(n time.Duration) time.Duration { return rand.N(n) }
	}
	return c
}

// Errors that abort a run.
var (
	// ErrUnauthorized: the server refused the credentials, even freshly fetched.
	ErrUnauthorized = errors.New("the server refused the credentials")
	// ErrWrongBaseURL: the token endpoint is not where the base URL says:
	// it answered 404, 405, a web page or something that is not a token.
	// The error wraps the client's, which says what to set instead.
	ErrWrongBaseURL = errors.New("the token endpoint is not at RIPIO_BASE_URL")
	// ErrTooManyErrors: the --max-errors limit was reached.
	ErrTooManyErrors = errors.New("error limit reached")
)

// Counts are the rows of one run by what happened to them.
type Counts = row.Counts

// Summary is what a run did.
type Summary struct {
	Counts
	Requests  int64         `json:"requests"`  // create requests sent
	Throttled int64         `json:"throttled"` // of them answered 429
	Elapsed   time.Duration `json:"-"`
	Outcome   string        `json:"outcome"` // completed, interrupted, aborted; loaded (Config.Queue)
	ReadAll   bool          `json:"readAll"` // the run read its file to the end
	DryRun    bool          `json:"dryRun"`
	ToSend    int64         `json:"toSend,omitempty"` // dry run: rows that would be sent
	// ToSendInDoubt is, in a dry run, how many of ToSend are rows in
	// doubt at a target no answer has yet shown to keep the ids sent: the
	// import sends them only once one does (one alone when it sends no
	// other row), and holds them otherwise.
	ToSendInDoubt int64 `json:"toSendInDoubt,omitempty"`
	// Issues are, in a dry run, the reasons of the first rows it would not
	// send (invalid or duplicate), at most 20, in the order found.
	Issues []string `json:"issues,omitempty"`
	// AssignsIDs: the target assigns its own customer ids, as this run or
	// an earlier one found. Its rows in doubt are not sent again without
	// Config.ResendInDoubt; Held counts the rows of this run left in_doubt
	// so, of InDoubt.
	AssignsIDs bool  `json:"assignsIds,omitempty"`
	Held       int64 `json:"heldInDoubt,omitempty"`
	// HeldUntilKnown counts the rows of this run, of InDoubt, in doubt
	// since an earlier run, that were not sent again because no answer
	// had yet shown that the target keeps the customer ids it is sent
	// (KeepsIDs says whether one had by the run's end).
	HeldUntilKnown int64 `json:"heldUntilIdsKnown,omitempty"`
	KeepsIDs       bool  `json:"keepsIds,omitempty"`
	// ProbeLine is the line of the row in doubt sent alone to find out
	// (0: none); ProbeTwice, that its answer showed the target assigns its
	// own ids, so that person may have two customers.
	ProbeLine  int64 `json:"probeLine,omitempty"`
	ProbeTwice bool  `json:"probeMayBeTwice,omitempty"`
	// MarkExisting: the run recorded rows in doubt exists and sent nothing
	// (Config.MarkExisting); Skipped counts the rows it left as they were.
	MarkExisting bool `json:"markExisting,omitempty"`
	// Input is how the file was read: encoding and delimiter.
	Input Format `json:"input"`
	// Consumed is how many bytes of the input the rows read so far took
	// (for progress estimates; a read-ahead buffer is not counted).
	Consumed int64 `json:"-"`
	// Waiting is how many rows wait, now, out the Retry-After of the 429
	// their last request got (for progress displays).
	Waiting int64 `json:"-"`
}

// Importer runs one import, or one worker of a fleet. Construct with New;
// call Import or Work once.
type Importer struct {
	cfg    Config
	sender Sender
	pacer  Pacer
	// limiter is Limiter's answer, fixed by New: Work wraps pacer in a
	// lease's check while a progress display may read it.
	limiter *ratelimit.Limiter
	store   Store
	target  string

	run    Run
	issues issueLog
	stop   *stopRules

	input Format // set before the run's goroutines start

	counts    counters
	requests  atomic.Int64
	throttled atomic.Int64
	// assignsIDs: the target assigns its own customer ids (assigned.go).
	assignsIDs atomic.Bool
	// ownIDs: the target was seen to keep the customerIds sent (assigned.go).
	ownIDs atomic.Bool
	// probe: one row in doubt may go to find out whether the target keeps
	// the ids sent (planner.sendDeferred).
	probe atomic.Bool
	// probeLine is the line of the row sent so; probeTwice: its answer
	// showed the target assigns its own ids.
	probeLine  atomic.Int64
	probeTwice atomic.Bool
	// elsewhere: the rows another fleet import had queued (elsewhere.go).
	elsewhere elsewhereKeys
	// places: the pool's places, one a row sending (see takePlace);
	// waiters: the rows waiting out a 429's Retry-After out of the pool
	// (waitOut); freed is signalled as a place is given back.
	places, waiters, freed chan struct{}
	// fleet applies the error limits of the runs Work sends rows of, when
	// its store can (fleetlimit.go); nil otherwise.
	fleet *fleetLimits
}

// New returns an importer of rows into target (the store's name for the
// sender's base URL and client id). sender and pacer are not used in a dry
// run, and store may be nil there: it then plans against nothing.
func New(cfg Config, sender Sender, pacer Pacer, store Store, target string) *Importer {
	cfg = cfg.withDefaults()
	return &Importer{cfg: cfg, sender: sender, pacer: pacer, limiter: limiterOf(pacer), store: store, target: target, stop: newStopRules(cfg.Stop),
		places: make(chan struct{}, cfg.Concurrency), waiters: make(chan struct{}, cfg.Concurrency), freed: make(chan struct{}, 1)}
}

// takePlace blocks until the pool has a place for a row, which it holds
// while it waits for the pacer and its request is out: Config.Concurrency
// rows at most. A row waiting out a 429's Retry-After gives its place up
// meanwhile (waitOut). Every row started ends, even when the run stops, so
// a place always comes.
func (im *Importer) takePlace() { im.places <- struct{}{} }

// leavePlace gives a place taken with takePlace back, and signals freed.
func (im *Importer) leavePlace() {
	<-im.places
	select {
	case im.freed <- struct{}{}:
	default:
	}
}

// waitOut sleeps a throttled row's Retry-After. Up to Config.Concurrency
// rows wait out of the pool, their places given to other rows, so that the
// 429s a dropping limit brings at once do not stop every other row for the
// whole wait; a row beyond those waits in its place, so that the rows
// marked in flight (in doubt if the process dies) stay at most twice the
// pool and a batch.
func (im *Importer) waitOut(ctx context.Context, d time.Duration) error {
	select {
	case im.waiters <- struct{}{}:
	default:
		return sleep(ctx, d)
	}
	defer func() { <-im.waiters }()
	im.leavePlace()
	defer im.takePlace()
	return sleep(ctx, d)
}

type counters struct {
	read, created, exists, skipped, invalid, duplicate, rejected, failed, inDoubt, toSend, inFlight, held, heldUnknown atomic.Int64
	toSendInDoubt                                                                                                      atomic.Int64
	queuedElsewhere                                                                                                    atomic.Int64 // rows another fleet import queued and the fleet still owes
	consumed                                                                                                           atomic.Int64 // bytes of the file parsed
	waiting                                                                                                            atomic.Int64 // rows sleeping out a 429's Retry-After
}

// Progress is a live snapshot, safe to call from another goroutine.
func (im *Importer) Progress() Summary {
	c := &im.counts
	return Summary{
		Counts: Counts{
			Read: c.read.Load(), Created: c.created.Load(), Exists: c.exists.Load(), Skipped: c.skipped.Load(),
			Invalid: c.invalid.Load(), Duplicate: c.duplicate.Load(), Rejected: c.rejected.Load(),
			Failed: c.failed.Load(), InDoubt: c.inDoubt.Load(), Pending: c.inFlight.Load() + c.queuedElsewhere.Load(),
		},
		Requests:       im.requests.Load(),
		Throttled:      im.throttled.Load(),
		DryRun:         im.cfg.DryRun,
		ToSend:         c.toSend.Load(),
		ToSendInDoubt:  c.toSendInDoubt.Load(),
		Consumed:       c.consumed.Load(),
		Waiting:        c.waiting.Load(),
		AssignsIDs:     im.assignsIDs.Load(),
		Held:           c.held.Load(),
		HeldUntilKnown: c.heldUnknown.Load(),
		KeepsIDs:       im.ownIDs.Load(),
		ProbeLine:      im.probeLine.Load(),
		MarkExisting:   im.cfg.MarkExisting,
		ProbeTwice:     im.probeTwice.Load(),
	}
}

// Limiter is the pacer New was given when it is a *ratelimit.Limiter, or
// the limiter whose law that pacer runs (a fleet's: its Limiter method),
// for progress displays; nil otherwise. It is safe to call while the
// importer runs.
func (im *Importer) Limiter() *ratelimit.Limiter { return im.limiter }

// limiterOf is Limiter's answer for pacer p.
func limiterOf(p Pacer) *ratelimit.Limiter {
	switch p := p.(type) {
	case *ratelimit.Limiter:
		return p
	case interface{ Limiter() *ratelimit.Limiter }:
		return p.Limiter()
	}
	return nil
}

// Import reads in and imports its rows. It returns the run's summary even
// when it returns an error: a *HeaderError (nothing was read), a store
// error, ErrUnauthorized or ErrTooManyErrors. Cancelling ctx stops the run
// softly; Summary.Outcome is then "interrupted".
func (im *Importer) Import(ctx context.Context, in io.Reader) (Summary, error) {
	start := time.Now()
	rr, err := newRowReader(in, im.cfg)
	if err != nil {
		return im.summary(start, "aborted"), err
	}
	im.input = rr.Format()
	store := im.store
	if im.cfg.DryRun {
		// Only a file with a customerId column can hold both kinds of key,
		// so only its plan need be remembered across batches.
		store = newMemoryStore(store, rr.hasCustomerID)
	} else if store == nil {
		return im.summary(start, "aborted"), errors.New("importer: no store")
	}
	if im.cfg.Queue && im.cfg.DryRun {
		return im.summary(start, "aborted"), errors.New("importer: a dry run queues nothing")
	}
	assigns, err := store.AssignsIDs(ctx, im.target)
	if err != nil {
		return im.summary(start, "aborted"), err
	}
	im.assignsIDs.Store(assigns)
	keeps, err := store.KeepsIDs(ctx, im.target)
	if err != nil {
		return im.summary(start, "aborted"), err
	}
	im.ownIDs.Store(keeps)
	im.run, err = store.StartRun(ctx, ledger.RunInfo{Target: im.target, SourceFile: im.cfg.SourceFile, Options: im.runOptions()})
	if err != nil {
		return im.summary(start, "aborted"), err
	}

	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	g, gctx := errgroup.WithContext(stopCtx) // the pool's size is its places
	readAll, feedErr := im.feed(gctx, g, rr, store)
	runErr := g.Wait()
	if runErr == nil {
		runErr = feedErr
	}

	outcome := outcomeOf(ctx, runErr)
	sum := im.summary(start, outcome)
	sum.ReadAll = readAll
	if im.cfg.DryRun {
		sum.Issues = im.issues.first()
	}
	// The run's own context may be gone: finishing must still happen.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	end := ledger.RunEnd{
		Outcome: outcome, Counts: sum.Counts,
		// Read to its end, every line's issue recorded: only then do the
		// line issues of earlier runs of the file go. Not after a stop,
		// which leaves rows not planned.
		ReadWholeFile: readAll && runErr == nil && ctx.Err() == nil, SourceFile: im.cfg.SourceFile,
	}
	var ferr error
	// A load the fleet stopped for its error limit is loaded all the same:
	// its run ends aborted once none of its chunks is held.
	if q, ok := im.run.(Queuer); ok && im.cfg.Queue && (runErr == nil || errors.Is(runErr, ErrTooManyErrors)) {
		if outcome == "completed" {
			sum.Outcome = "loaded"
		}
		ferr = q.Loaded(fctx, end)
	} else {
		ferr = im.run.Finish(fctx, end)
	}
	if runErr == nil {
		runErr = ferr
	}
	return sum, runErr
}

// outcomeOf names how a run whose context is ctx ended with err.
func outcomeOf(ctx context.Context, err error) string {
	switch {
	case err != nil:
		return "aborted"
	case ctx.Err() != nil:
		return "interrupted"
	}
	return "completed"
}

func (im *Importer) summary(start time.Time, outcome string) Summary {
	s := im.Progress()
	s.Elapsed = time.Since(start)
	s.Outcome = outcome
	s.Input = im.input
	return s
}

// runOptions are recorded with the run. A PostgreSQL ledger's Queue reads
// resendInDoubt: the rows in doubt it queues are then owed a send.
func (im *Importer) runOptions() map[string]any {
	return map[string]any{
		"concurrency": im.cfg.Concurrency, "maxAttempts": im.cfg.MaxAttempts,
		"retryRejected": im.cfg.RetryRejected, "resendInDoubt": im.cfg.ResendInDoubt, "maxErrors": im.cfg.MaxErrors, "maxErrorRate": im.cfg.MaxErrorRate,
		"markExisting": im.cfg.MarkExisting,
		"delimiter":    string(im.input.Delimiter),
	}
}
