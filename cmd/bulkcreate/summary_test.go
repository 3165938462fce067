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

// TestPrintSummary_RowsInDoubtHeldSayWhatToDo: the summary's advice on
// rows in doubt not sent again follows what the run learned: no warning
// to check rows when none was held, the way to find out when no answer
// told, and the row sent alone to find out when its answer showed that
// the target assigns its own ids.
func TestPrintSummary_RowsInDoubtHeldSayWhatToDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		sum       importer.Summary
		want, not string
	}{
		{"assigns, none held", importer.Summary{Counts: importer.Counts{Read: 2, Created: 2}, Outcome: "completed", ReadAll: true, AssignsIDs: true},
			"note: this target assigns its own customer ids", "(0 in this run)"},
		{"unknown, nothing told", importer.Summary{Counts: importer.Counts{Read: 5, InDoubt: 5}, Outcome: "completed", ReadAll: true, HeldUntilKnown: 5},
			"run the same import again: with no new row to tell, it sends one of them alone to find out", "an answer since has shown"},
		{"unknown, since known", importer.Summary{Counts: importer.Counts{Read: 5, Created: 2, InDoubt: 3}, Outcome: "completed", ReadAll: true, HeldUntilKnown: 3, KeepsIDs: true},
			"an answer since has shown it keeps them: run the same import again to send them", "sends one of them alone"},
		{"probe found two", importer.Summary{Counts: importer.Counts{Read: 5, Created: 1, InDoubt: 4}, Outcome: "completed", ReadAll: true, AssignsIDs: true, Held: 4, ProbeLine: 2, ProbeTwice: true},
			"the row on line 2, in doubt, was sent again alone", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			printSummary(&b, tt.sum, 0, target{BaseURL: "http://127.0.0.1:1", ClientID: "c"}, "bulkcreate.db", nil)
			got := b.String()
			if !strings.Contains(got, tt.want) {
				t.Errorf("summary lacks %q:\n%s", tt.want, got)
			}
			if tt.not != "" && strings.Contains(got, tt.not) {
				t.Errorf("summary has %q:\n%s", tt.not, got)
			}
		})
	}
}

// TestPrintSummary_SafeToRunAgainOnlyWhenItIs: the hint to run again calls
// it safe unless rows are in doubt at a target no answer has shown to keep
// the ids sent, where the next run may send one alone to find out.
func TestPrintSummary_SafeToRunAgainOnlyWhenItIs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		sum  importer.Summary
		safe bool
	}{
		{"failed only", importer.Summary{Counts: importer.Counts{Read: 2, Created: 1, Failed: 1}, Outcome: "completed", ReadAll: true}, true},
		{"in doubt, keeps ids", importer.Summary{Counts: importer.Counts{Read: 2, Created: 1, InDoubt: 1}, Outcome: "completed", ReadAll: true, KeepsIDs: true}, true},
		{"in doubt, unknown", importer.Summary{Counts: importer.Counts{Read: 2, InDoubt: 2}, Outcome: "completed", ReadAll: true}, false},
	} {
		var b strings.Builder
		printSummary(&b, tt.sum, 0, target{BaseURL: "http://127.0.0.1:1", ClientID: "c"}, "bulkcreate.db", nil)
		if got := strings.Contains(b.String(), "safe: no customer is created twice"); got != tt.safe {
			t.Errorf("%s: summary calls running again safe: %v, want %v\n%s", tt.name, got, tt.safe, b.String())
		}
	}
}
