package main

import (
	"context"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// fleetPacer is the pacer of a process working a fleet's rows on a
// PostgreSQL ledger: an import's own pool (setsBudget: its --rps is the
// target's budget) or a worker (its --rps, when given, caps it alone).
// Every fleet process gets its pacer here, and only here: today a limiter
// of this process's own, at rps.
func fleetPacer(_ context.Context, _ *postgres.Ledger, _ string, rps float64, burst int, _ bool) (importer.Pacer, error) {
	return ratelimit.New(ratelimit.Config{Rate: rps, Burst: burst}), nil
}
