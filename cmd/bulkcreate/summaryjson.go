package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
)

// runJSON is one import run, with the keys both --summary-json and each run
// of report --format json spell the same way. Counts use the ledger's
// names (read, created, exists, skipped, invalid, duplicate, rejected,
// failed, in_doubt, pending, not_started); all but read add up to read.
type runJSON struct {
	RunID     int64           `json:"runId,omitempty"` // the ledger's; none when no run was recorded
	Target    string          `json:"target"`
	File      string          `json:"file"`
	StartedAt string          `json:"startedAt"`
	EndedAt   string          `json:"endedAt,omitempty"`
	Outcome   string          `json:"outcome"` // completed, interrupted, aborted; in report also running, crashed
	Counts    map[string]int  `json:"counts"`
	Options   json.RawMessage `json:"options,omitempty"`
	StoppedBy string          `json:"stoppedBy,omitempty"` // report: why the fleet stopped the import (--max-errors)
}

// summaryJSON is --summary-json: what a scheduler needs to know of a run,
// written even when the run ends before reading a row.
type summaryJSON struct {
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
	runJSON
	Ledger            string   `json:"ledger"`
	DryRun            bool     `json:"dryRun,omitempty"`
	ToSend            int64    `json:"toSend,omitempty"`
	ToSendInDoubt     int64    `json:"toSendInDoubt,omitempty"`     // of toSend, rows in doubt sent only once the target is seen to keep ids
	Issues            []string `json:"issues,omitempty"`            // a dry run's first rows it would not send
	AssignsIDs        bool     `json:"assignsIds,omitempty"`        // the target assigns its own customer ids
	HeldInDoubt       int64    `json:"heldInDoubt,omitempty"`       // of in_doubt, rows not sent again for it
	KeepsIDs          bool     `json:"keepsIds,omitempty"`          // an answer showed the target keeps the customer ids sent
	HeldUntilIDsKnown int64    `json:"heldUntilIdsKnown,omitempty"` // of in_doubt, rows not sent again until that is known
	ProbeLine         int64    `json:"probeLine,omitempty"`         // the row in doubt sent alone to find out
	ProbeMayBeTwice   bool     `json:"probeMayBeTwice,omitempty"`   // its answer showed the target assigns its own ids
	Requests          int64    `json:"requests"`
	Throttled         int64    `json:"throttled"`
	ElapsedSeconds    float64  `json:"elapsedSeconds"`
	RequestsPerSecond float64  `json:"requestsPerSecond"`
	Reasons           []reason `json:"reasons"` // rows not done, grouped; most rows first
	// InputChanged says how the file changed while it was read (it was
	// still being written); the run then exits 1.
	InputChanged string `json:"inputChanged,omitempty"`
	// Input is how the file was read: its encoding and delimiter, and
	// whether the delimiter was given, named by a sep= line or detected.
	Input *importer.Format `json:"input,omitempty"`
}

// countsJSON names the counts as the ledger's run records do.
func countsJSON(c importer.Counts) map[string]int {
	return map[string]int{
		"read": int(c.Read), "created": int(c.Created), "exists": int(c.Exists), "skipped": int(c.Skipped),
		"invalid": int(c.Invalid), "duplicate": int(c.Duplicate), "rejected": int(c.Rejected),
		"failed": int(c.Failed), "in_doubt": int(c.InDoubt),
		"pending": int(c.Pending), "not_started": int(c.NotStarted()),
	}
}

// sourceName is the input as the ledger names it: "<stdin>" or an absolute path.
func sourceName(path string) string {
	switch path {
	case "":
		return ""
	case "-":
		return "<stdin>"
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// timeJSON is how times appear in JSON: the ledger's format, in UTC.
func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// summaryRecorder gathers an import's summary as the command learns it,
// and writes it however the command ends.
type summaryRecorder struct {
	path    string // "" for no --summary-json
	stderr  io.Writer
	started time.Time
	target  string
	file    string
	ledger  string
	sum     *importer.Summary // nil until the import ran
	run     finishedRun
	// inputChanged: the file changed while it was read (inputFile).
	inputChanged string
}

// start records where the summary goes, refusing a path it could not be
// written to.
func (r *summaryRecorder) start(path, ledgerPath string) error {
	if path == "" {
		return nil
	}
	if err := checkWritable(path); err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	r.path, r.ledger = path, ledgerPath
	return nil
}

// summaryPath is where the summary goes: path, or the file a symbolic link
// at path names, so that the rename replaces the file, not the link. inPlace
// is set for what exists and is not a regular file (/dev/stdout, a pipe):
// renaming over it would replace a device with a file, so it is written to.
func summaryPath(path string) (dest string, inPlace bool) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return path, false
	case !fi.Mode().IsRegular():
		return path, true
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p, false
	}
	return path, false
}

// checkWritable refuses a --summary-json path the summary could not be
// written to, before anything is sent: a run whose result is lost would
// leave a scheduler reading the previous run's.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory; want a file name", path)
	}
	dest, inPlace := summaryPath(path)
	if inPlace {
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	dir := filepath.Dir(dest)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".*.tmp")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name would only puzzle
		}
		return fmt.Errorf("%s: cannot create a file in %s: %w", path, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// write writes the summary of a command that ends with runErr, and returns
// the error the command ends with: runErr, or why the summary could not be
// written when the run itself went well.
func (r *summaryRecorder) write(runErr error) error {
	if r.path == "" {
		return runErr
	}
	out := summaryJSON{
		ExitCode: codeOf(runErr),
		runJSON: runJSON{
			RunID: r.run.ID, Target: r.target, File: sourceName(r.file),
			StartedAt: timeJSON(r.started), EndedAt: timeJSON(time.Now()),
			Outcome: "aborted", Counts: countsJSON(importer.Counts{}),
		},
		Ledger:       r.ledger,
		Reasons:      r.run.Reasons,
		InputChanged: r.inputChanged,
	}
	if runErr != nil && !errors.Is(runErr, errQuiet) {
		out.Error = runErr.Error()
	}
	if s := r.sum; s != nil {
		if s.Input.Encoding != "" {
			out.Input = &s.Input
		}
		out.Outcome = s.Outcome
		out.Counts = countsJSON(s.Counts)
		if s.DryRun {
			out.DryRun, out.ToSend, out.ToSendInDoubt, out.Issues = true, s.ToSend, s.ToSendInDoubt, s.Issues
		}
		out.Requests, out.Throttled = s.Requests, s.Throttled
		out.AssignsIDs, out.HeldInDoubt = s.AssignsIDs, s.Held
		out.KeepsIDs, out.HeldUntilIDsKnown = s.KeepsIDs, s.HeldUntilKnown
		out.ProbeLine, out.ProbeMayBeTwice = s.ProbeLine, s.ProbeTwice
		out.ElapsedSeconds, out.RequestsPerSecond = s.Elapsed.Seconds(), achievedRate(*s)
	}
	if out.Reasons == nil {
		out.Reasons = []reason{}
	}
	if err := writeFileAtomic(r.path, out); err != nil {
		err = fmt.Errorf("--summary-json: %w", err)
		if runErr == nil {
			return withCode(exitAborted, err)
		}
		fmt.Fprintln(r.stderr, "bulkcreate:", err)
	}
	return runErr
}

// writeFileAtomic writes v as JSON to a temporary file beside path, then
// renames it over path: a reader sees the old file or the new one, whole.
// What summaryPath says to write in place is written in place.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	path, inPlace := summaryPath(path)
	if inPlace {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return errors.Join(err, f.Close())
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, there is nothing left to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
