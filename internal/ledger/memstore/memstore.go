// Package memstore is a store of import runs kept in memory: the ledger's
// behaviour (the same calls, the same rules of what a call records) with
// nothing durable. It passes the conformance suite of package storetest
// that the SQLite ledger passes, and serves tests that need a store without
// a file. A Store and its Runs are safe for concurrent use.
package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Store holds the rows and runs of every target. The zero value is not
// usable; call New.
type Store struct {
	mu      sync.Mutex
	targets map[string]*target
	nextRun int64
}

type target struct {
	rows   map[string]*keyed
	issues map[lineKey]*issue
	runs   []*runRecord // oldest first
	locked bool
	// assignsIDs: a run recorded that the target assigns its own ids.
	assignsIDs bool
	// keepsIDs: a run recorded that the target keeps the ids it is sent.
	keepsIDs bool
}

type keyed struct {
	ledger.Prior
	firstRun   int64
	httpStatus int
	errorCode  int
}

type lineKey struct {
	file string
	line int
}

type issue struct {
	ledger.LineIssue
	runID int64
}

type runRecord struct {
	ledger.RunRecord
	running bool
}

// New returns an empty store.
func New() *Store { return &Store{targets: map[string]*target{}} }

func (s *Store) target(name string) *target {
	t, ok := s.targets[name]
	if !ok {
		t = &target{rows: map[string]*keyed{}, issues: map[lineKey]*issue{}}
		s.targets[name] = t
	}
	return t
}

// Lookup returns what the store holds on target for each of keys it knows.
func (s *Store) Lookup(_ context.Context, target string, keys []string) (map[string]ledger.Prior, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ledger.Prior, len(keys))
	t := s.target(target)
	for _, k := range keys {
		if r, ok := t.rows[k]; ok {
			out[k] = r.Prior
		}
	}
	return out, nil
}

// LookupByEmail returns, for each of emails that a row holds as its
// FoldedEmail on target, that row; of several, the one whose customer most
// surely exists, as the ledger does.
func (s *Store) LookupByEmail(_ context.Context, target string, emails []string) (map[string]ledger.Prior, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]bool{}
	for _, e := range emails {
		want[e] = true
	}
	out := map[string]ledger.Prior{}
	for _, r := range s.target(target).rows {
		if r.FoldedEmail == "" || !want[r.FoldedEmail] {
			continue
		}
		if p, ok := out[r.FoldedEmail]; ok && existence(p.Status) >= existence(r.Status) {
			continue
		}
		out[r.FoldedEmail] = r.Prior
	}
	return out, nil
}

// AssignsIDs reports whether a run on target recorded that it assigns its
// own customer ids.
func (s *Store) AssignsIDs(_ context.Context, target string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target(target).assignsIDs, nil
}

// KeepsIDs reports whether a run on target recorded that it keeps the
// customer ids it is sent.
func (s *Store) KeepsIDs(_ context.Context, target string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target(target).keepsIDs, nil
}

func existence(s row.Status) int {
	switch {
	case s.Done():
		return 2
	case s.MayExist():
		return 1
	}
	return 0
}

// StartRun takes info.Target (ledger.ErrBusy when a run holds it), turns
// rows a dead run left in flight into in_doubt, marks such runs crashed,
// and records the new run.
func (s *Store) StartRun(_ context.Context, info ledger.RunInfo) (*Run, error) {
	opts, err := json.Marshal(info.Options)
	if err != nil {
		return nil, fmt.Errorf("memstore: start run: options: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.target(info.Target)
	if t.locked {
		return nil, fmt.Errorf("%w (memory)", ledger.ErrBusy)
	}
	t.locked = true
	r := &Run{s: s, t: t}
	for _, k := range t.rows {
		if k.Status == row.InFlight {
			k.Status, k.Message = row.InDoubt, "the run sending it ended before an answer came"
			r.Recovered++
		}
	}
	for _, rr := range t.runs {
		if rr.running {
			rr.running, rr.Outcome, rr.Counts = false, "crashed", t.countsOf(rr.ID)
		}
	}
	s.nextRun++
	r.ID = s.nextRun
	t.runs = append(t.runs, &runRecord{running: true, RunRecord: ledger.RunRecord{
		ID: r.ID, SourceFile: info.SourceFile, StartedAt: now(), Outcome: "running", Counts: map[string]int{}, Options: opts,
	}})
	return r, nil
}

// countsOf counts by status the rows a dead run wrote last.
func (t *target) countsOf(runID int64) map[string]int {
	c := map[string]int{}
	for _, k := range t.rows {
		if k.LastRun == runID {
			c[string(k.Status)]++
		}
	}
	for _, i := range t.issues {
		if i.runID == runID {
			c[string(i.Status)]++
		}
	}
	return c
}

// Close leaves every run not finished as a dead run would be: its rows in
// flight and its target free, so that the next StartRun recovers them. The
// store stays readable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.targets {
		t.locked = false
	}
	return nil
}

// Report counts the target's rows per status (in flight as in_doubt) and
// lists its last maxRuns runs, newest first.
func (s *Store) Report(_ context.Context, target string, maxRuns int) (ledger.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := ledger.Report{Target: target, Counts: map[row.Status]int{}, Runs: []ledger.RunRecord{}}
	for _, st := range row.Statuses {
		rep.Counts[st] = 0
	}
	t := s.target(target)
	for _, k := range t.rows {
		rep.Counts[reported(k.Status)]++
	}
	for _, i := range t.issues {
		rep.Counts[i.Status]++
	}
	rep.Rows = len(t.rows) + len(t.issues)
	for i := len(t.runs) - 1; i >= 0 && len(rep.Runs) < maxRuns; i-- {
		rr := t.runs[i].RunRecord
		rr.Counts = maps.Clone(rr.Counts)
		rep.Runs = append(rep.Runs, rr)
	}
	return rep, nil
}

func reported(s row.Status) row.Status {
	if s == row.InFlight {
		return row.InDoubt
	}
	return s
}

// Failures calls fn for every row of target whose status is in statuses
// (all not-done statuses when empty), ordered by file and line.
func (s *Store) Failures(_ context.Context, target string, statuses []row.Status, fn func(ledger.Failure) error) error {
	if len(statuses) == 0 {
		statuses = []row.Status{row.Invalid, row.Duplicate, row.Rejected, row.Failed, row.InDoubt}
	}
	s.mu.Lock()
	var fs []ledger.Failure
	t := s.target(target)
	for _, k := range t.rows {
		if slices.Contains(statuses, reported(k.Status)) {
			fs = append(fs, ledger.Failure{Email: k.Email, Type: k.Type, CustomerID: k.CustomerIDSent, Status: reported(k.Status),
				Reason: k.Message, SourceFile: k.SourceFile, SourceLine: k.SourceLine})
		}
	}
	for _, i := range t.issues {
		if slices.Contains(statuses, i.Status) {
			fs = append(fs, ledger.Failure{Email: i.Email, Type: i.Type, CustomerID: i.CustomerID, Status: i.Status,
				Reason: i.Reason, SourceFile: i.SourceFile, SourceLine: i.SourceLine})
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(fs, func(a, b ledger.Failure) int {
		return cmp.Or(cmp.Compare(a.SourceFile, b.SourceFile), cmp.Compare(a.SourceLine, b.SourceLine))
	})
	for _, f := range fs {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
