package row

import (
	"maps"
	"testing"
)

func TestStatus_DoneAndMayExist(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s              Status
		done, mayExist bool
	}{
		{Created, true, true}, {Exists, true, true}, {InDoubt, false, true}, {InFlight, false, true},
		{Failed, false, false}, {Rejected, false, false}, {Invalid, false, false}, {Duplicate, false, false},
	} {
		if got := tt.s.Done(); got != tt.done {
			t.Errorf("%s.Done() = %v, want %v", tt.s, got, tt.done)
		}
		if got := tt.s.MayExist(); got != tt.mayExist {
			t.Errorf("%s.MayExist() = %v, want %v", tt.s, got, tt.mayExist)
		}
	}
}

func TestCounts_RecordReadsBackAsItWasWritten(t *testing.T) {
	t.Parallel()
	c := Counts{Read: 20, Created: 3, Exists: 1, Skipped: 2, Invalid: 4, Duplicate: 1, Rejected: 1, Failed: 1, InDoubt: 2, Pending: 1}
	m := c.Record()
	want := map[string]int{"read": 20, "created": 3, "exists": 1, "skipped": 2, "invalid": 4, "duplicate": 1,
		"rejected": 1, "failed": 1, "in_doubt": 2, "pending": 1, "not_started": 4}
	if !maps.Equal(m, want) {
		t.Errorf("Record() = %v, want %v", m, want)
	}
	if got := CountsOf(m); got != c {
		t.Errorf("CountsOf(Record()) = %+v, want %+v", got, c)
	}
	if got := CountsOf(m); got.NotDone()+got.NotStarted() != 14 {
		t.Errorf("CountsOf(Record()): not done %d + not started %d, want 14", got.NotDone(), got.NotStarted())
	}
}

// TestCountsOf_ADeadRunsCountsByStatus: a run that died left counts by
// status only; the rows it read are the rows it took to a status.
func TestCountsOf_ADeadRunsCountsByStatus(t *testing.T) {
	t.Parallel()
	got := CountsOf(map[string]int{"created": 5, "in_doubt": 2, "invalid": 1})
	want := Counts{Read: 8, Created: 5, InDoubt: 2, Invalid: 1}
	if got != want || got.NotStarted() != 0 {
		t.Errorf("CountsOf(dead run) = %+v (not started %d), want %+v", got, got.NotStarted(), want)
	}
}
