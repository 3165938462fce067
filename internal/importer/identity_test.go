package importer_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// lineIssues reads the ledger's line issues: "file:line" -> reason.
func (fx *fixture) lineIssues(t *testing.T) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+fx.ledgerPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT source_file, source_line, reason FROM line_issues`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var file, reason string
		var line int
		if err := rows.Scan(&file, &line, &reason); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%s:%d", file, line)] = reason
	}
	return out
}

// TestImport_ACustomerIdNamesOnePerson: a customerId the ledger holds for
// one person, in doubt, is not taken by a corrected row with another email
// or type: that row is a conflict naming both lines, never sent, and the
// earlier row keeps its status and its person.
func TestImport_ACustomerIdNamesOnePerson(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, second string }{
		{"AnotherEmail", "customerId,email,type\nCUST-1,bob@example.com,INDIVIDUAL\n"},
		{"AnotherType", "customerId,email,type\nCUST-1,alice@example.com,BUSINESS\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Every create is stored and answered 500: the row stays in doubt.
			fx := newFixture(t, sandbox.Options{FailAfterCommit: 1})
			one := runOpts{cfg: importer.Config{MaxAttempts: 1, SourceFile: "old.csv"}}
			sum, err := fx.importCSV(t, "customerId,email,type\nCUST-1,alice@example.com,INDIVIDUAL\n", one)
			if err != nil || sum.InDoubt != 1 {
				t.Fatalf("first import: %+v, %v; want its row in doubt", sum.Counts, err)
			}
			before := fx.srv.Stats().Requests
			sum, err = fx.importCSV(t, tt.second, runOpts{cfg: importer.Config{MaxAttempts: 1, SourceFile: "new.csv"}})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Invalid != 1 || sum.Exists+sum.Created != 0 {
				t.Errorf("second import: %+v; want its row a conflict", sum.Counts)
			}
			if sent := fx.srv.Stats().Requests - before; sent != 0 {
				t.Errorf("second import sent %d requests, want 0", sent)
			}
			r := fx.ledgerRows(t)["id:CUST-1"]
			if r.status != string(row.InDoubt) {
				t.Errorf("ledger row id:CUST-1 = %+v; want it in_doubt still", r)
			}
			reason := fx.lineIssues(t)["new.csv:2"]
			if !strings.Contains(reason, "new.csv:2") || !strings.Contains(reason, "old.csv:2") {
				t.Errorf("line issue new.csv:2 = %q; want a conflict naming both lines", reason)
			}
		})
	}
}

// TestImport_AnEmailNamesOnePerson: rows with one email under different
// customerIds, in one batch, across batches or across runs, and in a dry
// run alike, send the first and refuse the others.
func TestImport_AnEmailNamesOnePerson(t *testing.T) {
	t.Parallel()
	filler := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "p-%d,u%d@example.com,INDIVIDUAL\n", i, i)
		}
		return b.String()
	}
	const head = "customerId,email,type\n"
	tests := []struct {
		name   string
		files  []string
		create int64 // created by the last run
	}{
		{"OneBatch", []string{head + "c1,ana@example.com,INDIVIDUAL\nc2,ANA@example.com,INDIVIDUAL\n"}, 1},
		{"AcrossBatches", []string{head + "c1,ana@example.com,INDIVIDUAL\n" + filler(300) + "c2,Ana@Example.com,INDIVIDUAL\n"}, 301},
		{"AcrossBatchesBackwards", []string{head + "c2,Ana@Example.com,INDIVIDUAL\n" + filler(300) + "c1,ana@example.com,INDIVIDUAL\n"}, 301},
		{"AcrossRuns", []string{head + "c1,ana@example.com,INDIVIDUAL\n", head + "c2,ANA@example.com,INDIVIDUAL\n"}, 0},
		{"AcrossRunsFolded", []string{head + "c1,straße@example.com,INDIVIDUAL\n", head + "c2,STRASSE@example.com,INDIVIDUAL\n"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, sandbox.Options{}) // the fake allows one email under two ids, as Ripio may
			var sum, dry importer.Summary
			for i, f := range tt.files {
				var err error
				if i == len(tt.files)-1 {
					if dry, err = fx.importCSV(t, f, runOpts{cfg: importer.Config{DryRun: true}}); err != nil {
						t.Fatal(err)
					}
				}
				if sum, err = fx.importCSV(t, f, runOpts{}); err != nil {
					t.Fatal(err)
				}
			}
			if sum.Created != tt.create || sum.Invalid != 1 || dry.Invalid != 1 {
				t.Errorf("last import: %+v; dry run: %+v; want %d created and the repeated person refused in both", sum.Counts, dry.Counts, tt.create)
			}
			if got, want := len(fx.srv.Customers()), int(max(tt.create, 1)); got != want {
				t.Errorf("server holds %d customers, want %d", got, want)
			}
		})
	}
}

// TestImport_EmailsOfAKeyAreComparedFolded: a customerId done for one
// spelling of an email is done for every spelling of that person.
func TestImport_EmailsOfAKeyAreComparedFolded(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	if sum, err := fx.importCSV(t, "customerId,email,type\nc1,straße@example.com,INDIVIDUAL\n", runOpts{}); err != nil || sum.Created != 1 {
		t.Fatalf("first import: %+v, %v", sum.Counts, err)
	}
	sum, err := fx.importCSV(t, "customerId,email,type\nc1,STRASSE@example.com,INDIVIDUAL\n", runOpts{})
	if err != nil || sum.Skipped != 1 || sum.Invalid != 0 {
		t.Errorf("second import: %+v, %v; want the row skipped, the same person", sum.Counts, err)
	}
}

// TestImport_SkipsARowAnOlderVersionKeyedByLowerCase: older versions keyed
// rows by strings.ToLower(email); a row they created, whose email folds
// otherwise now, is skipped, not sent again under a new customerId.
func TestImport_SkipsARowAnOlderVersionKeyedByLowerCase(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	l, err := ledger.Open(context.Background(), fx.ledgerPath, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.StartRun(t.Context(), ledger.RunInfo{Target: fx.target, SourceFile: "old.csv"})
	if err != nil {
		t.Fatal(err)
	}
	legacy := ledger.Send{Key: "email:straße@example.com", Email: "Straße@example.com", Type: "INDIVIDUAL",
		CustomerID: "old-derived-id", Fingerprint: "f", SourceFile: "old.csv", SourceLine: 2}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.MarkInFlight(t.Context(), legacy))
	must(r.Record(t.Context(), ledger.Outcome{Key: legacy.Key, Status: row.Created, CustomerID: legacy.CustomerID}))
	must(r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	must(l.Close())

	sum, err := fx.importCSV(t, "email,type\nStraße@example.com,INDIVIDUAL\n", runOpts{})
	if err != nil || sum.Skipped != 1 || fx.srv.Stats().Requests != 0 {
		t.Errorf("import: %+v, %v, %d requests; want the row skipped, nothing sent", sum.Counts, err, fx.srv.Stats().Requests)
	}
}
