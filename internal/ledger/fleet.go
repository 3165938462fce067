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
	ID   int64
	Rows []Queued
}
