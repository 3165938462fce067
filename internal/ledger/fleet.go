package ledger

// Queued is a row a fleet import queued (a PostgreSQL ledger's fleet mode),
// as a worker claims it: its key, and what the ledger holds of it, which is
// the row's prior for Release.
type Queued struct {
	Key string
	Prior
}

// Chunk is a claimed chunk of queued rows: the rows of it still owed work.
type Chunk struct {
	ID    int64
	RunID int64 // the import that queued it
	Rows  []Queued
}

// RunLimit is a fleet import's error limit (its --max-errors, as recorded
// in its options) and whether the run was stopped for reaching it.
type RunLimit struct {
	// MaxErrors and MaxErrorRate are importer.Config's: 0 is no limit.
	MaxErrors    int
	MaxErrorRate float64
	// Stopped is why the run was stopped (StopRun); "" while it was not.
	Stopped string
}

// None reports whether the run has no error limit.
func (l RunLimit) None() bool { return l.MaxErrors <= 0 && l.MaxErrorRate <= 0 }
