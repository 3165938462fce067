package ledger

import "github.com/bulkcreate/bulkcreate/internal/row"

// The row states by their short names, for this package's tests.
type Status = row.Status

const (
	Created   = row.Created
	Exists    = row.Exists
	Invalid   = row.Invalid
	Duplicate = row.Duplicate
	Rejected  = row.Rejected
	Failed    = row.Failed
	InDoubt   = row.InDoubt
	InFlight  = row.InFlight
)
