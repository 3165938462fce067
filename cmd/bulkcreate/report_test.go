package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// TestCLI_ReportAndFailuresSelectTheTarget: report and failures read the
// target the environment selects, as import does, or --target; a target
// with no rows names the ones the ledger holds.
func TestCLI_ReportAndFailuresSelectTheTarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\nbad,INDIVIDUAL\n")
	if r := runBin(t, dir, nil, "", "import", "--quiet", "--rps", "0", "in.csv"); r.code != 1 {
		t.Fatalf("import into the embedded sandbox: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The operator has since exported a real target's environment.
	env := map[string]string{"RIPIO_BASE_URL": "sandbox", "RIPIO_CLIENT_ID": "acme"}
	const hint = `target "https://skala-sandbox.ripio.com client=acme" has no rows in this ledger; it holds "embedded-sandbox" (2 rows)`

	r := runBin(t, dir, env, "", "report")
	if r.code != 0 || !strings.Contains(r.stdout, "rows  0") || !strings.Contains(r.stderr, hint) {
		t.Errorf("report for an empty target = exit %d\n%s%s\nwant 0 rows and %q", r.code, r.stdout, r.stderr, hint)
	}
	r = runBin(t, dir, env, "", "failures")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, hint) {
		t.Errorf("failures for an empty target = exit %d\n%s%s\nwant the header only and %q", r.code, r.stdout, r.stderr, hint)
	}
	r = runBin(t, dir, env, "", "report", "--format", "json")
	var rep struct {
		Rows         int            `json:"rows"`
		OtherTargets []ledgerTarget `json:"otherTargets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report json: %v\n%s", err, r.stdout)
	}
	if rep.Rows != 0 || len(rep.OtherTargets) != 1 || rep.OtherTargets[0] != (ledgerTarget{Target: "embedded-sandbox", Rows: 2, Runs: 1}) {
		t.Errorf("report json for an empty target = %+v, want 0 rows and embedded-sandbox's 2 rows in otherTargets", rep)
	}

	r = runBin(t, dir, env, "", "report", "--target", "embedded-sandbox")
	if r.code != 0 || !strings.Contains(r.stdout, "target: embedded-sandbox") || !strings.Contains(r.stdout, "rows  2") || r.stderr != "" {
		t.Errorf("report --target embedded-sandbox = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, dir, env, "", "failures", "--target", "embedded-sandbox")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(recs) != 2 || recs[1][0] != "bad" {
		t.Errorf("failures --target embedded-sandbox = exit %d, %q (%v)\n%s", r.code, recs, err, r.stderr)
	}
	for _, cmd := range []string{"report", "failures"} {
		r = runBin(t, dir, nil, "", cmd, "--target", "production")
		if r.code != 2 || !strings.Contains(r.stderr, `--target "production": the ledger holds no such target; it holds "embedded-sandbox" (2 rows)`) {
			t.Errorf("%s --target production = exit %d, stderr %q; want 2 naming the targets held", cmd, r.code, r.stderr)
		}
	}
}

func TestCLI_ReportTimesShowTheirZone(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/share/zoneinfo/America/Argentina/Buenos_Aires"); err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	if r := runBin(t, dir, nil, "", "import", "--quiet", "--rps", "0", "in.csv"); r.code != 0 {
		t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
	}
	for tz, zone := range map[string]string{"": "UTC", "America/Argentina/Buenos_Aires": "-03"} {
		r := runBin(t, dir, map[string]string{"TZ": tz}, "", "report")
		if !regexp.MustCompile(`\n1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ` + zone + ` +completed`).MatchString(r.stdout) {
			t.Errorf("report with TZ=%q: run time not in zone %s:\n%s", tz, zone, r.stdout)
		}
	}
}

// TestCLI_SummaryJSONAndReportSpellKeysAlike: a scheduler reads a run the
// same way from --summary-json and from report --format json.
func TestCLI_SummaryJSONAndReportSpellKeysAlike(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\nbad,INDIVIDUAL\n")
	runBin(t, dir, nil, "", "import", "--quiet", "--rps", "0", "--summary-json", "sum.json", "in.csv")
	r := runBin(t, dir, nil, "", "report", "--format", "json")
	var sum map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary json: %v\n%s", err, b)
	}
	var rep struct {
		Target string           `json:"target"`
		Runs   []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Runs) != 1 {
		t.Fatalf("report json: %v, %d runs\n%s", err, len(rep.Runs), r.stdout)
	}
	run := rep.Runs[0]
	for k := range run {
		if _, ok := sum[k]; !ok && k != "options" {
			t.Errorf("report's run has key %q, the summary JSON does not: %v", k, slices.Sorted(maps.Keys(sum)))
		}
	}
	for _, k := range []string{"runId", "target", "file", "outcome"} {
		if run[k] != sum[k] {
			t.Errorf("%s: report %v, summary %v", k, run[k], sum[k])
		}
	}
	if !maps.Equal(run["counts"].(map[string]any), sum["counts"].(map[string]any)) {
		t.Errorf("counts: report %v, summary %v", run["counts"], sum["counts"])
	}
}

// TestCLI_TargetByBaseURL: --target takes a base URL, or sandbox /
// production, when one client of it is in the ledger.
func TestCLI_TargetByBaseURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := ledger.Open(context.Background(), filepath.Join(dir, "bulkcreate.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"https://skala-sandbox.ripio.com client=acme", "https://x.example client=a", "https://x.example client=b"} {
		run, err := l.StartRun(context.Background(), ledger.RunInfo{Target: target, SourceFile: "in.csv"})
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Finish(context.Background(), ledger.RunEnd{Outcome: "completed"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target   string
		wantCode int
		want     string
	}{
		{"sandbox", 0, "target: https://skala-sandbox.ripio.com client=acme\n"},
		{"https://skala-sandbox.ripio.com/", 0, "target: https://skala-sandbox.ripio.com client=acme\n"},
		{"https://x.example client=b", 0, "target: https://x.example client=b\n"},
		{"https://x.example", 2, `--target "https://x.example": several clients of it in the ledger`},
	}
	for _, tt := range tests {
		r := runBin(t, dir, nil, "", "report", "--target", tt.target)
		if r.code != tt.wantCode || !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("report --target %q = exit %d\n%s%s\nwant exit %d and %q", tt.target, r.code, r.stdout, r.stderr, tt.wantCode, tt.want)
		}
	}
}
