package importer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// maxThrottlesPerRow ends a row's run when the server keeps throttling it
// (it is recorded failed or in_doubt and sent again next run).
const maxThrottlesPerRow = 100

// sending is one row's way through its attempts.
type sending struct {
	row   Row
	prior *ledger.Prior // what the store held before this run; nil: nothing
	// maybeSent: some request for this row may have reached the server, in
	// this run or (in doubt before) in an earlier one. Such a row can end
	// in_doubt, never failed.
	maybeSent bool
	// reached: one of this run's requests may have reached the server;
	// until then, a run that stops puts the row back as it was.
	reached bool
	// untilKnown: the row, in doubt, is held until an answer shows that
	// the target keeps the ids sent.
	untilKnown bool
	// probe: the row, in doubt, was sent alone to find out whether the
	// target keeps the ids sent; twice: the answer showed it does not, so
	// the person may have two customers.
	probe, twice bool
	last         ripio.Verdict
	// leave is the pacer's last wait before the next request goes.
	leave func(context.Context) error
}

// send takes one row, marked in flight by mark, through its attempts and
// records how it ended. It returns an error only to stop the whole run.
// What a call's result means is ripio.Classify's alone.
func (im *Importer) send(ctx context.Context, r Row, prior *ledger.Prior) error {
	s := &sending{row: r, prior: prior,
		maybeSent: prior != nil && prior.Status.Doubtful()}
	// tries counts every request but 429s, for the backoff; attempt only
	// those that spend one of the row's attempts.
	for attempt, tries, throttles := 0, 0, 0; ; {
		if ended, err := im.ready(ctx, s); ended {
			return err
		}
		if tries+throttles > 0 {
			// Marked again, counting the attempt, before the retry leaves.
			if err := im.run.MarkInFlight(context.WithoutCancel(ctx), im.markOf(r)); err != nil {
				return err
			}
		}
		cust, v := im.call(ctx, r, s.leave)
		s.last = v
		if v.Outcome == ripio.InDoubt {
			s.maybeSent, s.reached = true, true
		}
		if v.Outcome == ripio.Throttled {
			im.throttled.Add(1) // before the stop rules: the 429 that ends a run counts too
		}
		if v.Outcome == ripio.NotSent && v.HTTPStatus == 0 && im.stop.firstUnreached() {
			im.cfg.Logger.Warn("no answer from the API yet; the run ends if none comes within --unreachable-after", "error", v.Reason)
		}
		if err := im.stop.observe(v); err != nil {
			return im.abort(ctx, s, err)
		}
		switch v.Outcome {
		case ripio.Created, ripio.Exists:
			im.pacer.Accepted()
			if err := im.noteOwnID(ctx, v, cust); err != nil {
				return err
			}
			if err := im.noteAssignedID(ctx, cust); err != nil {
				return err
			}
			if s.probe && cust.AssignedID != "" {
				// Its first send may have made a customer too.
				im.probeTwice.Store(true)
				s.twice = true
			}
			return im.record(ctx, s, statusOf(v.Outcome), cust.CustomerID)
		case ripio.Rejected:
			im.pacer.Accepted()
			return im.recordError(ctx, s, row.Rejected)
		case ripio.Unauthorized:
			if v.WrongURL {
				return im.abort(ctx, s, fmt.Errorf("%w: %s", ErrWrongBaseURL, v.Reason))
			}
			return im.abort(ctx, s, fmt.Errorf("%w: %s", ErrUnauthorized, v.Reason))
		case ripio.Throttled, ripio.TokenThrottled:
			im.throttle(v)
			if throttles++; throttles >= maxThrottlesPerRow {
				return im.giveUp(ctx, s) // the server keeps refusing: next run
			}
			// The pacer sets the pool's pace; the request the server
			// refused waits the Retry-After it was given (the stop rules
			// bound it) before it goes again.
			im.counts.waiting.Add(1)
			err := im.waitOut(ctx, v.RetryAfter)
			im.counts.waiting.Add(-1)
			if err != nil {
				return im.releaseOrDoubt(ctx, s)
			}
			continue // a 429 does not spend an attempt
		case ripio.InDoubt:
			if im.holdsInDoubt() || !im.ownIDs.Load() {
				// Sent again, it may be created twice: at a target that
				// assigns its own ids, or one not yet seen to keep ours.
				return im.giveUp(ctx, s)
			}
		}
		tries++
		if v.Outcome != ripio.NotSent || !im.stop.waitForAnswer() {
			if attempt++; attempt >= im.cfg.MaxAttempts {
				return im.giveUp(ctx, s)
			}
		}
		if ctx.Err() != nil || im.backoff(ctx, tries, v.RetryAfter) != nil {
			return im.releaseOrDoubt(ctx, s)
		}
	}
}

// ready waits for the pacer's slot for row s. ended reports that the row
// ended here instead, with err the run's: the run stops, or the row, in
// doubt, is held because the target assigns its own ids.
func (im *Importer) ready(ctx context.Context, s *sending) (ended bool, err error) {
	if s.leave, err = im.waitPacer(ctx); err != nil || ctx.Err() != nil {
		if errors.Is(err, ErrThrottledTooLong) {
			return true, im.abort(ctx, s, err)
		}
		if ctx.Err() == nil {
			// The pacer failed (a fleet budget out of reach): the row
			// goes back, and the run stops with the reason.
			return true, im.abort(ctx, s, err)
		}
		return true, im.releaseOrDoubt(ctx, s)
	}
	if stopped, err := im.fleet.stoppedNow(ctx, s.row.run); err != nil {
		// Not known: the row goes as if not, and the next row asks again.
		im.cfg.Logger.Warn("error limit not checked", "import", s.row.run, "error", err)
	} else if stopped {
		// The row's fleet import reached its error limit: it goes back.
		return true, im.abort(ctx, s, nil)
	}
	if s.maybeSent && im.holdsInDoubtNow(ctx) {
		// The target was found to assign its own ids while this row, in
		// doubt, waited: a second send may be a second customer.
		return true, im.hold(ctx, s)
	}
	if s.maybeSent && !im.cfg.ResendInDoubt && !im.keepsIDsNow(ctx) && !s.probe {
		if im.probe.CompareAndSwap(true, false) {
			s.probe = true // sent alone to find out (planner.sendDeferred)
			im.probeLine.Store(int64(s.row.Line))
			return false, nil
		}
		// In doubt since an earlier run, at a target no answer has yet
		// shown to keep the ids sent: a second send may be a second
		// customer. Rows sent for the first time will tell.
		s.untilKnown = true
		return true, im.hold(ctx, s)
	}
	return false, nil
}

// hold ends row s in doubt, not sent again, under the reason it had unless
// this run gave it one (record adds why it is held).
func (im *Importer) hold(ctx context.Context, s *sending) error {
	if s.last.Reason == "" && s.prior != nil {
		s.last.Reason = s.prior.Message
	}
	return im.record(ctx, s, row.InDoubt, "")
}

// waitPacer waits for the pacer's slot and returns the pacer's last wait
// (see Pacer.Reserve). While every answer is a 429, the wait ends when
// they have lasted --max-retry-after (the pacer's own pause may run past
// it): then with ErrThrottledTooLong.
func (im *Importer) waitPacer(ctx context.Context) (func(context.Context) error, error) {
	for {
		until, ok := im.stop.throttledUntil()
		if !ok {
			return im.pacer.Reserve(ctx)
		}
		wctx, cancel := context.WithDeadline(ctx, until)
		leave, err := im.pacer.Reserve(wctx)
		cancel()
		if err == nil || ctx.Err() != nil || wctx.Err() == nil {
			return leave, err
		}
		if err := im.stop.throttledTooLong(); err != nil {
			return nil, err
		}
		// An answer other than a 429 came meanwhile: wait again.
	}
}

// abort ends row s as a stopping run leaves it, and returns err, the
// reason the whole run stops.
func (im *Importer) abort(ctx context.Context, s *sending, err error) error {
	if rerr := im.releaseOrDoubt(ctx, s); rerr != nil {
		return rerr
	}
	return err
}

// call sends one create, which leaves when leave (the pacer's last wait;
// nil: none) returns. A request that is out is never cancelled by a soft
// stop; the sender's timeout bounds it.
func (im *Importer) call(ctx context.Context, r Row, leave func(context.Context) error) (ripio.Customer, ripio.Verdict) {
	req := ripio.CreateCustomerRequest{CustomerID: r.CustomerID, Email: r.Email, Type: r.Type, Leave: leave}
	im.stop.sending()
	start := time.Now()
	cust, err := im.sender.CreateCustomer(context.WithoutCancel(ctx), req)
	v := ripio.Classify(err)
	if !errors.As(err, new(*ripio.TokenError)) {
		im.requests.Add(1) // a create went out, not only a token request
		if im.cfg.Observe != nil {
			im.cfg.Observe(v, time.Since(start))
		}
	}
	return cust, v
}

// throttle slows the pool for a 429 of the create endpoint, and pauses it
// for one of the token endpoint, whose limit is not the creates'.
func (im *Importer) throttle(v ripio.Verdict) {
	if v.Outcome == ripio.Throttled {
		im.pacer.Throttled(v.RetryAfter)
		return
	}
	im.pacer.Pause(v.RetryAfter)
}

func statusOf(o ripio.Outcome) row.Status {
	if o == ripio.Exists {
		return row.Exists
	}
	return row.Created
}

// giveUp ends a row whose attempts ran out: in_doubt if a request may have
// reached the server, failed otherwise; or, when the run is stopping, as
// releaseOrDoubt does.
func (im *Importer) giveUp(ctx context.Context, s *sending) error {
	switch {
	case ctx.Err() != nil:
		return im.releaseOrDoubt(ctx, s)
	case s.maybeSent:
		return im.recordError(ctx, s, row.InDoubt)
	}
	return im.recordError(ctx, s, row.Failed)
}

// releaseOrDoubt ends a row that is not finished: in_doubt if a request of
// this run may have reached the server, otherwise back to what it was before
// this run (a row in_doubt from an earlier run stays so, its reason kept).
func (im *Importer) releaseOrDoubt(ctx context.Context, s *sending) error {
	if s.reached {
		return im.record(ctx, s, row.InDoubt, "")
	}
	return im.run.Release(context.WithoutCancel(ctx), s.row.Key, s.prior)
}

// recordError records a row rejected, failed or in doubt, and stops the
// run when the error limit is reached: in Work, the limit of the fleet
// import the row is of, which stops that run only (fleetlimit.go).
func (im *Importer) recordError(ctx context.Context, s *sending, st row.Status) error {
	if err := im.record(ctx, s, st, ""); err != nil {
		return err
	}
	if im.fleet != nil {
		return im.fleet.noteError(ctx, s.row.run)
	}
	return im.checkErrorLimit()
}

// record counts a row's outcome and writes it.
func (im *Importer) record(ctx context.Context, s *sending, st row.Status, customerID string) error {
	im.counts.of(st).Add(1)
	msg := s.last.Reason
	if st == row.Created || st == row.Exists {
		msg = ""
		if s.twice {
			msg = twiceMessage(s.row.Email, customerID)
		}
	} else if st == row.InDoubt && im.holdsInDoubt() {
		im.counts.held.Add(1)
		msg = heldMessage(msg, s.row.Email)
	} else if st == row.InDoubt && s.untilKnown {
		im.counts.heldUnknown.Add(1)
		msg = heldUntilKnownMessage(msg, s.row.Email)
	}
	im.cfg.Logger.Debug("row", "line", s.row.Line, "email", s.row.Email, "status", st, "http", s.last.HTTPStatus, "reason", msg)
	return im.run.Record(context.WithoutCancel(ctx), ledger.Outcome{
		Key: s.row.Key, Status: st, CustomerID: customerID,
		HTTPStatus: s.last.HTTPStatus, ErrorCode: s.last.Code, Message: msg,
	})
}

// checkErrorLimit returns ErrTooManyErrors, wrapped with why, once the
// run's rows reach Config.MaxErrors or MaxErrorRate.
func (im *Importer) checkErrorLimit() error {
	errs := im.counts.rejected.Load() + im.counts.failed.Load() + im.counts.inDoubt.Load()
	finished := errs + im.counts.created.Load() + im.counts.exists.Load()
	if why := errorLimitReached(im.cfg.MaxErrors, im.cfg.MaxErrorRate, errs, finished); why != "" {
		return fmt.Errorf("%w: %s", ErrTooManyErrors, why)
	}
	return nil
}

// minRateRows is the fewest rows finished before a share of them can
// reach MaxErrorRate.
const minRateRows = 20

// errorLimitReached says why errs rows rejected, failed or in doubt, of
// finished rows sent, reach the limit of maxErrors rows (0: none) or of
// the share maxRate of them (0: none); "" when they do not.
func errorLimitReached(maxErrors int, maxRate float64, errs, finished int64) string {
	if maxErrors > 0 && errs >= int64(maxErrors) {
		return fmt.Sprintf("%d rows rejected, failed or in doubt (--max-errors %d)", errs, maxErrors)
	}
	if maxRate > 0 && finished >= minRateRows && float64(errs)/float64(finished) >= maxRate {
		return fmt.Sprintf("%d of %d rows sent were rejected, failed or in doubt (--max-errors %g%%)", errs, finished, maxRate*100)
	}
	return ""
}

// backoff sleeps before attempt n+1: full jitter over an exponential cap,
// and never less than the server's Retry-After.
func (im *Importer) backoff(ctx context.Context, n int, retryAfter time.Duration) error {
	ceil := min(im.cfg.Backoff<<min(n-1, 20), im.cfg.MaxBackoff)
	return sleep(ctx, max(im.cfg.Jitter(ceil+1), retryAfter))
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// of is the counter of rows that ended in st.
func (c *counters) of(st row.Status) *atomic.Int64 {
	switch st {
	case row.Created:
		return &c.created
	case row.Exists:
		return &c.exists
	case row.Rejected:
		return &c.rejected
	case row.Failed:
		return &c.failed
	}
	return &c.inDoubt
}
