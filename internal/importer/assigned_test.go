package importer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestImport_RowsDeadInFlightAreHeldAtATargetThatAssignsIDs: rows a dead
// run left in flight, at a target known to assign its own ids, stay in
// doubt, unsent, with what to do in their message, until ResendInDoubt.
func TestImport_RowsDeadInFlightAreHeldAtATargetThatAssignsIDs(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{AssignIDs: true})
	l, err := ledger.Open(context.Background(), fx.ledgerPath, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.StartRun(t.Context(), ledger.RunInfo{Target: fx.target, SourceFile: "customers.csv"})
	if err != nil {
		t.Fatal(err)
	}
	key := "email:ana@example.com"
	if err := r.RecordAssignsIDs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.MarkInFlight(t.Context(), ledger.Send{Key: key, Email: "ana@example.com", Type: "INDIVIDUAL",
		CustomerID: importer.CustomerIDFor("ana@example.com"), SourceFile: "customers.csv", SourceLine: 2}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // the run dies with its row in flight
		t.Fatal(err)
	}

	data := "email,type\nana@example.com,INDIVIDUAL\nbeto@example.com,BUSINESS\n"
	sum, err := fx.importCSV(t, data, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.InDoubt != 1 || sum.Held != 1 || sum.Created != 1 || !sum.AssignsIDs || fx.srv.Stats().Requests != 1 {
		t.Errorf("import: %+v, held %d, assigns ids %v, %d requests; want ana held in doubt, beto created",
			sum.Counts, sum.Held, sum.AssignsIDs, fx.srv.Stats().Requests)
	}
	got := fx.ledgerRows(t)[key]
	if got.status != string(row.InDoubt) || !strings.Contains(got.message, "check ana@example.com in Ripio") {
		t.Errorf("ledger row %s = %+v; want in_doubt, telling to check ana in Ripio", key, got)
	}

	sum, err = fx.importCSV(t, data, runOpts{cfg: importer.Config{ResendInDoubt: true}})
	if err != nil || sum.Created != 1 || sum.Skipped != 1 || sum.Held != 0 {
		t.Errorf("import with ResendInDoubt: %+v, held %d, %v; want ana sent and created", sum.Counts, sum.Held, err)
	}
	if got := fx.ledgerRows(t)[key]; got.status != string(row.Created) || !strings.HasPrefix(got.returned, "srv-") {
		t.Errorf("ledger row %s = %+v; want created under the server's id", key, got)
	}
}
