package main

import (
	"context"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/fleetrate"
	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

// fleetPacer returns the pacer of one process of the fleet that sends to
// target under the target's budget in the PostgreSQL ledger l (see package
// fleetrate): every process on the target shares its ceiling and its
// adaptive law. own caps this process alone, in requests per second (0:
// only the budget). Setting the budget's ceiling is the import's
// (postgres.Ledger.SetCeiling), not the pacer's. rps is the most this
// process may send by own and the budget's ceiling as it starts (0: no
// limit), which sizes its pool.
func fleetPacer(ctx context.Context, l *postgres.Ledger, target string, own float64) (p importer.Pacer, rps float64, err error) {
	start := time.Now()
	b, err := l.OpenBudget(ctx, target)
	if err != nil {
		return nil, 0, err
	}
	rps = own
	if b.Ceiling > 0 && (rps == 0 || b.Ceiling < rps) {
		rps = b.Ceiling
	}
	p, err = fleetrate.New(fleetrate.Config{Budget: l, Target: target, Rate: own}, b, start, time.Now())
	return p, rps, err
}
