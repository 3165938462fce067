package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// binPath is the command built once for the tests that drive it as a user would.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulkcreate-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "bulkcreate")
	out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// runBin runs the built command in dir with env (and nothing of the
// test's own environment but PATH and HOME).
func runBin(t *testing.T, dir string, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func newServer(t *testing.T, opts sandbox.Options) (*sandbox.Server, map[string]string) {
	t.Helper()
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, map[string]string{
		"RIPIO_BASE_URL": srv.URL(), "RIPIO_CLIENT_ID": srv.ClientID(), "RIPIO_CLIENT_SECRET": srv.ClientSecret(),
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLI_HelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "ok.csv", "email,type\na@example.com,INDIVIDUAL\n")
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "theirs.csv", "Kind;E-mail, Address;Email\nINDIVIDUAL;a@example.com;old@example.com\n")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string // in stdout+stderr
	}{
		{"MainHelp", []string{"--help"}, nil, 0, "Exit codes:"},
		{"NoCommand", nil, nil, 2, "no command given"},
		{"UnknownCommand", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"ImportHelp", []string{"import", "--help"}, nil, 0, "bulkcreate import --dry-run big.csv"},
		{"ReportHelp", []string{"report", "-h"}, nil, 0, "bulkcreate report --format json"},
		{"FailuresHelp", []string{"failures", "--help"}, nil, 0, "bulkcreate failures > fix.csv"},
		{"SandboxHelp", []string{"sandbox", "--help"}, nil, 0, "--rate-limit"},
		{"Version", []string{"version"}, nil, 0, "bulkcreate dev"},
		{"UnknownFlag", []string{"import", "--frob", "ok.csv"}, nil, 2, "flag provided but not defined: -frob"},
		{"MissingFile", []string{"import", "nope.csv"}, nil, 2, "nope.csv: no such file"},
		{"NoFile", []string{"import"}, nil, 2, "want one FILE"},
		{"BadRPS", []string{"import", "--rps", "-1", "ok.csv"}, nil, 2, "--rps -1"},
		{"BadMaxErrors", []string{"import", "--max-errors", "lots", "ok.csv"}, nil, 2, `--max-errors "lots"`},
		{"BadDelimiter", []string{"import", "--delimiter", "ab", "ok.csv"}, nil, 2, `--delimiter "ab"`},
		{"BadMap", []string{"import", "--map", "mail=Correo", "ok.csv"}, nil, 2, `"mail=Correo": want our=theirs pairs`},
		{"MapColumns", []string{"import", "--dry-run", "--map", `email="E-mail, Address",type=Kind`, "theirs.csv"}, nil, 0, "to send  1"},
		{"MapMissingColumn", []string{"import", "--dry-run", "--map", "email=Correo", "theirs.csv"}, nil, 2, `no column "Correo" to take as email`},
		{"BadMaxLineBytes", []string{"import", "--max-line-bytes", "0", "ok.csv"}, nil, 2, "--max-line-bytes 0"},
		{"BadLogFormat", []string{"import", "--log-format", "xml", "ok.csv"}, nil, 2, `--log-format "xml"`},
		{"ClientIDMissing", []string{"import", "ok.csv"}, map[string]string{"RIPIO_BASE_URL": "sandbox"}, 2, "RIPIO_CLIENT_ID is not"},
		{"SecretMissing", []string{"import", "ok.csv"}, map[string]string{"RIPIO_BASE_URL": "sandbox", "RIPIO_CLIENT_ID": "x"}, 2, "no client secret"},
		{"PlainHTTPRemote", []string{"import", "ok.csv"}, map[string]string{"RIPIO_BASE_URL": "http://example.com", "RIPIO_CLIENT_ID": "x", "RIPIO_CLIENT_SECRET": "s3cr3t-value"}, 2, "plain http is allowed only for loopback"},
		{"ReportMissingLedger", []string{"report", "--ledger", "missing.db"}, nil, 2, "no ledger file"},
		{"FailuresBadStatus", []string{"failures", "--status", "created"}, nil, 2, `--status "created"`},
		{"FlagAfterFile", []string{"import", "ok.csv", "--dry-run"}, nil, 0, "dry run: nothing sent"},
		{"UnknownBaseURL", []string{"import", "ok.csv"}, map[string]string{"RIPIO_BASE_URL": "sandbx", "RIPIO_CLIENT_ID": "x"}, 2, "want sandbox, production or an https:// URL"},
		{"DirectoryAsFile", []string{"import", "adir"}, nil, 2, "adir is a directory; want a CSV file"},
		{"ProgressEveryZero", []string{"import", "--progress-every", "0", "ok.csv"}, nil, 2, "--progress-every 0s: want 100ms or more"},
		{"ProgressEveryNegative", []string{"import", "--progress-every", "-1s", "ok.csv"}, nil, 2, "--progress-every -1s"},
		{"ProgressEveryFlood", []string{"import", "--progress-every", "1ns", "ok.csv"}, nil, 2, "--progress-every 1ns"},
		{"DelimiterLetter", []string{"import", "--delimiter", "a", "ok.csv"}, nil, 2, `--delimiter "a": want one punctuation character`},
		{"DelimiterNotUTF8", []string{"import", "--delimiter", "\xff", "ok.csv"}, nil, 2, `--delimiter "\xff"`},
		{"DelimiterReplacementChar", []string{"import", "--dry-run", "--delimiter", "\ufffd", "ok.csv"}, nil, 2, "--delimiter \"\ufffd\""},
		{"EmptyLedger", []string{"import", "--ledger", "", "ok.csv"}, nil, 2, "--ledger: want a file name"},
		{"SandboxOffLoopback", []string{"sandbox", "--addr", "0.0.0.0:0"}, nil, 2, "it listens on every interface"},
		{"SampleBadPrefix", []string{"sample", "--prefix", "a,b", "--rows", "1"}, nil, 2, `--prefix "a,b"`},
		{"ReportNegativeRuns", []string{"report", "--runs", "-1"}, nil, 2, "--runs -1: want 0 or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, dir, tt.env, "", tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stdout+r.stderr, tt.wantOut) {
				t.Errorf("bulkcreate %v = exit %d, output:\n%s%s\nwant exit %d and %q", tt.args, r.code, r.stdout, r.stderr, tt.wantCode, tt.wantOut)
			}
			if strings.Contains(tt.name, "Help") && !strings.Contains(r.stdout, tt.wantOut) {
				t.Errorf("bulkcreate %v: help went to stderr, want stdout", tt.args)
			}
			if tt.wantCode == 2 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("bulkcreate %v: usage error is %d lines, want one:\n%s", tt.args, strings.Count(r.stderr, "\n"), r.stderr)
			}
			if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stdout, "error above") {
				t.Errorf("bulkcreate %v panicked or pointed at an error above:\n%s%s", tt.args, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "s3cr3t-value") {
				t.Errorf("bulkcreate %v printed the client secret", tt.args)
			}
		})
	}
}

func TestCLI_EmbeddedSandboxImportThenRerun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sample, err := os.ReadFile("../../samples/customers.csv")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "customers.csv", string(sample))
	r := runBin(t, dir, nil, "", "import", "--rps", "0", "customers.csv")
	if r.code != 0 || !strings.Contains(r.stderr, "no RIPIO_BASE_URL: using the embedded sandbox; nothing leaves this machine") {
		t.Fatalf("first import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "created  50") {
		t.Errorf("first import summary lacks 50 created:\n%s", r.stdout)
	}
	// Lose the ledger: the sandbox remembers its customers, like Ripio would.
	os.Remove(filepath.Join(dir, "bulkcreate.db"))
	r = runBin(t, dir, nil, "", "import", "--rps", "0", "customers.csv")
	if r.code != 0 || !strings.Contains(r.stdout, "exists  50") {
		t.Errorf("import with a lost ledger: exit %d, want 0 and 50 exists:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestCLI_DryRunSendsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\nb@example.com,BUSINESS\nbad,INDIVIDUAL\na@example.com,INDIVIDUAL\n")
	delete(env, "RIPIO_CLIENT_SECRET") // a dry run needs no secret
	r := runBin(t, dir, env, "", "import", "--dry-run", "--rps", "10", "in.csv")
	if r.code != 1 {
		t.Errorf("dry run exit = %d, want 1 (rows would not be created)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"dry run: nothing sent", "to send  2", "invalid  1", "duplicate  1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if st := srv.Stats(); st.Requests+st.TokenRequests != 0 {
		t.Errorf("dry run sent %d creates and %d token requests, want 0", st.Requests, st.TokenRequests)
	}
	if _, err := os.Stat(filepath.Join(dir, "bulkcreate.db")); err == nil {
		t.Error("dry run created a ledger file")
	}
	// Against a ledger that knows a row, the plan skips it.
	if r := runBin(t, dir, map[string]string{"RIPIO_BASE_URL": env["RIPIO_BASE_URL"], "RIPIO_CLIENT_ID": env["RIPIO_CLIENT_ID"], "RIPIO_CLIENT_SECRET": srv.ClientSecret()},
		"email,type\na@example.com,INDIVIDUAL\n", "import", "-"); r.code != 0 {
		t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
	}
	r = runBin(t, dir, env, "", "import", "--dry-run", "in.csv")
	if !strings.Contains(r.stdout, "to send  1") || !strings.Contains(r.stdout, "skip (done before)  1") {
		t.Errorf("dry run after importing one row:\n%s", r.stdout)
	}
}

func TestCLI_SummaryJSONAndExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\nb@example.com,BUSINESS\nnot-an-email,INDIVIDUAL\n")
	r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "0", "--summary-json", "sum.json", "in.csv")
	if r.code != 1 {
		t.Fatalf("import with an invalid row: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, b)
	}
	counts, _ := sum["counts"].(map[string]any)
	for k, want := range map[string]float64{"read": 3, "created": 2, "invalid": 1} {
		if got, _ := counts[k].(float64); got != want {
			t.Errorf("summary JSON counts.%s = %v, want %v", k, counts[k], want)
		}
	}
	if got, _ := sum["requests"].(float64); got != 2 {
		t.Errorf("summary JSON requests = %v, want 2", sum["requests"])
	}
	if sum["outcome"] != "completed" || !strings.Contains(sum["target"].(string), "client=sandbox-client") {
		t.Errorf("summary JSON outcome/target = %v/%v", sum["outcome"], sum["target"])
	}

	bad := map[string]string{}
	for k, v := range env {
		bad[k] = v
	}
	bad["RIPIO_CLIENT_SECRET"] = "wrong-s3cr3t"
	writeFile(t, dir, "more.csv", "email,type\nc@example.com,INDIVIDUAL\n")
	r = runBin(t, dir, bad, "", "import", "--ledger", "other.db", "more.csv")
	if r.code != 3 || strings.Contains(r.stdout+r.stderr, "wrong-s3cr3t") {
		t.Errorf("import with a wrong secret: exit %d, want 3 and no secret in output:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The summary on stdout names the cause itself: the error line goes to
	// stderr, which a log may interleave anywhere.
	if !strings.Contains(r.stdout, "stopped by: the server refused the credentials") || strings.Contains(r.stdout, "error above") {
		t.Errorf("summary of an aborted run does not name its cause:\n%s", r.stdout)
	}
}

func TestCLI_FailuresFileFixedAndFedBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\nbeto@example,BUSINESS\ncarla@example.com,PERSON\n")
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv"); r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := runBin(t, dir, env, "", "failures")
	if r.code != 0 {
		t.Fatalf("failures: exit %d\n%s", r.code, r.stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("failures output is not CSV: %v\n%s", err, r.stdout)
	}
	if len(recs) != 3 || strings.Join(recs[0][:6], ",") != "email,type,customerId,status,reason,line" {
		t.Fatalf("failures CSV = %q, want a header and 2 rows", recs)
	}
	// The operator fixes both rows in the failures file and imports it.
	fixed := strings.NewReplacer("beto@example,", "beto@example.com,", ",PERSON,", ",INDIVIDUAL,").Replace(r.stdout)
	writeFile(t, dir, "fix.csv", fixed)
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "fix.csv"); r.code != 0 {
		t.Fatalf("import fix.csv: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(srv.Customers()); n != 3 {
		t.Errorf("server customers = %d, want 3", n)
	}
	r = runBin(t, dir, env, "", "report", "--format", "json")
	var rep struct {
		Rows   int            `json:"rows"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report json: %v\n%s", err, r.stdout)
	}
	if rep.Rows != 3 || rep.Counts["created"] != 3 || rep.Counts["invalid"] != 0 {
		t.Errorf("report after the fix = %+v, want 3 rows, all created", rep)
	}
	for _, s := range []string{"created", "exists", "invalid", "duplicate", "rejected", "failed", "in_doubt"} {
		if _, ok := rep.Counts[s]; !ok {
			t.Errorf("report json lacks status %q", s)
		}
	}
}

func TestRun_InProcessVersion(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"version"}, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err != nil || !strings.HasPrefix(out.String(), "bulkcreate dev\n") {
		t.Errorf("run(version) = %v, %q; want nil, %q first", err, out.String(), "bulkcreate dev\n")
	}
}

func TestMarkAheadAndConcurrencyFollowTheRate(t *testing.T) {
	tests := []struct {
		rps             float64
		wantMarkAhead   int
		wantConcurrency int
	}{
		{0, 256, 32}, // no limit: the ledger's best batch
		{1, 1, 4},
		{20, 10, 4}, // the default --rps: half a second of rows a write
		{200, 100, 40},
		{5000, 256, 256},
	}
	for _, tt := range tests {
		if got := markAhead(tt.rps); got != tt.wantMarkAhead {
			t.Errorf("markAhead(%v) = %d, want %d", tt.rps, got, tt.wantMarkAhead)
		}
		if got := defaultConcurrency(tt.rps); got != tt.wantConcurrency {
			t.Errorf("defaultConcurrency(%v) = %d, want %d", tt.rps, got, tt.wantConcurrency)
		}
	}
}

// TestCLI_FailuresFileIsSpreadsheetSafeAndReadsBack: cells that a
// spreadsheet would run as formulas are written with a leading
// apostrophe, and importing the failures file gets the original values.
func TestCLI_FailuresFileIsSpreadsheetSafeAndReadsBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type,customerId\n"+
		"=1+1@example.com,@SUM(A1),-2+3\n"+
		"-x@example.com,=TYPE,'=own\n")
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv"); r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := runBin(t, dir, env, "", "failures")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(recs) != 3 {
		t.Fatalf("failures: exit %d, %v, %q; want 2 rows", r.code, err, recs)
	}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
				t.Errorf("failures cell %q begins like a formula", cell)
			}
		}
	}
	if got := strings.Join(recs[1][:3], " "); got != "'=1+1@example.com '@SUM(A1) '-2+3" {
		t.Errorf("failures row = %q, want the formula-like cells behind an apostrophe", got)
	}
	if got := recs[2][2]; got != "''=own" {
		t.Errorf("failures customerId = %q, want ''=own: the value's own apostrophe kept", got)
	}
	// The operator corrects the types and imports the file as it is.
	fixed := strings.NewReplacer("'@SUM(A1)", "INDIVIDUAL", "'=TYPE", "BUSINESS").Replace(r.stdout)
	writeFile(t, dir, "fix.csv", fixed)
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "fix.csv"); r.code != 0 {
		t.Fatalf("import fix.csv: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	got := map[string]string{}
	for _, c := range srv.Customers() {
		got[c.Email] = c.CustomerID
	}
	if got["=1+1@example.com"] != "-2+3" || got["-x@example.com"] != "'=own" || len(got) != 2 {
		t.Errorf("server customers = %v, want =1+1@example.com as -2+3 and -x@example.com as '=own", got)
	}
}

// TestCLI_StaleFixFileLeavesANewIssueAtItsLine: the original file is edited
// between runs, so that the line a failures file named now holds another bad
// row, recorded as a new issue. Importing the old fix file must not clear
// that new issue: a fixed row replaces only the issue the failures file
// named, by content, not merely the one at its file and line.
func TestCLI_StaleFixFileLeavesANewIssueAtItsLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\nbeto@example,BUSINESS\n")
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv"); r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := runBin(t, dir, env, "", "failures")
	if r.code != 0 {
		t.Fatalf("failures: exit %d\n%s", r.code, r.stderr)
	}
	fixed := strings.Replace(r.stdout, "beto@example,", "beto@example.com,", 1)
	writeFile(t, dir, "fix.csv", fixed)

	// Line 3 of in.csv now holds another, unrelated bad row.
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\nzoe@example.com,PERSON\n")
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv"); r.code != 1 {
		t.Fatalf("import edited in.csv: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "fix.csv"); r.code != 0 {
		t.Fatalf("import fix.csv: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(srv.Customers()); n != 2 {
		t.Errorf("server customers = %d, want 2 (ana, beto)", n)
	}
	r = runBin(t, dir, env, "", "failures")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil {
		t.Fatalf("failures: exit %d, %v\n%s", r.code, err, r.stderr)
	}
	if len(recs) != 2 || recs[1][0] != "zoe@example.com" || recs[1][5] != "3" {
		t.Errorf("failures after the stale fix file = %q, want zoe@example.com's new issue at line 3 kept", recs)
	}
}
