package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI_SummaryNamesTheDelimiterItDetected: a semicolon export imported
// without --delimiter says, in the summary and its JSON, how it was read.
func TestCLI_SummaryNamesTheDelimiterItDetected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "in.csv", "Email;Type\nana@example.com;INDIVIDUAL\nbeto@example.com;BUSINESS\n")
	r := runBin(t, dir, nil, "", "import", "--quiet", "--summary-json", "sum.json", "in.csv")
	if r.code != 0 {
		t.Fatalf("import = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "read as UTF-8, semicolon-separated, detected from the header") {
		t.Errorf("summary does not say how the file was read:\n%s", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Input struct{ Encoding, Delimiter, DelimiterFrom string }
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.Input.Delimiter != "semicolon" || sum.Input.DelimiterFrom != "header" {
		t.Errorf("summary JSON input = %+v, %v; want delimiter semicolon from the header\n%s", sum.Input, err, b)
	}
}
