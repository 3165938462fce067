package importer

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// planner decides each batch of rows against the store and marks the rows
// to send. Only the planning goroutine uses it.
type planner struct {
	im     *Importer
	store  Store
	marked chan<- markedChunk // nil: the rows marked are not sent (a dry run)
	// blind: a load into an empty target, planned without lookups
	// (startBlind); unsynced: rows were queued ahead since the last sync.
	blind, unsynced bool
	// stopReadAt: when a load last asked whether the fleet stopped its run.
	stopReadAt time.Time
	// deferred: rows in doubt kept back until the target is known (defers);
	// sentOthers: rows were sent that were not kept back.
	deferred   []planned
	sentOthers bool
}

// planned is a row to send and what the store knew of it.
type planned struct {
	row   Row
	prior *ledger.Prior
}

// plan decides each row of a batch by the rules of decide, records the
// rows refused and marks the rows to send.
func (p *planner) plan(ctx context.Context, rows []Row) error {
	im := p.im
	var byKey, byEmail map[string]ledger.Prior
	if p.needsLookup(rows) {
		if err := p.sync(ctx); err != nil {
			return err
		}
		var err error
		if byKey, byEmail, err = p.lookup(ctx, rows); err != nil {
			return err
		}
	}
	opt := rules{sourceFile: im.cfg.SourceFile, retryRejected: im.cfg.RetryRejected, holdInDoubt: im.holdsInDoubt()}
	batch := map[string]plannedRow{} // rows of this batch to be sent, by folded email
	var sends []planned
	for _, r := range rows {
		k := knownOf(r, byKey, byEmail)
		if im.cfg.MarkExisting {
			if err := p.markExisting(ctx, r, k.own); err != nil {
				return err
			}
			continue
		}
		if k.own != nil && k.own.Status == row.Queued {
			// A fleet import queued it and the fleet has not yet taken it
			// to an outcome: it is that import's to finish.
			im.noteQueuedElsewhere(r.Key)
			continue
		}
		var first *plannedRow
		if b, ok := batch[foldedEmail(r)]; ok {
			first = &b
		}
		d := decide(r, k, first, opt)
		switch d.action {
		case actSend:
			im.counts.toSend.Add(1)
			if im.cfg.DryRun && p.waitsOnTarget(k.own) {
				im.counts.toSendInDoubt.Add(1) // the import may hold it (sendDeferred)
			}
			r.CustomerID = d.customerID
			if first == nil {
				batch[foldedEmail(r)] = plannedRow{email: r.Email, customerID: r.CustomerID, line: r.Line}
			}
			if p.defers(k.own) {
				p.deferred = append(p.deferred, planned{row: r, prior: k.own})
				continue
			}
			sends = append(sends, planned{row: r, prior: k.own})
		case actSkip:
			im.counts.skipped.Add(1)
		case actSkipRejected:
			im.counts.rejected.Add(1) // unchanged since the server refused it
		case actHoldInDoubt:
			im.counts.inDoubt.Add(1)
			im.counts.held.Add(1)
			if err := im.run.SetMessage(ctx, r.Key, d.message); err != nil {
				return err
			}
		default:
			if err := p.refuse(ctx, r, d); err != nil {
				return err
			}
		}
	}
	if len(sends) > 0 {
		p.sentOthers = true
	}
	if len(p.deferred) > 0 && im.ownIDs.Load() {
		sends = append(sends, p.deferred...)
		p.deferred = nil
	}
	return p.mark(ctx, sends)
}

// markedExisting is the message of a row in doubt that the operator said
// exists (Config.MarkExisting).
const markedExisting = "in doubt, then found in Ripio by the operator (import --mark-existing)"

// markExisting records r exists if the store holds it (own) in doubt, as
// the same person (a key names one person: another email or type under
// r's key is not the one the operator found); any other row is left as it
// is and counts skipped. A row in doubt under a key an older version gave
// it (its email lower-cased, for a non-ASCII one) is left too.
func (p *planner) markExisting(ctx context.Context, r Row, own *ledger.Prior) error {
	im := p.im
	if own != nil && own.Status.Doubtful() && samePerson(*own, r) {
		im.counts.exists.Add(1)
		return im.run.Record(context.WithoutCancel(ctx), ledger.Outcome{Key: r.Key, Status: row.Exists, Message: markedExisting})
	}
	im.counts.skipped.Add(1)
	return nil
}

// maxDeferred is the most rows in doubt a run keeps back (defers).
const maxDeferred = 10000

// defers reports whether a row to send, which the store holds as prior,
// is kept back until the target is known: a row in doubt since an earlier
// run, at a target no answer has yet shown to keep the customerIds sent,
// waits for the answers to rows sent for the first time, which tell; it
// goes with the next batch once one has, or at the end of the file
// (sendDeferred). Past maxDeferred such rows, they go in file order, and
// those that still find the target unknown are held (send.go's ready).
func (p *planner) defers(prior *ledger.Prior) bool {
	return p.marked != nil && p.waitsOnTarget(prior) && len(p.deferred) < maxDeferred
}

// waitsOnTarget reports whether a row to send, which the store holds as
// prior, is sent only once an answer shows the target keeps the
// customerIds sent: it is in doubt since an earlier run, and no answer has
// yet shown it (see defers).
func (p *planner) waitsOnTarget(prior *ledger.Prior) bool {
	return prior != nil && prior.Status.Doubtful() && !p.im.cfg.ResendInDoubt && !p.im.ownIDs.Load()
}

// sendDeferred marks and sends the rows kept back, once the file was read
// to its end and the answers to the rows already sent are in (or one has
// shown the target). When the run sent no other row (a file of rows in
// doubt only), the first is sent alone to find out: at a target that
// keeps the ids sent its answer shows it, and the rest follow; at one that
// assigns its own, that one person may now have two customers, and the
// rest are held. When it sent others and none of their answers told (all
// lost too), none is sent alone. Each row is then sent, or held if the
// target is still not known to keep the ids sent, or found to assign its
// own (ready).
func (p *planner) sendDeferred(ctx context.Context) error {
	im := p.im
	if len(p.deferred) == 0 || p.waitForAnswers(ctx) != nil {
		return nil // not marked: the next run finds them as they were
	}
	rows := p.deferred
	p.deferred = nil
	if !im.ownIDs.Load() && !im.assignsIDs.Load() && !p.sentOthers {
		im.cfg.Logger.Warn("no answer has shown whether the target keeps the customerIds sent: sending one row in doubt to find out "+
			"(at a target that assigns its own ids, that person may get a second customer: check it in Ripio)",
			"file", im.cfg.SourceFile, "line", rows[0].row.Line)
		im.probe.Store(true)
		if err := p.mark(ctx, rows[:1]); err != nil {
			return err
		}
		rows = rows[1:]
		if p.waitForAnswers(ctx) != nil {
			return nil
		}
	}
	return p.mark(ctx, rows)
}

// waitForAnswers waits until the target is known (it keeps the ids sent,
// or assigns its own) or no row of the run is out; ctx's error if it ends
// first.
func (p *planner) waitForAnswers(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !p.im.ownIDs.Load() && !p.im.assignsIDs.Load() && p.im.counts.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// lookup reads what the store holds of rows' keys: byKey by row key (and,
// for rows keyed by customerId, by the email key too), byEmail the rows
// keyed by customerId that hold the email of a row not done. Both are read
// under the legacy form of an email too, where it differs. Rows this run
// marked in earlier batches are among them: marks are committed before the
// next batch is planned, so the store, not a set in memory, says which
// emails this run has sent.
func (p *planner) lookup(ctx context.Context, rows []Row) (byKey, byEmail map[string]ledger.Prior, err error) {
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.Key)
		if keyKind(r.Key) == "customerId" {
			keys = append(keys, emailKey(r.Email))
		}
		if l := legacyEmail(r); l != "" {
			keys = append(keys, "email:"+l)
		}
	}
	if byKey, err = p.store.Lookup(ctx, p.im.target, keys); err != nil {
		return nil, nil, err
	}
	var emails []string
	for _, r := range rows {
		if prior, ok := byKey[r.Key]; !ok || !prior.Status.Done() {
			emails = append(emails, foldedEmail(r))
			if l := legacyEmail(r); l != "" {
				emails = append(emails, l)
			}
		}
	}
	byEmail = map[string]ledger.Prior{}
	if len(emails) > 0 {
		if byEmail, err = p.store.LookupByEmail(ctx, p.im.target, emails); err != nil {
			return nil, nil, err
		}
	}
	return byKey, byEmail, nil
}

// knownOf is what the lookups found of row's keys.
func knownOf(r Row, byKey, byEmail map[string]ledger.Prior) known {
	var k known
	if own, ok := byKey[r.Key]; ok {
		k.own = &own
	}
	add := func(m map[string]ledger.Prior, key string) {
		if p, ok := m[key]; ok {
			k.others = append(k.others, p)
		}
	}
	legacy := legacyEmail(r)
	if keyKind(r.Key) == "customerId" {
		add(byKey, emailKey(r.Email))
		if legacy != "" {
			add(byKey, "email:"+legacy)
		}
	} else if p, ok := byKey["email:"+legacy]; ok && legacy != "" {
		k.legacy = &p
	}
	if len(byEmail) > 0 { // none on a resume of done rows: no email to fold
		add(byEmail, foldedEmail(r))
		if legacy != "" {
			add(byEmail, legacy)
		}
	}
	return k
}

// refuse records a row decide refused for a conflict; the run counts it
// invalid. A row the store holds under its own key keeps one record: in
// doubt still, with the reason in its message, if it may have created its
// customer; otherwise replaced by the line issue.
func (p *planner) refuse(ctx context.Context, r Row, d decision) error {
	im := p.im
	li := ledger.LineIssue{
		SourceFile: im.cfg.SourceFile, SourceLine: r.Line, Status: row.Invalid,
		Email: r.Email, Type: string(r.Type), CustomerID: r.CustomerID, Reason: d.reason,
	}
	switch d.action {
	case actRefuseInDoubt:
		im.countNotSent(row.Invalid, d.reason)
		return im.run.SetMessage(ctx, r.Key, d.message)
	case actRefuseReplace:
		im.countNotSent(row.Invalid, d.reason)
		return im.run.ReplaceWithLineIssue(ctx, r.Key, li)
	}
	return im.lineIssue(ctx, li.Status, li.SourceLine, li.Email, li.Type, li.CustomerID, li.Reason)
}

// foldedEmail is row's email as keys hold it (foldEmail).
func foldedEmail(r Row) string { return foldEmail(r.Email) }

// legacyEmail is row's email as versions before foldEmail keyed it
// (strings.ToLower), when that differs from its folded form; else "".
// Only an email with a non-ASCII character can differ.
func legacyEmail(r Row) string {
	if isASCII(r.Email) {
		return ""
	}
	if l := strings.ToLower(strings.TrimSpace(r.Email)); l != foldedEmail(r) {
		return l
	}
	return ""
}

// mark marks rows in flight, MarkAhead at a time in one store write, and
// hands them on to start once the marks are committed: lookups of the next
// batch see them, and it is planned and marked while the disk syncs these.
func (p *planner) mark(ctx context.Context, rows []planned) error {
	im := p.im
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
		if im.cfg.Queue {
			if err := p.queue(ctx, marks); err != nil {
				return err
			}
			continue
		}
		pending, err := im.run.MarkInFlightCommitted(context.WithoutCancel(ctx), marks)
		if err != nil {
			return err
		}
		if p.marked == nil {
			continue
		}
		im.counts.inFlight.Add(int64(len(chunk)))
		p.marked <- markedChunk{rows: chunk, marks: pending}
	}
	return nil
}

// markedChunk is rows marked in flight in one write.
type markedChunk struct {
	rows  []planned
	marks Pending
}

// start runs each marked row on the pool once its mark is on disk: if we
// die, the next run treats the row as possibly sent. Every marked row is
// started, even when the run is stopping: its worker then releases it
// unsent. A mark that could not be synced sends none of its rows and stops
// the run: the store has failed, so its rows stay in flight, and the next
// run takes them for in doubt (sending them again is safe).
func (im *Importer) start(ctx context.Context, g *errgroup.Group, marked <-chan markedChunk) {
	for chunk := range marked {
		if err := chunk.marks.Durable(); err != nil {
			im.counts.inFlight.Add(-int64(len(chunk.rows)))
			g.Go(func() error { return err })
			continue
		}
		for _, p := range chunk.rows {
			im.takePlace()
			g.Go(func() error {
				defer im.leavePlace()
				defer im.counts.inFlight.Add(-1)
				return im.send(ctx, p.row, p.prior)
			})
		}
	}
}

// markOf is the mark of row. A row keyed by customerId is indexed by its
// folded email too, so that rows keyed by email find it.
func (im *Importer) markOf(r Row) ledger.Send {
	s := ledger.Send{
		Key: r.Key, Email: r.Email, Type: string(r.Type), CustomerID: r.CustomerID,
		Fingerprint: r.fingerprint(), SourceFile: im.cfg.SourceFile, SourceLine: r.Line,
	}
	if r.file != "" {
		s.SourceFile = r.file
	}
	if keyKind(r.Key) == "customerId" {
		s.FoldedEmail = foldedEmail(r)
	}
	return s
}
