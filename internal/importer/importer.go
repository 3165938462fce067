// Package importer moves rows from a CSV file to the Ripio API and their
// outcomes to the ledger: read (gocsv, streaming) -> validate -> plan
// against the ledger -> a pool of workers (errgroup, SetLimit) paced by one
// rate limiter -> the client -> the ledger.
//
// A row's failure is data written to the ledger; only a reason to stop
// everything (the ledger cannot write, the credentials are refused, the
// error limit is reached) ends the run early. Cancelling the context passed
// to Import is a soft stop: no new row starts, requests already out finish
// (bounded by the client's timeout) and are recorded.
package importer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
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
	// MaxErrors aborts the run once this many rows ended rejected or
	// failed (0: no limit). MaxErrorRate does the same for a fraction of the
	// rows finished so far, once at least 20 have finished (0: no limit).
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
	// DryRun reads, validates and plans against the ledger, and sends and
	// writes nothing.
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
	ErrUnauthorized = errors.New("import aborted: the server refused the credentials")
	// ErrTooManyErrors: the --max-errors limit was reached.
	ErrTooManyErrors = errors.New("import aborted: error limit reached")
)

// Counts are the rows of one run by what happened to them.
type Counts struct {
	Read      int64 `json:"read"`      // data rows read (blank lines not counted)
	Created   int64 `json:"created"`   // created by this run
	Exists    int64 `json:"exists"`    // the server already had them
	Skipped   int64 `json:"skipped"`   // done in an earlier run; nothing sent
	Invalid   int64 `json:"invalid"`   // failed validation (or conflicts with the ledger)
	Duplicate int64 `json:"duplicate"` // repeat an earlier row of the file
	Rejected  int64 `json:"rejected"`  // refused by the server (now or before, unchanged)
	Failed    int64 `json:"failed"`    // nothing reached the server after every attempt
	InDoubt   int64 `json:"inDoubt"`   // the server may have them; the next run finds out
	Pending   int64 `json:"pending"`   // planned but not finished when the run stopped
}

// NotStarted is the rows read that a stopped run never took to an
// outcome: the next run takes them as if new.
func (c Counts) NotStarted() int64 {
	return c.Read - c.Done() - c.NotDone()
}

// Done is every row that needs nothing more.
func (c Counts) Done() int64 { return c.Created + c.Exists + c.Skipped }

// NotDone is every row that is not created or existing.
func (c Counts) NotDone() int64 {
	return c.Invalid + c.Duplicate + c.Rejected + c.Failed + c.InDoubt + c.Pending
}

// Summary is what a run did.
type Summary struct {
	Counts
	Requests  int64         `json:"requests"`  // create requests sent
	Throttled int64         `json:"throttled"` // of them answered 429
	Elapsed   time.Duration `json:"-"`
	Outcome   string        `json:"outcome"` // completed, interrupted, aborted
	ReadAll   bool          `json:"readAll"` // the run read its file to the end
	DryRun    bool          `json:"dryRun"`
	ToSend    int64         `json:"toSend,omitempty"` // dry run: rows that would be sent
	// Issues are, in a dry run, the reasons of the first rows it would not
	// send (invalid or duplicate), at most 20, in the order found.
	Issues []string `json:"issues,omitempty"`
	// Input is how the file was read: encoding and delimiter.
	Input Format `json:"input"`
	// Consumed is how many bytes of the input the rows read so far took
	// (for progress estimates; a read-ahead buffer is not counted).
	Consumed int64 `json:"-"`
}

// Importer runs one import. Construct with New; call Import once.
type Importer struct {
	cfg     Config
	client  *ripio.Client
	limiter *ratelimit.Limiter
	ledger  *ledger.Ledger
	target  string

	run *ledger.Run
	// dryIssues holds, in a dry run, the reasons of the first rows it would
	// not send (invalid, duplicate), for the summary.
	dryMu     sync.Mutex
	dryIssues []string
	// dryPlan is, in a dry run of a file with a customerId column, the rows
	// planned to be sent so far; only the planning goroutine touches it.
	dryPlan *dryRunPlan

	input     Format // set before the run's goroutines start
	counts    counters
	requests  atomic.Int64
	throttled atomic.Int64
}

// New returns an importer of rows into target (the ledger's name for the
// client's base URL and client id). client and limiter may be nil for a dry
// run, and so may l when there is no ledger file yet.
func New(cfg Config, client *ripio.Client, limiter *ratelimit.Limiter, l *ledger.Ledger, target string) *Importer {
	return &Importer{cfg: cfg.withDefaults(), client: client, limiter: limiter, ledger: l, target: target}
}

type counters struct {
	read, created, exists, skipped, invalid, duplicate, rejected, failed, inDoubt, toSend, inFlight atomic.Int64
	consumed                                                                                        atomic.Int64 // bytes of the file parsed
}

// Progress is a live snapshot, safe to call from another goroutine.
func (im *Importer) Progress() Summary {
	c := &im.counts
	return Summary{
		Counts: Counts{
			Read: c.read.Load(), Created: c.created.Load(), Exists: c.exists.Load(), Skipped: c.skipped.Load(),
			Invalid: c.invalid.Load(), Duplicate: c.duplicate.Load(), Rejected: c.rejected.Load(),
			Failed: c.failed.Load(), InDoubt: c.inDoubt.Load(), Pending: c.inFlight.Load(),
		},
		Requests:  im.requests.Load(),
		Throttled: im.throttled.Load(),
		DryRun:    im.cfg.DryRun,
		ToSend:    c.toSend.Load(),
		Consumed:  c.consumed.Load(),
	}
}

// Limiter is the pacer in use, for progress displays; nil in a dry run.
func (im *Importer) Limiter() *ratelimit.Limiter { return im.limiter }

// Import reads in and imports its rows. It returns the run's summary even
// when it returns an error: a *HeaderError (nothing was read), a ledger
// error, ErrUnauthorized or ErrTooManyErrors. Cancelling ctx stops the run
// softly; Summary.Outcome is then "interrupted".
func (im *Importer) Import(ctx context.Context, in io.Reader) (Summary, error) {
	start := time.Now()
	rr, err := newRowReader(in, im.cfg)
	if err != nil {
		return im.summary(start, "aborted"), err
	}
	im.input = rr.Format()
	if im.cfg.DryRun && rr.hasCustomerID {
		// Only a file with a customerId column can hold both kinds of key.
		im.dryPlan = newDryRunPlan()
	}
	if !im.cfg.DryRun {
		im.run, err = im.ledger.StartRun(ctx, ledger.RunInfo{Target: im.target, SourceFile: im.cfg.SourceFile, Options: im.runOptions()})
		if err != nil {
			return im.summary(start, "aborted"), err
		}
	}

	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	g, gctx := errgroup.WithContext(stopCtx)
	g.SetLimit(im.cfg.Concurrency)
	readAll, feedErr := im.feed(gctx, g, rr)
	runErr := g.Wait()
	if runErr == nil {
		runErr = feedErr
	}

	outcome := "completed"
	switch {
	case runErr != nil:
		outcome = "aborted"
	case ctx.Err() != nil:
		outcome = "interrupted"
	}
	sum := im.summary(start, outcome)
	sum.ReadAll = readAll
	im.dryMu.Lock()
	sum.Issues = slices.Clone(im.dryIssues)
	im.dryMu.Unlock()
	if im.run != nil {
		// The run's own context may be gone: finishing must still happen.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		ferr := im.run.Finish(fctx, ledger.RunEnd{
			Outcome: outcome, Counts: countsMap(sum.Counts),
			ReadWholeFile: readAll && runErr == nil, SourceFile: im.cfg.SourceFile,
		})
		if runErr == nil {
			runErr = ferr
		}
	}
	return sum, runErr
}

func (im *Importer) summary(start time.Time, outcome string) Summary {
	s := im.Progress()
	s.Elapsed = time.Since(start)
	s.Outcome = outcome
	s.Input = im.input
	return s
}

func (im *Importer) runOptions() map[string]any {
	return map[string]any{
		"concurrency": im.cfg.Concurrency, "maxAttempts": im.cfg.MaxAttempts,
		"retryRejected": im.cfg.RetryRejected, "maxErrors": im.cfg.MaxErrors, "maxErrorRate": im.cfg.MaxErrorRate,
		"delimiter": string(im.input.Delimiter),
	}
}

func countsMap(c Counts) map[string]int {
	return map[string]int{
		"read": int(c.Read), "created": int(c.Created), "exists": int(c.Exists), "skipped": int(c.Skipped),
		"invalid": int(c.Invalid), "duplicate": int(c.Duplicate), "rejected": int(c.Rejected),
		"failed": int(c.Failed), "in_doubt": int(c.InDoubt),
		"pending": int(c.Pending), "not_started": int(c.NotStarted()),
	}
}

// batchSize is how many rows are planned with one ledger lookup.
const batchSize = 256

// feed reads and validates rows on one goroutine, plans them, batch by
// batch, against the ledger on this one, and hands the rows to send, marked
// in flight, to a third that starts them on the pool: a resume looks up a
// batch while the next one is read, and the next rows are marked while the
// pool sends the last ones. g.Go blocks while the pool is full, and the
// channels are short, which bounds memory. readAll reports whether the file
// was read to its end.
func (im *Importer) feed(ctx context.Context, g *errgroup.Group, rr *rowReader) (readAll bool, err error) {
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	batches := make(chan []Row, 2)
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(batches)
		readAll, readErr = im.read(readCtx, rr, batches)
	}()
	marked := make(chan markedChunk)
	startDone := make(chan struct{})
	go func() {
		defer close(startDone)
		im.start(ctx, g, marked)
	}()
	for batch := range batches {
		if err == nil && ctx.Err() == nil {
			err = im.plan(ctx, batch, marked)
		}
		if err != nil || ctx.Err() != nil {
			stopReading() // and drain, so the reader can end
		}
	}
	close(marked)
	<-startDone
	<-readDone
	if err == nil {
		err = readErr
	}
	if ctx.Err() != nil {
		// A stop, not a failure: what failed was a lookup or a write the
		// stop interrupted; rows not planned stay as they were.
		return false, nil
	}
	return readAll && err == nil && ctx.Err() == nil, err
}

// read validates rows and sends them in batches; invalid rows and repeats
// go to the ledger from here.
func (im *Importer) read(ctx context.Context, rr *rowReader, out chan<- []Row) (readAll bool, err error) {
	seen := newSeenSet()
	batch := make([]Row, 0, batchSize)
	send := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case out <- batch:
			batch = make([]Row, 0, batchSize)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		if ctx.Err() != nil {
			return false, nil
		}
		rec, err := rr.next()
		if errors.Is(err, io.EOF) {
			return send(), nil
		}
		if err != nil {
			return false, err
		}
		im.counts.read.Add(1)
		im.counts.consumed.Store(rr.text.consumed())
		if rec.OriginFile != "" && rec.OriginLine > 0 && !im.cfg.DryRun {
			if err := im.run.ClearLineIssue(ctx, rec.OriginFile, rec.OriginLine); err != nil {
				return false, err
			}
		}
		row, rowErr := validate(im.cfg.SourceFile, rec)
		if rowErr != nil {
			if err := im.lineIssue(ctx, ledger.Invalid, rec.Line, rec.Email, rec.Type, rec.CustomerID, rowErr.Error()); err != nil {
				return false, err
			}
			continue
		}
		if first, dup := seen.add(row.Key, row.Line); dup {
			if err := im.lineIssue(ctx, ledger.Duplicate, row.Line, row.Email, string(row.Type), row.CustomerID,
				fmt.Sprintf("%s:%d: repeats line %d (same %s)", im.cfg.SourceFile, row.Line, first, keyKind(row.Key))); err != nil {
				return false, err
			}
			continue
		}
		batch = append(batch, row)
		if len(batch) == batchSize && !send() {
			return false, nil
		}
	}
}

func keyKind(key string) string {
	if strings.HasPrefix(key, "id:") {
		return "customerId"
	}
	return "email"
}

func (im *Importer) lineIssue(ctx context.Context, st ledger.Status, line int, email, typ, customerID, reason string) error {
	switch st {
	case ledger.Invalid:
		im.counts.invalid.Add(1)
	case ledger.Duplicate:
		im.counts.duplicate.Add(1)
	}
	if im.cfg.DryRun {
		im.noteDryIssue(reason)
		return nil
	}
	return im.run.RecordLineIssue(ctx, ledger.LineIssue{
		SourceFile: im.cfg.SourceFile, SourceLine: line, Status: st,
		Email: email, Type: typ, CustomerID: customerID, Reason: reason,
	})
}

// maxDryIssues is how many reasons a dry run's summary shows.
const maxDryIssues = 20

func (im *Importer) noteDryIssue(reason string) {
	im.dryMu.Lock()
	defer im.dryMu.Unlock()
	if len(im.dryIssues) < maxDryIssues {
		im.dryIssues = append(im.dryIssues, reason)
	}
}

// plan decides each row of a batch against what the ledger knows, and
// marks the rows to send.
func (im *Importer) plan(ctx context.Context, rows []Row, marked chan<- markedChunk) error {
	var sends []planned
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.Key)
		if keyKind(r.Key) == "customerId" {
			keys = append(keys, emailKey(r.Email))
		}
	}
	known, byID := map[string]ledger.Prior{}, map[string]ledger.Prior{}
	if im.ledger != nil { // a dry run without a ledger file plans against nothing
		var err error
		if known, err = im.ledger.Lookup(ctx, im.target, keys); err != nil {
			return err
		}
		// Rows keyed by email that may be sent: did a file with a
		// customerId column create their customer already?
		var emails []string
		for _, r := range rows {
			if p, ok := known[r.Key]; keyKind(r.Key) == "email" && !(ok && p.Status.Done()) {
				emails = append(emails, strings.TrimPrefix(r.Key, "email:"))
			}
		}
		if len(emails) > 0 {
			if byID, err = im.ledger.LookupByEmail(ctx, im.target, emails); err != nil {
				return err
			}
		}
	}
	batch := map[string]batchRow{} // rows of this batch to be sent, by folded email
	for _, row := range rows {
		prior, ok := known[row.Key]
		var p *ledger.Prior
		if ok {
			p = &prior
		}
		if ok && prior.Status.Done() {
			if prior.Type != string(row.Type) || (keyKind(row.Key) == "customerId" && !strings.EqualFold(prior.Email, row.Email)) {
				reason := fmt.Sprintf("%s:%d: conflict: already %s as %s %s (from %s:%d); not sent",
					im.cfg.SourceFile, row.Line, prior.Status, prior.Type, prior.Email, prior.SourceFile, prior.SourceLine)
				if err := im.lineIssue(ctx, ledger.Invalid, row.Line, row.Email, string(row.Type), row.CustomerID, reason); err != nil {
					return err
				}
				continue
			}
			im.counts.skipped.Add(1)
			continue
		}
		csvCustomerID := row.CustomerID
		if row.CustomerID == "" {
			row.CustomerID = CustomerIDFor(row.Email)
		}
		// Rows keyed by a customerId column and rows keyed by email meet by
		// email: a row whose person a row of the other kind created, may
		// have created, or is about to, under another customerId is not
		// sent, or the same person could get two customers.
		if ok && prior.Status == ledger.Rejected && !im.cfg.RetryRejected && prior.Fingerprint == row.fingerprint() {
			im.counts.rejected.Add(1) // unchanged since the server refused it
			continue
		}
		if other, found := im.otherKind(row, known, byID, batch); found && other.CustomerIDSent != row.CustomerID {
			if err := im.conflict(ctx, row, csvCustomerID, p, other); err != nil {
				return err
			}
			continue
		}
		im.counts.toSend.Add(1)
		if _, taken := batch[foldedEmail(row)]; !taken {
			batch[foldedEmail(row)] = batchRow{keyKind: keyKind(row.Key), Prior: ledger.Prior{Status: ledger.InFlight,
				Email: row.Email, CustomerIDSent: row.CustomerID, SourceFile: im.cfg.SourceFile, SourceLine: row.Line}}
		}
		if !im.cfg.DryRun {
			sends = append(sends, planned{row: row, prior: p})
		}
	}
	if im.dryPlan != nil {
		for email, r := range batch {
			im.dryPlan.add(email, r.SourceLine, r.keyKind, r.CustomerIDSent)
		}
	}
	return im.mark(ctx, sends, marked)
}

// foldedEmail is row's email as keys hold it: lower-cased.
func foldedEmail(row Row) string { return strings.TrimPrefix(emailKey(row.Email), "email:") }

// batchRow is a row of the batch being planned that is to be sent.
type batchRow struct {
	keyKind string
	ledger.Prior
}

// otherKind finds the row of the other kind of key with row's email: in the
// ledger (known holds the email keys of rows keyed by customerId; byID the
// rows keyed by customerId of rows keyed by email) if it may have created
// its customer, or among the rows of this batch to be sent (batch, by
// folded email).
func (im *Importer) otherKind(row Row, known, byID map[string]ledger.Prior, batch map[string]batchRow) (ledger.Prior, bool) {
	var other ledger.Prior
	var found bool
	if keyKind(row.Key) == "customerId" {
		other, found = known[emailKey(row.Email)]
	} else {
		other, found = byID[foldedEmail(row)]
	}
	if found && other.Status.MayExist() {
		return other, true
	}
	if other, found := batch[foldedEmail(row)]; found && other.keyKind != keyKind(row.Key) {
		return other.Prior, true
	}
	if im.dryPlan != nil {
		if line, kind, sameID, found := im.dryPlan.find(foldedEmail(row), row.CustomerID); found && kind != keyKind(row.Key) {
			sent := "" // another one
			if sameID {
				sent = row.CustomerID
			}
			return ledger.Prior{Status: ledger.InFlight, Email: row.Email, CustomerIDSent: sent,
				SourceFile: im.cfg.SourceFile, SourceLine: line}, true
		}
	}
	return ledger.Prior{}, false
}

// dryRunPlan stands in, in a dry run of a file with a customerId column,
// for the in-flight marks by which a real run's later batches see the rows
// its earlier batches send: every row planned to be sent, by a hash of its
// folded email, with its line, the kind of its key and a hash of its
// customerId (a map of 8-byte keys and values: 30-38 bytes a row).
type dryRunPlan struct {
	seed maphash.Seed
	rows map[uint64]uint64
}

func newDryRunPlan() *dryRunPlan {
	return &dryRunPlan{seed: maphash.MakeSeed(), rows: map[uint64]uint64{}}
}

func (d *dryRunPlan) add(email string, line int, kind, customerID string) {
	h := maphash.String(d.seed, email)
	if _, ok := d.rows[h]; ok {
		return // the first row of an email is the one sent
	}
	v := uint64(line)<<33 | uint64(uint32(maphash.String(d.seed, customerID)))
	if kind == "customerId" {
		v |= 1 << 32
	}
	d.rows[h] = v
}

// find returns the line and the kind of key of the row planned with email,
// and whether it has customerID.
func (d *dryRunPlan) find(email, customerID string) (line int, kind string, sameID, found bool) {
	v, found := d.rows[maphash.String(d.seed, email)]
	if !found {
		return 0, "", false, false
	}
	kind = "email"
	if v&(1<<32) != 0 {
		kind = "customerId"
	}
	return int(v >> 33), kind, uint32(v) == uint32(maphash.String(d.seed, customerID)), true
}

// conflict refuses row for its conflict with other; the run counts it
// invalid. A row the ledger holds under its own key from an earlier run
// (own) is refused in place, so that it stays one row of the ledger: in
// doubt still if it may have created its customer.
func (im *Importer) conflict(ctx context.Context, row Row, csvCustomerID string, own *ledger.Prior, other ledger.Prior) error {
	what := "already " + string(other.Status)
	if other.Status == ledger.InFlight {
		what = "to be sent in this run"
	}
	if other.CustomerIDSent != "" {
		what += " with customerId " + other.CustomerIDSent
	}
	reason := fmt.Sprintf("%s:%d: conflict: %s %s (from %s:%d); not sent", im.cfg.SourceFile, row.Line, other.Email, what, other.SourceFile, other.SourceLine)
	if csvCustomerID != "" {
		reason += " under customerId " + csvCustomerID
	}
	if other.CustomerIDSent != "" {
		reason += fmt.Sprintf(" (the same person: to send this row as that customer, give it customerId %s, or drop it)", other.CustomerIDSent)
	}
	if own == nil {
		return im.lineIssue(ctx, ledger.Invalid, row.Line, row.Email, string(row.Type), csvCustomerID, reason)
	}
	im.counts.invalid.Add(1)
	if im.cfg.DryRun {
		im.noteDryIssue(reason)
		return nil
	}
	return im.run.RecordConflict(ctx, row.Key, ledger.LineIssue{
		SourceFile: im.cfg.SourceFile, SourceLine: row.Line, Status: ledger.Invalid,
		Email: row.Email, Type: string(row.Type), CustomerID: csvCustomerID, Reason: reason,
	})
}

// planned is a row to send and what the ledger knew of it.
type planned struct {
	row   Row
	prior *ledger.Prior
}

// mark marks rows in flight, MarkAhead at a time in one ledger write, and
// hands them on to start once the marks are committed: lookups of the next
// batch see them, and it is planned and marked while the disk syncs these.
func (im *Importer) mark(ctx context.Context, rows []planned, marked chan<- markedChunk) error {
	for len(rows) > 0 {
		if ctx.Err() != nil {
			return nil // not marked: the next run finds them as they were
		}
		chunk := rows[:min(len(rows), im.cfg.MarkAhead)]
		rows = rows[len(chunk):]
		marks := make([]ledger.Send, 0, len(chunk))
		for _, p := range chunk {
			marks = append(marks, im.markOf(p.row))
		}
		pending, err := im.run.MarkInFlightCommitted(context.WithoutCancel(ctx), marks)
		if err != nil {
			return err
		}
		im.counts.inFlight.Add(int64(len(chunk)))
		marked <- markedChunk{rows: chunk, marks: pending}
	}
	return nil
}

// markedChunk is rows marked in flight in one write.
type markedChunk struct {
	rows  []planned
	marks *ledger.Pending
}

// start runs each marked row on the pool once its mark is on disk: if we
// die, the next run treats the row as possibly sent. Every marked row is
// started, even when the run is stopping: its worker then releases it
// unsent. A mark that could not be synced sends none of its rows and stops
// the run: the ledger has failed, so its rows stay in flight, and the next
// run takes them for in doubt (sending them again is safe).
func (im *Importer) start(ctx context.Context, g *errgroup.Group, marked <-chan markedChunk) {
	for chunk := range marked {
		if err := chunk.marks.Durable(); err != nil {
			im.counts.inFlight.Add(-int64(len(chunk.rows)))
			g.Go(func() error { return err })
			continue
		}
		for _, p := range chunk.rows {
			g.Go(func() error {
				defer im.counts.inFlight.Add(-1)
				return im.send(ctx, p.row, p.prior)
			})
		}
	}
}

func (im *Importer) markOf(row Row) ledger.Send {
	s := ledger.Send{
		Key: row.Key, Email: row.Email, Type: string(row.Type), CustomerID: row.CustomerID,
		Fingerprint: row.fingerprint(), SourceFile: im.cfg.SourceFile, SourceLine: row.Line,
	}
	if keyKind(row.Key) == "customerId" { // found by email too; see ledger.LookupByEmail
		s.FoldedEmail = foldedEmail(row)
	}
	return s
}

// send takes one row, marked in flight by mark, through its attempts
// and records how it ended. It returns an error only to stop the whole run.
func (im *Importer) send(ctx context.Context, row Row, prior *ledger.Prior) error {
	req := ripio.CreateCustomerRequest{CustomerID: row.CustomerID, Email: row.Email, Type: row.Type}
	// maybeSent: some request for this row may have reached the server, in
	// this run or (in_doubt before) in an earlier one. Such a row can end
	// in_doubt, never failed. reached: one of this run's may have; until
	// then, a run that stops puts the row back as it was.
	maybeSent := prior != nil && (prior.Status == ledger.InDoubt || prior.Status == ledger.InFlight)
	reached := false
	var last ripio.Verdict
	for attempt, throttles := 0, 0; attempt < im.cfg.MaxAttempts; {
		if err := im.limiter.Wait(ctx); err != nil {
			return im.releaseOrDoubt(ctx, row, prior, reached, last)
		}
		if attempt+throttles > 0 {
			// Marked again, counting the attempt, before the retry leaves.
			if err := im.run.MarkInFlight(context.WithoutCancel(ctx), im.markOf(row)); err != nil {
				return err
			}
		}
		// A request that is out is never cancelled by a soft stop; the
		// client's timeout bounds it.
		cust, err := im.client.CreateCustomer(context.WithoutCancel(ctx), req)
		if !errors.As(err, new(*ripio.TokenError)) {
			im.requests.Add(1) // a create went out, not only a token request
		}
		v := ripio.Classify(err)
		last = v
		switch v.Outcome {
		case ripio.Created, ripio.Exists:
			im.limiter.Accepted()
			st, counter := ledger.Created, &im.counts.created
			if v.Outcome == ripio.Exists {
				st, counter = ledger.Exists, &im.counts.exists
			}
			counter.Add(1)
			return im.record(ctx, row, st, cust.CustomerID, v)
		case ripio.Rejected:
			im.limiter.Accepted()
			im.counts.rejected.Add(1)
			if err := im.record(ctx, row, ledger.Rejected, "", v); err != nil {
				return err
			}
			return im.checkErrorLimit()
		case ripio.Throttled, ripio.TokenThrottled:
			if v.Outcome == ripio.Throttled {
				im.throttled.Add(1)
				im.limiter.Throttled(v.RetryAfter)
			} else {
				im.limiter.Pause(v.RetryAfter) // the token endpoint's limit, not the creates'
			}
			throttles++
			if throttles >= maxThrottlesPerRow {
				attempt = im.cfg.MaxAttempts // give up on this row for this run
			}
			continue
		case ripio.Unauthorized:
			if err := im.releaseOrDoubt(ctx, row, prior, reached, v); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s", ErrUnauthorized, v.Reason)
		case ripio.InDoubt:
			maybeSent, reached = true, true
		case ripio.NotSent:
		}
		attempt++
		if attempt >= im.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		if err := im.backoff(ctx, attempt, v.RetryAfter); err != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return im.releaseOrDoubt(ctx, row, prior, reached, last)
	}
	if maybeSent {
		im.counts.inDoubt.Add(1)
		return im.record(ctx, row, ledger.InDoubt, "", last)
	}
	im.counts.failed.Add(1)
	if err := im.record(ctx, row, ledger.Failed, "", last); err != nil {
		return err
	}
	return im.checkErrorLimit()
}

// maxThrottlesPerRow ends a row's run when the server keeps throttling it
// (it is recorded failed or in_doubt and sent again next run).
const maxThrottlesPerRow = 100

// releaseOrDoubt ends a row that is not finished: in_doubt if a request of
// this run may have reached the server, otherwise back to what it was before
// this run (a row in_doubt from an earlier run stays so, its reason kept).
func (im *Importer) releaseOrDoubt(ctx context.Context, row Row, prior *ledger.Prior, reached bool, v ripio.Verdict) error {
	if reached {
		im.counts.inDoubt.Add(1)
		return im.record(ctx, row, ledger.InDoubt, "", v)
	}
	return im.run.Release(context.WithoutCancel(ctx), row.Key, prior)
}

func (im *Importer) record(ctx context.Context, row Row, st ledger.Status, customerID string, v ripio.Verdict) error {
	msg := v.Reason
	if st == ledger.Created || st == ledger.Exists {
		msg = ""
	}
	im.cfg.Logger.Debug("row", "line", row.Line, "email", row.Email, "status", st, "http", v.HTTPStatus, "reason", msg)
	return im.run.Record(context.WithoutCancel(ctx), ledger.Outcome{
		Key: row.Key, Status: st, CustomerID: customerID,
		HTTPStatus: v.HTTPStatus, ErrorCode: v.Code, Message: msg,
	})
}

func (im *Importer) checkErrorLimit() error {
	errs := im.counts.rejected.Load() + im.counts.failed.Load()
	if im.cfg.MaxErrors > 0 && errs >= int64(im.cfg.MaxErrors) {
		return fmt.Errorf("%w: %d rows rejected or failed (--max-errors %d)", ErrTooManyErrors, errs, im.cfg.MaxErrors)
	}
	if im.cfg.MaxErrorRate > 0 {
		finished := errs + im.counts.created.Load() + im.counts.exists.Load() + im.counts.inDoubt.Load()
		if finished >= 20 && float64(errs)/float64(finished) >= im.cfg.MaxErrorRate {
			return fmt.Errorf("%w: %d of %d rows sent were rejected or failed (--max-errors %g%%)",
				ErrTooManyErrors, errs, finished, im.cfg.MaxErrorRate*100)
		}
	}
	return nil
}

// backoff sleeps before attempt n+1: full jitter over an exponential cap,
// and never less than the server's Retry-After.
func (im *Importer) backoff(ctx context.Context, n int, retryAfter time.Duration) error {
	ceil := min(im.cfg.Backoff<<min(n-1, 20), im.cfg.MaxBackoff)
	d := max(im.cfg.Jitter(ceil+1), retryAfter)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// seenSet remembers the keys of a file's rows to spot repeats. It keeps a
// 64-bit hash and the line of each key, not the key, in open-addressing
// tables of two flat slices (12 bytes a slot, nothing for the garbage
// collector to scan), about 21 MiB for a million rows. The tables are 256
// shards, picked by the hash's top byte, that grow by half when 4/5 full:
// growing one shard copies a 256th of the set, so there is never an old
// and a new copy of the whole set in memory at once. Two different keys
// sharing a hash (odds near 1 in 10^7 for a million rows) would report the
// later row as a duplicate: it is never sent twice, and its reason names
// the line it is taken to repeat.
type seenSet struct {
	seed   maphash.Seed
	shards [256]seenShard
}

type seenShard struct {
	hash  []uint64 // 0 marks an empty slot
	line  []int32
	count int
}

func newSeenSet() *seenSet {
	s := &seenSet{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i] = seenShard{hash: make([]uint64, 16), line: make([]int32, 16)}
	}
	return s
}

// add records key at line, or returns the line that had it first.
func (s *seenSet) add(key string, line int) (first int, dup bool) {
	h := maphash.String(s.seed, key) | 1 // never 0, the empty mark
	sh := &s.shards[h>>56]
	if l, ok := sh.insert(h, int32(line)); !ok {
		return int(l), true
	}
	sh.count++
	if sh.count*5 > len(sh.hash)*4 {
		sh.grow()
	}
	return 0, false
}

// insert puts h at its slot, or returns the line already there. The slot is
// h's low 32 bits scaled to the table's size.
func (sh *seenShard) insert(h uint64, line int32) (int32, bool) {
	n := uint64(len(sh.hash))
	for i := (h & 0xffffffff) * n >> 32; ; i++ {
		if i == n {
			i = 0
		}
		switch sh.hash[i] {
		case 0:
			sh.hash[i], sh.line[i] = h, line
			return 0, true
		case h:
			return sh.line[i], false
		}
	}
}

func (sh *seenShard) grow() {
	oldHash, oldLine := sh.hash, sh.line
	n := len(oldHash) + len(oldHash)/2
	sh.hash, sh.line = make([]uint64, n), make([]int32, n)
	for i, h := range oldHash {
		if h != 0 {
			sh.insert(h, oldLine[i])
		}
	}
}
