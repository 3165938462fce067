package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// A target's rate budget is one row of budgets (migration 0005), shared by
// every process that sends to the target: a GCRA schedule of departure
// slots on the database's clock, the fleet's ceiling, and the adaptive
// law's state as the last process to change it published it. The law
// itself runs in the processes (package ratelimit); the database only
// orders their reservations and their changes.

// Budget is a target's shared rate budget as one statement read it. Times
// are on the database's clock.
type Budget struct {
	// Ceiling is the fleet's most requests per second; 0: none.
	Ceiling float64
	// Law is the adaptive law's state; zero until a process published it.
	Law Law
	// Version moves with every change of Ceiling or Law.
	Version int64
	// Total counts every slot ever reserved on the target.
	Total int64
	// Now is the database's clock when the statement ran.
	Now time.Time
}

// Law is the adaptive law's state (package ratelimit's State) in the
// database. Times are on the database's clock; zero: never.
type Law struct {
	Rate, Limit, Margin float64
	Since, PausedUntil  time.Time
}

// Published reports whether a process has published the law's state.
func (l Law) Published() bool { return l.Margin > 0 }

// Reservation is what Reserve returned: N slots from First, Interval
// apart, and the budget as the statement left it.
type Reservation struct {
	Budget
	// Reserved is false when the rate was computed from a budget older
	// than the row (Budget.Version moved): nothing was reserved, and
	// Budget is the row to compute it from again.
	Reserved bool
	First    time.Time
	Interval time.Duration
	N        int
}

// Slot returns the i-th slot reserved.
func (r Reservation) Slot(i int) time.Time {
	return r.First.Add(time.Duration(i) * r.Interval)
}

// ErrNoBudget is returned by Reserve and Publish for a target whose budget
// was not opened with OpenBudget.
var ErrNoBudget = errors.New("ledger: postgres: no rate budget for the target")

// OpenBudget returns target's budget, creating the target and its budget
// row when missing.
func (l *Ledger) OpenBudget(ctx context.Context, target string) (Budget, error) {
	id, _, err := l.targetID(ctx, target, true)
	if err != nil {
		return Budget{}, fmt.Errorf("ledger: budget of %s: %w", target, err)
	}
	if _, err := l.pool.Exec(ctx, `INSERT INTO budgets (target_id) VALUES ($1) ON CONFLICT DO NOTHING`, id); err != nil {
		return Budget{}, fmt.Errorf("ledger: budget of %s: %w", target, err)
	}
	r, err := l.Reserve(ctx, target, 0, 0, -1)
	return r.Budget, err
}

// SetCeiling sets the fleet's most requests per second on target (0:
// none), creating its budget when missing.
func (l *Ledger) SetCeiling(ctx context.Context, target string, rps float64) error {
	if rps < 0 || math.IsNaN(rps) || math.IsInf(rps, 0) {
		return fmt.Errorf("ledger: budget of %s: ceiling %v: want 0 (none) or more", target, rps)
	}
	id, _, err := l.targetID(ctx, target, true)
	if err != nil {
		return fmt.Errorf("ledger: budget of %s: %w", target, err)
	}
	_, err = l.pool.Exec(ctx, `INSERT INTO budgets (target_id, ceiling) VALUES ($1, NULLIF($2, 0::float8))
		ON CONFLICT (target_id) DO UPDATE SET ceiling = excluded.ceiling,
			version = budgets.version + CASE WHEN budgets.ceiling IS NOT DISTINCT FROM excluded.ceiling THEN 0 ELSE 1 END`, id, rps)
	if err != nil {
		return fmt.Errorf("ledger: budget of %s: %w", target, err)
	}
	return nil
}

// budgetColumns are the columns budgetScan reads, in its order.
const budgetColumns = `now(), COALESCE(ceiling, 0), COALESCE(rate, 0), COALESCE(lim, 0), COALESCE(margin, 0),
	since, paused_until, version, reserved`

// budgetScan scans budgetColumns into b; call done after the Scan.
type budgetScan struct {
	b                  *Budget
	since, pausedUntil *time.Time
}

func (s *budgetScan) dest() []any {
	b := s.b
	return []any{&b.Now, &b.Ceiling, &b.Law.Rate, &b.Law.Limit, &b.Law.Margin, &s.since, &s.pausedUntil, &b.Version, &b.Total}
}

func (s *budgetScan) done() {
	if s.since != nil {
		s.b.Law.Since = *s.since
	}
	if s.pausedUntil != nil {
		s.b.Law.PausedUntil = *s.pausedUntil
	}
}

// maxInterval is the longest interval between two slots Reserve spaces.
const maxInterval = 365 * 24 * time.Hour

// Reserve reserves n departure slots on target at rate (requests per
// second; +Inf or 0: slots all at once) in one statement, on the database's
// clock: the first is the latest of the schedule's next free slot, now and
// the end of a pause, and the schedule moves on by n/rate. It reserves
// nothing unless version is the budget's Version, that is unless rate was
// computed from the row as it is; n = 0 only reads the budget. It returns
// ErrNoBudget for a target not opened with OpenBudget.
func (l *Ledger) Reserve(ctx context.Context, target string, n int, rate float64, version int64) (Reservation, error) {
	id, ok := l.budgetTarget(target)
	if !ok {
		return Reservation{}, ErrNoBudget
	}
	var iv time.Duration
	if rate > 0 && !math.IsInf(rate, 1) {
		// The database's precision: the slots computed here are the ones
		// the schedule moved over. A rate under one a maxInterval spaces
		// its slots maxInterval apart (a Duration of 1/rate would overflow).
		iv = time.Duration(min(float64(time.Second)/rate, float64(maxInterval))).Truncate(time.Microsecond)
	}
	r := Reservation{Interval: iv}
	sc := budgetScan{b: &r.Budget}
	err := l.pool.QueryRow(ctx, `UPDATE budgets SET
			tat = CASE WHEN version = $3 THEN greatest(tat, now(), paused_until) + $2 * interval '1 microsecond' ELSE tat END,
			reserved = reserved + CASE WHEN version = $3 THEN $4 ELSE 0 END
		WHERE target_id = $1
		RETURNING version = $3, tat - CASE WHEN version = $3 THEN $2 * interval '1 microsecond' ELSE interval '0' END, `+budgetColumns,
		id, int64(n)*iv.Microseconds(), version, int64(n)).Scan(append([]any{&r.Reserved, &r.First}, sc.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Reservation{}, ErrNoBudget
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("ledger: reserve on %s: %w", target, err)
	}
	sc.done()
	if r.Reserved {
		r.N = n
	}
	return r, nil
}

// Publish writes law as target's shared state and returns the budget as
// the statement left it. Writers converge: law's rate, limit, margin and
// since are written when version is the budget's Version (the writer
// changed the state it last read) or when law.Since is later than the
// row's (a newer decrease); else the row's stay, and the writer adopts
// them. A pause is never shortened: PausedUntil is the later of the two.
func (l *Ledger) Publish(ctx context.Context, target string, law Law, version int64) (Budget, error) {
	id, ok := l.budgetTarget(target)
	if !ok {
		return Budget{}, ErrNoBudget
	}
	var b Budget
	sc := budgetScan{b: &b}
	err := l.pool.QueryRow(ctx, `WITH w AS (
			SELECT b.target_id, (b.version = $7 OR (CAST($6 AS timestamptz) IS NOT NULL AND (b.since IS NULL OR $6 > b.since))) AS law,
				greatest(b.paused_until, $5) IS DISTINCT FROM b.paused_until AS pause
			FROM budgets b WHERE b.target_id = $1 FOR UPDATE)
		UPDATE budgets SET
			rate = CASE WHEN w.law THEN $2 ELSE rate END,
			lim = CASE WHEN w.law THEN $3 ELSE lim END,
			margin = CASE WHEN w.law THEN $4 ELSE margin END,
			since = CASE WHEN w.law THEN $6 ELSE since END,
			paused_until = greatest(paused_until, $5),
			version = version + CASE WHEN w.law OR w.pause THEN 1 ELSE 0 END
		FROM w WHERE budgets.target_id = w.target_id
		RETURNING `+budgetColumns,
		id, law.Rate, law.Limit, law.Margin, timeOrNil(law.PausedUntil), timeOrNil(law.Since), version).Scan(sc.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Budget{}, ErrNoBudget
	}
	if err != nil {
		return Budget{}, fmt.Errorf("ledger: publish on %s: %w", target, err)
	}
	sc.done()
	return b, nil
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (l *Ledger) budgetTarget(target string) (int64, bool) {
	v, ok := l.targets.Load(target)
	if !ok {
		return 0, false
	}
	return v.(int64), true
}
