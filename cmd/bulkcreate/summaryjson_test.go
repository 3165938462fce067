package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// summaryFile is --summary-json as a scheduler reads it.
type summaryFile struct {
	ExitCode  int            `json:"exitCode"`
	Error     string         `json:"error"`
	RunID     int64          `json:"runId"`
	Target    string         `json:"target"`
	File      string         `json:"file"`
	StartedAt string         `json:"startedAt"`
	EndedAt   string         `json:"endedAt"`
	Outcome   string         `json:"outcome"`
	Counts    map[string]int `json:"counts"`
	Reasons   []reason       `json:"reasons"`
}

func readSummary(t *testing.T, path string) summaryFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s summaryFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, b)
	}
	return s
}

// checkAddsUp checks the counts of a summary add up to the rows read.
func checkAddsUp(t *testing.T, s summaryFile) {
	t.Helper()
	sum := 0
	for k, n := range s.Counts {
		if k != "read" {
			sum += n
		}
	}
	if sum != s.Counts["read"] {
		t.Errorf("summary counts %v add up to %d, want read = %d", s.Counts, sum, s.Counts["read"])
	}
}

// refusingServer is the sandbox, but refusing every create of a BUSINESS
// customer as a server with rules of its own would: 400, the row rejected.
func refusingServer(t *testing.T) (*sandbox.Server, map[string]string) {
	t.Helper()
	srv, env := newServer(t, sandbox.Options{})
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.URL.Path == "/api/v1/customers/" && bytes.Contains(body, []byte(`"BUSINESS"`)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"code":20000,"type":"ValidationError","status":400,"detail":{"message":"business customers are not enabled for this client"}}`+"\n")
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	env["RIPIO_BASE_URL"] = hs.URL
	return srv, env
}

func TestCLI_SummaryJSONCarriesTheRunAndItsReasons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := refusingServer(t)
	writeFile(t, dir, "in.csv", "email,type\na@example.com,BUSINESS\nb@example.com,BUSINESS\nc@example.com,BUSINESS\n,INDIVIDUAL\nd@example.com,INDIVIDUAL\n")
	before := time.Now().UTC()
	r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "0", "--summary-json", "sum.json", "in.csv")
	if r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	s := readSummary(t, filepath.Join(dir, "sum.json"))
	if s.ExitCode != 1 || s.RunID != 1 || s.Outcome != "completed" || s.File != filepath.Join(dir, "in.csv") ||
		!strings.Contains(s.Target, env["RIPIO_BASE_URL"]) || s.Error != "" {
		t.Errorf("summary JSON = %+v, want exit 1, run 1, completed, in.csv, the server as target, no error", s)
	}
	for _, ts := range []string{s.StartedAt, s.EndedAt} {
		if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || tm.Before(before.Add(-time.Second)) {
			t.Errorf("summary JSON time %q: %v, want RFC 3339 after %v", ts, err, before)
		}
	}
	if s.Counts["read"] != 5 || s.Counts["rejected"] != 3 || s.Counts["invalid"] != 1 || s.Counts["created"] != 1 {
		t.Errorf("summary JSON counts = %v, want 5 read, 3 rejected, 1 invalid, 1 created", s.Counts)
	}
	checkAddsUp(t, s)
	if len(s.Reasons) != 2 || s.Reasons[0].Status != "rejected" || s.Reasons[0].Count != 3 ||
		!strings.Contains(s.Reasons[0].Reason, "business customers are not enabled") ||
		s.Reasons[1] != (reason{Status: "invalid", Reason: "email: is empty", Count: 1}) {
		t.Errorf("summary JSON reasons = %+v, want 3 rejected, then 1 invalid", s.Reasons)
	}

	// The text summary ends with the same reasons.
	r = runBin(t, dir, env, "", "import", "--rps", "0", "--ledger", "other.db", "in.csv")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 3 || lines[len(lines)-3] != "why rows were not done:" ||
		!strings.HasPrefix(lines[len(lines)-2], "  3 rejected: ") || !strings.Contains(lines[len(lines)-2], "business customers are not enabled") ||
		lines[len(lines)-1] != "  1 invalid: email: is empty" {
		t.Errorf("text summary does not end with the reasons:\n%s", r.stdout)
	}
}

func TestCLI_SummaryJSONWrittenWhenTheRunFailsEarly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "ok.csv", "email,type\na@example.com,INDIVIDUAL\n")
	writeFile(t, dir, "noheader.csv", "name,phone\nx,1\n")
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantError string
	}{
		{"MissingFile", nil, []string{"nope.csv"}, "nope.csv: no such file"},
		{"NoClientID", map[string]string{"RIPIO_BASE_URL": "sandbox"}, []string{"ok.csv"}, "RIPIO_CLIENT_ID is not"},
		{"BadFlagValue", nil, []string{"--rps", "-1", "ok.csv"}, "--rps -1"},
		{"NoHeader", nil, []string{"noheader.csv"}, "no email or type column"},
		{"UnknownFlag", nil, []string{"--frob", "ok.csv"}, "flag provided but not defined: -frob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := tt.name + ".json"
			// An old summary is replaced, not left for a scheduler to misread.
			writeFile(t, dir, out, `{"exitCode": 0}`)
			args := append([]string{"import", "--ledger", tt.name + ".db", "--summary-json", out}, tt.args...)
			r := runBin(t, dir, tt.env, "", args...)
			if r.code != 2 {
				t.Fatalf("bulkcreate %v = exit %d, want 2\n%s", args, r.code, r.stderr)
			}
			s := readSummary(t, filepath.Join(dir, out))
			if s.ExitCode != 2 || !strings.Contains(s.Error, tt.wantError) || s.StartedAt == "" || s.EndedAt == "" || s.Counts == nil {
				t.Errorf("summary JSON = %+v, want exit 2, an error naming %q, times and counts", s, tt.wantError)
			}
			checkAddsUp(t, s)
		})
	}
}

func TestCLI_SummaryJSONUnwritableIsAUsageError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "ok.csv", "email,type\na@example.com,INDIVIDUAL\n")
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"missing/sum.json", "adir", "ok.csv/sum.json"} {
		r := runBin(t, dir, env, "", "import", "--summary-json", path, "ok.csv")
		if r.code != 2 || !strings.Contains(r.stderr, "--summary-json: "+path) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("import --summary-json %s = exit %d, stderr %q; want 2 and one line naming it", path, r.code, r.stderr)
		}
	}
	if st := srv.Stats(); st.Requests+st.TokenRequests != 0 {
		t.Errorf("server got %d creates and %d token requests, want none", st.Requests, st.TokenRequests)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".db") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestGroupReasons_MostRowsFirstAndShort(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	got := groupReasons([]reason{
		{"failed", "dial tcp: connection refused", 2},
		{"invalid", "email: is empty", 1},
		{"failed", "dial tcp:  connection\nrefused", 5}, // the same once on one line
		{"rejected", long + "a", 1},
		{"rejected", long + "b", 1}, // differ past the cut: one reason
	})
	want := []reason{
		{"failed", "dial tcp: connection refused", 7},
		{"rejected", strings.Repeat("x", maxReasonLen-1) + "…", 2},
		{"invalid", "email: is empty", 1},
	}
	if len(got) != len(want) {
		t.Fatalf("groupReasons = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("groupReasons[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestCLI_SummaryJSONKeepsLinksAndDevices: the rename replaces the file a
// link names, not the link; a device such as /dev/stdout is written to,
// never replaced.
func TestCLI_SummaryJSONKeepsLinksAndDevices(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "ok.csv", "email,type\na@example.com,INDIVIDUAL\n")
	writeFile(t, dir, "real.json", "{}")
	if err := os.Symlink("real.json", filepath.Join(dir, "link.json")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	if r := runBin(t, dir, nil, "", "import", "--quiet", "--summary-json", "link.json", "ok.csv"); r.code != 0 {
		t.Fatalf("import --summary-json link.json: exit %d\n%s", r.code, r.stderr)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "link.json")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link.json is no longer a link: %v, %v", fi, err)
	}
	if s := readSummary(t, filepath.Join(dir, "real.json")); s.ExitCode != 0 || s.Counts["created"] != 1 {
		t.Errorf("real.json = %+v, want the run's summary", s)
	}

	r := runBin(t, dir, nil, "", "import", "--quiet", "--ledger", "other.db", "--summary-json", "/dev/stdout", "ok.csv")
	if r.code != 0 || !strings.Contains(r.stdout, `"exitCode": 0`) {
		t.Errorf("import --summary-json /dev/stdout: exit %d, stdout lacks the summary:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat("/dev/stdout"); err != nil || fi.Mode().IsRegular() {
		t.Errorf("/dev/stdout is now a regular file: %v, %v", fi, err)
	}
}

func TestPrintReasons_TopFiveThenTheRest(t *testing.T) {
	t.Parallel()
	var rs []reason
	for i := range 7 {
		rs = append(rs, reason{Status: "in_doubt", Reason: fmt.Sprintf("reason %d", i), Count: int64(10 - i)})
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, ""},
		{1, "why rows were not done:\n  10 in doubt: reason 0\n"},
		{6, "why rows were not done:\n  10 in doubt: reason 0\n  9 in doubt: reason 1\n  8 in doubt: reason 2\n  7 in doubt: reason 3\n  6 in doubt: reason 4\n  5 in doubt: reason 5\n"},
		{7, "why rows were not done:\n  10 in doubt: reason 0\n  9 in doubt: reason 1\n  8 in doubt: reason 2\n  7 in doubt: reason 3\n  6 in doubt: reason 4\n  … and 9 rows for 2 other reasons\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		printReasons(&b, rs[:tt.n])
		if b.String() != tt.want {
			t.Errorf("printReasons(%d reasons) =\n%s\nwant\n%s", tt.n, b.String(), tt.want)
		}
	}
}
