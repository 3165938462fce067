package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/bulkcreate/bulkcreate/internal/importer"
)

// TestCLI_ProgressBarOnATerminal runs an import with stderr on a
// pseudo-terminal and checks the live bar is drawn; and that without a
// terminal the same progress comes as log lines.
func TestCLI_ProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, _ := genRows(300)
	writeFile(t, dir, "in.csv", data)

	cmd := exec.Command(binPath, "import", "--rps", "200", "in.csv")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 160})
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	screen := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO when the child exits
		screen <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("import under a terminal: %v\n%s", err, stdout.String())
	}
	var out string
	select {
	case out = <-screen:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	bar := regexp.MustCompile(`\d+% \|[█ ]+\| \(\d+/\d+, \d+ rows/s\)`)
	if !bar.MatchString(out) {
		t.Errorf("terminal output has no progress bar:\n%q", out)
	}
	if !strings.Contains(out, "100% |") || !strings.Contains(out, "created 300") || !strings.Contains(out, "limit 200/s") {
		t.Errorf("the bar's last state lacks 100%%, created 300 or the limit:\n%q", out)
	}

	// Not a terminal: structured log lines instead.
	r := runBin(t, dir, nil, "", "import", "--ledger", "other.db", "--rps", "200", "--progress-every", "300ms", "--log-format", "json", "in.csv")
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"progress"`) || strings.Contains(r.stderr, "█") {
		t.Errorf("import without a terminal: exit %d, want json progress lines and no bar:\n%s", r.code, r.stderr)
	}
}

func TestProgress_EstimateRowsFromBytesParsed(t *testing.T) {
	tests := []struct {
		name     string
		size     int64
		read     int64 // rows parsed
		consumed int64 // bytes they took
		want     int64
	}{
		// 2,048 rows of 35 bytes: the reader has parsed 768 rows (3 batches)
		// and read 64 KiB ahead; the estimate follows the parsed bytes.
		{"part way", 2048 * 35, 768, 768 * 35, 2048},
		{"at the end", 2048 * 35, 2048, 2048 * 35, 2048},
		{"at the end, after a BOM", 2048*35 + 3, 2048, 2048 * 35, 2048},
		{"nothing parsed yet", 2048 * 35, 0, 0, -1},
		{"stdin: size unknown", -1, 768, 768 * 35, -1},
	}
	for _, tt := range tests {
		p := &progress{size: tt.size}
		if got := p.estimateRows(importer.Summary{Counts: importer.Counts{Read: tt.read}, Consumed: tt.consumed}); got != tt.want {
			t.Errorf("%s: estimateRows = %d, want %d", tt.name, got, tt.want)
		}
	}
}
