package main

import (
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
)

// TestPrintSummary_NextSteps: the hint counts what is left, including a
// file the run stopped reading.
func TestPrintSummary_NextSteps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sum   importer.Summary
		cause error
		want  string // "" for no "unfinished" hint
	}{
		{"all done", importer.Summary{Counts: importer.Counts{Read: 3, Created: 3}, Outcome: "completed", ReadAll: true}, nil, ""},
		{"in doubt", importer.Summary{Counts: importer.Counts{Read: 3, Created: 2, InDoubt: 1}, Outcome: "completed", ReadAll: true}, nil,
			"next: 1 row unfinished: run the same import again"},
		{"stopped reading", importer.Summary{Counts: importer.Counts{Read: 824, Created: 800, Pending: 24}, Outcome: "interrupted"}, nil,
			"next: 24 rows unfinished and the rest of the file not read: run the same import again"},
		{"stopped before a row", importer.Summary{Outcome: "interrupted"}, nil,
			"next: the rest of the file not read: run the same import again"},
		{"aborted", importer.Summary{Counts: importer.Counts{Read: 10, Created: 4}, Outcome: "aborted"}, importer.ErrTooManyErrors,
			"stopped by: error limit reached\n"},
		{"aborted, next", importer.Summary{Counts: importer.Counts{Read: 10, Created: 4}, Outcome: "aborted"}, importer.ErrTooManyErrors,
			"next: 6 rows unfinished and the rest of the file not read: fix what stopped the run (above), then run the same import again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			printSummary(&b, tt.sum, 0, target{BaseURL: "http://127.0.0.1:1", ClientID: "c"}, "bulkcreate.db", tt.cause)
			got := b.String()
			if tt.want == "" && strings.Contains(got, "unfinished") {
				t.Errorf("summary has an unfinished hint:\n%s", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("summary lacks %q:\n%s", tt.want, got)
			}
		})
	}
}

func TestPrintSummary_DryRunListsWhyRowsWouldNotBeSent(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	sum := importer.Summary{DryRun: true, Counts: importer.Counts{Read: 30, Invalid: 25}, ToSend: 5,
		Issues: []string{"f.csv:2: email: is empty", "f.csv:3: type: is empty"}}
	printSummary(&b, sum, 0, target{BaseURL: "http://127.0.0.1:1", ClientID: "c"}, "bulkcreate.db", nil)
	if got := b.String(); !strings.Contains(got, "rows not to be sent (the first 2 of 25):\n  f.csv:2: email: is empty\n  f.csv:3: type: is empty\n") {
		t.Errorf("dry-run summary lacks the reasons:\n%s", got)
	}
}
