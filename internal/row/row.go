// Package row names what can become of a CSV row, for every package that
// speaks of it: the store records a row's Status, the importer decides and
// counts by it, the command prints it. Counts are a run's rows by what
// happened to them, recorded and read back in one way. The ledger's package
// doc draws how a row moves between the states.
package row

// Status is a row's state.
type Status string

// The row states.
const (
	Created   Status = "created"   // the server made the customer
	Exists    Status = "exists"    // the server already had it
	Invalid   Status = "invalid"   // failed local validation or conflicts with another row; never sent
	Duplicate Status = "duplicate" // repeats an earlier row of the same file; never sent
	Rejected  Status = "rejected"  // the server refused the row: permanent
	Failed    Status = "failed"    // retries ran out and nothing reached the server
	InDoubt   Status = "in_doubt"  // the server may have seen it; outcome unknown
	InFlight  Status = "in_flight" // a request is out (reported as in_doubt)
	// Queued: loaded by a fleet import, waiting for a worker (PostgreSQL
	// ledgers only). A lookup reports every row a fleet still owes work as
	// queued.
	Queued Status = "queued"
)

// Statuses lists the reported statuses in display order.
var Statuses = []Status{Created, Exists, Invalid, Duplicate, Rejected, Failed, InDoubt}

// Done reports whether a row in this state needs nothing more.
func (s Status) Done() bool { return s == Created || s == Exists }

// MayExist reports whether a row in this state created its customer or may
// have: done, sent without an answer, or queued to be sent.
func (s Status) MayExist() bool { return s.Done() || s.Doubtful() || s == Queued }

// Doubtful reports whether a request for the row may have reached the
// server with no answer known: in doubt, or in flight (in doubt once its
// run has ended).
func (s Status) Doubtful() bool { return s == InDoubt || s == InFlight }

// Counts are the rows of one run by what happened to them.
type Counts struct {
	Read      int64 `json:"read"`      // data rows read (blank lines not counted)
	Created   int64 `json:"created"`   // created by this run
	Exists    int64 `json:"exists"`    // the server already had them
	Skipped   int64 `json:"skipped"`   // done in an earlier run; nothing sent
	Invalid   int64 `json:"invalid"`   // failed validation (or conflicts with the ledger)
	Duplicate int64 `json:"duplicate"` // repeat an earlier row of the file
	Rejected  int64 `json:"rejected"`  // refused by the server (now or before, unchanged)
	Failed    int64 `json:"failed"`    // nothing reached the server after every attempt
	InDoubt   int64 `json:"inDoubt"`   // the server may have them; the next run finds out
	Pending   int64 `json:"pending"`   // planned but not finished when the run stopped
}

// NotStarted is the rows read that a stopped run never took to an
// outcome: the next run takes them as if new.
func (c Counts) NotStarted() int64 {
	return c.Read - c.Done() - c.NotDone()
}

// Done is every row that needs nothing more.
func (c Counts) Done() int64 { return c.Created + c.Exists + c.Skipped }

// NotDone is every row that is not created or existing.
func (c Counts) NotDone() int64 {
	return c.Invalid + c.Duplicate + c.Rejected + c.Failed + c.InDoubt + c.Pending
}

// The keys of a run's record of its counts that are not statuses.
const (
	keyRead       = "read"
	keySkipped    = "skipped"
	keyPending    = "pending"
	keyNotStarted = "not_started"
)

// Record is c as a store records a run's counts: by status name, with the
// rows not started.
func (c Counts) Record() map[string]int {
	return map[string]int{
		keyRead: int(c.Read), string(Created): int(c.Created), string(Exists): int(c.Exists), keySkipped: int(c.Skipped),
		string(Invalid): int(c.Invalid), string(Duplicate): int(c.Duplicate), string(Rejected): int(c.Rejected),
		string(Failed): int(c.Failed), string(InDoubt): int(c.InDoubt),
		keyPending: int(c.Pending), keyNotStarted: int(c.NotStarted()),
	}
}

// CountsOf reads counts back from a run's record: as Record writes it, or
// by status alone for a run that died, whose rows read are then the rows it
// took to a status.
func CountsOf(m map[string]int) Counts {
	c := Counts{
		Created: int64(m[string(Created)]), Exists: int64(m[string(Exists)]), Skipped: int64(m[keySkipped]),
		Invalid: int64(m[string(Invalid)]), Duplicate: int64(m[string(Duplicate)]), Rejected: int64(m[string(Rejected)]),
		Failed: int64(m[string(Failed)]), InDoubt: int64(m[string(InDoubt)]), Pending: int64(m[keyPending]),
	}
	if n, ok := m[keyRead]; ok {
		c.Read = int64(n)
	} else {
		c.Read = c.Done() + c.NotDone() + int64(m[keyNotStarted])
	}
	return c
}
