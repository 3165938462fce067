package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

// fleetReader is a ledger that lists the imports and workers at work on a
// target: a PostgreSQL one.
type fleetReader interface {
	Live(ctx context.Context, target string) ([]postgres.LiveImport, []postgres.LiveWorker, error)
}

// liveFleet is what report adds on a PostgreSQL ledger.
type liveFleet struct {
	Imports []postgres.LiveImport `json:"liveImports,omitempty"`
	Workers []postgres.LiveWorker `json:"workers,omitempty"`
}

// readFleet reads the live imports and workers of target, when l keeps
// them; nothing otherwise.
func readFleet(ctx context.Context, l store, target string) (liveFleet, error) {
	fr, ok := l.(fleetReader)
	if !ok {
		return liveFleet{}, nil
	}
	imports, workers, err := fr.Live(ctx, target)
	return liveFleet{Imports: imports, Workers: workers}, err
}

// printFleet writes the live imports and workers as tables.
func printFleet(w io.Writer, f liveFleet) {
	if len(f.Imports) > 0 {
		fmt.Fprintln(w, "\nlive imports:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\tstarted\tstate\trows left\tfile")
		for _, li := range f.Imports {
			state := "loading"
			if li.Loaded {
				state = "sending"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", li.RunID, shortTime(li.StartedAt), state, li.Left, li.SourceFile)
		}
		tw.Flush()
	}
	if len(f.Workers) > 0 {
		fmt.Fprintln(w, "\nworkers:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "worker\thost\tpid\tstarted\tlast seen\trequests\trate/s\tstate")
		for _, lw := range f.Workers {
			state := "working"
			if lw.Silent {
				state = "silent: no heartbeat for a lease (died, or cut off from the ledger)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%.1f\t%s\n", lw.ID, lw.Host, lw.PID, shortTime(lw.StartedAt), shortTime(lw.LastSeen), lw.Requests, lw.Rate, state)
		}
		tw.Flush()
	}
}
