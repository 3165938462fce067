package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// batchSize is how many rows are planned with one store lookup.
const batchSize = 256

// feed reads and validates rows on one goroutine, plans them, batch by
// batch, against the store on this one, and hands the rows to send, marked
// in flight, to a third that starts them on the pool: a resume looks up a
// batch while the next one is read, and the next rows are marked while the
// pool sends the last ones. g.Go blocks while the pool is full, and the
// channels are short, which bounds memory. readAll reports whether the file
// was read to its end. A dry run plans and sends nothing.
func (im *Importer) feed(ctx context.Context, g *errgroup.Group, rr *rowReader, store Store) (readAll bool, err error) {
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
	var marked chan markedChunk // nil in a dry run or a load: nothing is started
	startDone := make(chan struct{})
	if im.cfg.DryRun || im.cfg.Queue {
		close(startDone)
	} else {
		marked = make(chan markedChunk)
		go func() {
			defer close(startDone)
			im.start(ctx, g, marked)
		}()
	}
	p := planner{im: im, store: store, marked: marked}
	err = p.startBlind(ctx, rr.hasCustomerID)
	for batch := range batches {
		if err == nil && ctx.Err() == nil {
			err = p.plan(ctx, batch)
		}
		if err != nil || ctx.Err() != nil {
			stopReading() // and drain, so the reader can end
		}
	}
	if err == nil && readErr == nil && ctx.Err() == nil {
		// The file was read to its end (the reader set readErr before it
		// closed batches): the rows kept back go now.
		err = p.sendDeferred(ctx)
	}
	if marked != nil {
		close(marked)
	}
	<-startDone
	<-readDone
	if err == nil {
		err = readErr
	}
	if ctx.Err() != nil {
		// A stop, not a failure: what failed was a lookup or a write the
		// stop interrupted; rows not planned stay as they were. The file
		// may have been read to its end all the same.
		return readAll && readErr == nil, nil
	}
	return readAll && err == nil && ctx.Err() == nil, err
}

// read validates rows and sends them in batches; invalid rows and repeats
// go to the store from here.
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
		if rec.OriginFile != "" && rec.OriginLine > 0 {
			// A row of a failures file, fixed: it supersedes its issue,
			// if that is still the one the failures file named.
			if err := im.run.ClearLineIssue(ctx, rec.OriginFile, rec.OriginLine, rec.OriginIssue); err != nil {
				return false, err
			}
		}
		r, rowErr := validate(im.cfg.SourceFile, rec)
		if rowErr != nil {
			if err := im.lineIssue(ctx, row.Invalid, rec.Line, rec.Email, rec.Type, rec.CustomerID, rowErr.Error()); err != nil {
				return false, err
			}
			continue
		}
		if first, dup := seen.add(r.Key, r.Line); dup {
			if err := im.lineIssue(ctx, row.Duplicate, r.Line, r.Email, string(r.Type), r.CustomerID,
				fmt.Sprintf("%s:%d: repeats line %d (same %s)", im.cfg.SourceFile, r.Line, first, keyKind(r.Key))); err != nil {
				return false, err
			}
			continue
		}
		batch = append(batch, r)
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

// lineIssue counts and records a row that is not sent and has no key of its
// own in the store: invalid or duplicate.
func (im *Importer) lineIssue(ctx context.Context, st row.Status, line int, email, typ, customerID, reason string) error {
	im.countNotSent(st, reason)
	return im.run.RecordLineIssue(ctx, ledger.LineIssue{
		SourceFile: im.cfg.SourceFile, SourceLine: line, Status: st,
		Email: email, Type: typ, CustomerID: customerID, Reason: reason,
	})
}

// countNotSent counts a row refused locally, and keeps its reason for a dry
// run's summary.
func (im *Importer) countNotSent(st row.Status, reason string) {
	switch st {
	case row.Invalid:
		im.counts.invalid.Add(1)
	case row.Duplicate:
		im.counts.duplicate.Add(1)
	}
	im.issues.note(reason)
}

// maxIssues is how many reasons a dry run's summary shows.
const maxIssues = 20

// issueLog keeps the reasons of the first rows a run does not send.
type issueLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *issueLog) note(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reasons) < maxIssues {
		l.reasons = append(l.reasons, reason)
	}
}

func (l *issueLog) first() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reasons)
}
