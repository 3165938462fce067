package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// The samples an import leaves in the ledger tile its time and add up to
// its summary, and report --format html finds the run.
func TestImport_RecordsTheRunsTimeSeries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{RateLimit: 100, FailBeforeCommit: 0.05})
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range 150 {
		fmt.Fprintf(&csv, "row%d@example.com,BUSINESS\n", i)
	}
	writeFile(t, dir, "in.csv", csv.String())
	env["BULKCREATE_SAMPLE_EVERY"] = "100ms"
	// Exit 1 is a row left in doubt: a 503 that came before any answer
	// showed the target keeps our customerIds is not sent again this run.
	if r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "150", "--summary-json", "sum.json", "in.csv"); r.code != 0 && r.code != 1 {
		t.Fatalf("import = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum struct {
		Requests, Throttled int64
		Counts              struct{ Created, Read int64 }
	}
	b, err := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}

	l, err := ledger.Open(t.Context(), filepath.Join(dir, "bulkcreate.db"), ledger.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := l.Samples(t.Context(), 1)
	l.Close()
	if err != nil || len(samples) < 3 {
		t.Fatalf("Samples(run 1) = %d samples, %v; want 3 or more", len(samples), err)
	}
	var got ledger.Sample
	for i, s := range samples {
		if i > 0 && !s.At.Equal(samples[i-1].At.Add(samples[i-1].Span)) {
			t.Errorf("sample %d starts at %v, want %v (where the one before ends)", i, s.At, samples[i-1].At.Add(samples[i-1].Span))
		}
		if s.RateLimit <= 0 || s.RateLimit > 150 {
			t.Errorf("sample %d: rate limit %v, want in (0, 150]", i, s.RateLimit)
		}
		got.Requests += s.Requests
		got.Throttled += s.Throttled
		got.Created += s.Created
		got.Rows += s.Rows
	}
	if got.Requests != sum.Requests || got.Throttled != sum.Throttled || got.Created != sum.Counts.Created || got.Rows != sum.Counts.Read {
		t.Errorf("samples add up to %d requests, %d throttled, %d created, %d rows; summary says %d, %d, %d, %d read",
			got.Requests, got.Throttled, got.Created, got.Rows, sum.Requests, sum.Throttled, sum.Counts.Created, sum.Counts.Read)
	}

	r := runBin(t, dir, env, "", "report", "--format", "html", "--run", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "Run 1:") || !strings.Contains(r.stdout, `<path class="series sent"`) {
		t.Errorf("report --format html --run 1 = exit %d, page without run 1's chart\n%s", r.code, r.stderr)
	}
}

func TestReport_HTMLUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	if r := runBin(t, dir, env, "", "import", "--quiet", "in.csv"); r.code != 0 {
		t.Fatalf("import = exit %d\n%s", r.code, r.stderr)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"NoSuchRun", []string{"report", "--format", "html", "--run", "9"}, env, "no run 9 on target"},
		{"NoRunOnTarget", []string{"report", "--format", "html"}, nil, "no run on target embedded-sandbox yet"},
		{"NoLedger", []string{"report", "--format", "html", "--ledger", "none.db"}, env, "no ledger file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, dir, tt.env, "", tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("bulkcreate %v = exit %d, stdout %d bytes, stderr %q; want exit 2, nothing on stdout and %q", tt.args, r.code, len(r.stdout), r.stderr, tt.want)
			}
		})
	}
}

// A run killed midway keeps the samples taken until shortly before it died,
// and its report draws them.
func TestImport_KilledRunKeepsItsTimeSeries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	data, _ := genRows(2000)
	writeFile(t, dir, "in.csv", data)
	env["BULKCREATE_SAMPLE_EVERY"] = "100ms"
	cmd, _, _ := startBin(t, dir, env, "import", "--quiet", "--rps", "100", "in.csv")
	// The import needs 20 s: kill it once it has written a few samples.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "bulkcreate.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM run_samples`).Scan(&n); err == nil && n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("no 5 samples in the ledger after 15 s of importing")
		}
	}
	cmd.Process.Kill()
	cmd.Wait()

	l, err := ledger.Open(t.Context(), filepath.Join(dir, "bulkcreate.db"), ledger.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := l.Samples(t.Context(), 1)
	l.Close()
	if err != nil || len(samples) < 5 {
		t.Fatalf("Samples(run 1) after a kill = %d samples, %v; want 5 or more", len(samples), err)
	}
	if r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "0", "in.csv"); r.code != 0 {
		t.Fatalf("import after the kill = exit %d\n%s", r.code, r.stderr)
	}
	r := runBin(t, dir, env, "", "report", "--format", "html", "--run", "1")
	if r.code != 0 || !strings.Contains(r.stdout, `<span class="outcome crashed">crashed</span>`) ||
		strings.Count(r.stdout, `<path class="series sent"`) != 2 {
		t.Errorf("report --format html --run 1 of the killed run = exit %d, without its outcome or chart\n%s", r.code, r.stderr)
	}
}
