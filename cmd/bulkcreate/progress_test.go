package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// runOnPty runs the built command with stderr on a pseudo-terminal of cols
// columns, and returns what the terminal got and stdout.
func runOnPty(t *testing.T, dir string, cols uint16, env map[string]string, args ...string) (screen, stdout string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: cols})
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO when the child exits
		got <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bulkcreate %v under a terminal: %v\n%s", args, err, out.String())
	}
	select {
	case screen = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	return screen, out.String()
}

// TestCLI_ProgressBarOnATerminal runs an import with stderr on a
// pseudo-terminal and checks the live bar is drawn, and redrawn in place
// on one line of the terminal however wide; and that without a terminal
// the same progress comes as log lines.
func TestCLI_ProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, _ := genRows(300)
	writeFile(t, dir, "in.csv", data)
	bar := regexp.MustCompile(`\d+% \|[█ ]+\| \(\d+/\d+, \d+ rows/s\)`)
	ansi := regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	for _, cols := range []uint16{160, 80, 60} {
		t.Run(fmt.Sprintf("%dColumns", cols), func(t *testing.T) {
			t.Parallel()
			screen, _ := runOnPty(t, dir, cols, nil, "import", "--ledger", fmt.Sprintf("%d.db", cols), "--rps", "200", "in.csv")
			if !bar.MatchString(screen) {
				t.Errorf("terminal output has no progress bar:\n%q", screen)
			}
			if !strings.Contains(screen, "100% |") || !strings.Contains(screen, "created 300") {
				t.Errorf("the bar's last state lacks 100%% or created 300:\n%q", screen)
			}
			if cols >= 120 && !strings.Contains(screen, "limit 200/s") {
				t.Errorf("a wide terminal's bar lacks the limit:\n%q", screen)
			}
			// Every redraw starts with \r and stays within the width: a line
			// that reached the edge would wrap, and the next \r would leave
			// it behind as a new line on the screen.
			redraws := strings.Count(screen, "\r") - strings.Count(screen, "\r\n")
			if redraws < 3 {
				t.Errorf("%d redraws, want several:\n%q", redraws, screen)
			}
			for _, line := range strings.FieldsFunc(ansi.ReplaceAllString(screen, ""), func(r rune) bool { return r == '\r' || r == '\n' }) {
				if n := utf8.RuneCountInString(line); n >= int(cols) && strings.Contains(line, "rows/s") {
					t.Errorf("a %d-column line on a %d-column terminal: %q", n, cols, line)
				}
			}
			// The sandbox's notice and the bar's last state: two lines.
			if n := strings.Count(screen, "\n"); n != 2 {
				t.Errorf("the terminal got %d lines, want 2:\n%q", n, screen)
			}
		})
	}

	// Not a terminal: structured log lines instead, numbers as numbers,
	// with an ETA once rows finish.
	r := runBin(t, dir, nil, "", "import", "--ledger", "other.db", "--rps", "200", "--progress-every", "300ms", "--log-format", "json", "in.csv")
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"progress"`) || strings.Contains(r.stderr, "█") {
		t.Errorf("import without a terminal: exit %d, want json progress lines and no bar:\n%s", r.code, r.stderr)
	}
	lines := 0
	for _, l := range strings.Split(r.stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "progress" {
			continue
		}
		lines++
		for _, k := range []string{"read", "created", "elapsed_s", "rows_per_s", "requests_per_s", "file_read_pct", "limit_per_s"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("progress line's %s = %#v, want a number: %s", k, m[k], l)
			}
		}
		if done, _ := m["created"].(float64); done > 0 {
			if _, ok := m["eta_s"].(float64); !ok {
				t.Errorf("progress line without an ETA: %s", l)
			}
		}
	}
	if lines < 2 {
		t.Errorf("%d progress lines, want several:\n%s", lines, r.stderr)
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

func TestRenderBar_FitsEveryWidth(t *testing.T) {
	t.Parallel()
	busy := snapshot{
		Summary: importer.Summary{Counts: importer.Counts{Read: 123456, Created: 100000, Exists: 2000, Skipped: 3000,
			Invalid: 400, Duplicate: 50, Rejected: 60, Failed: 70, InDoubt: 80}},
		done: 105660, total: 1234567, elapsed: 95 * time.Second, rowRate: 1112, eta: 17 * time.Minute,
		limit: 1000, throttles: 12,
	}
	paused := busy
	paused.paused = 29*time.Second + time.Millisecond
	stdin := busy
	stdin.total, stdin.eta = -1, -1
	for _, sn := range []snapshot{busy, paused, stdin} {
		for width := 40; width <= 200; width++ {
			line := renderBar(sn, width)
			if n := utf8.RuneCountInString(line); n >= width {
				t.Errorf("renderBar(%d columns) = %d columns: %q", width, n, line)
			}
			if sn.paused > 0 && !strings.Contains(line, "paused by the server for 30s") {
				t.Errorf("renderBar(%d columns) lost the pause: %q", width, line)
			}
			if width >= 50 && sn.paused == 0 && !strings.Contains(line, "rows/s") {
				t.Errorf("renderBar(%d columns) lost the counts: %q", width, line)
			}
		}
	}
	if got, want := renderBar(busy, 200), "  8% |██                      | (105660/1234567, 1112 rows/s) [1m35s:17m0s] 12×429 created 100000 exists 2000 skipped 3000 invalid 400 duplicate 50 rejected 60 failed 70 in-doubt 80 | limit 1000/s"; got != want {
		t.Errorf("renderBar(200 columns) =\n%q, want\n%q", got, want)
	}
}

// TestCLI_ProgressSaysWhenTheServerPauses: a 429 with Retry-After holds the
// pool, and progress says for how long rather than look stuck.
func TestCLI_ProgressSaysWhenTheServerPauses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The pool pauses when the server refuses everything; a server that
	// only ever throttles, for 3 s of --max-retry-after, then ends the run.
	opts := sandbox.DefaultOptions()
	opts.ThrottleAll = time.Second
	_, env := newServer(t, opts)
	data, _ := genRows(40)
	writeFile(t, dir, "in.csv", data)
	r := runBin(t, dir, env, "", "import", "--rps", "50", "--max-retry-after", "3s", "--progress-every", "100ms", "--log-format", "json", "in.csv")
	if r.code != exitAborted {
		t.Fatalf("import: exit %d, want %d\n%s%s", r.code, exitAborted, r.stdout, r.stderr)
	}
	paused := false
	for _, l := range strings.Split(r.stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "progress" {
			if s, ok := m["paused_by_server_s"].(float64); ok && s > 0 && s <= 2 {
				paused = true
			}
		}
	}
	if !paused {
		t.Errorf("no progress line says the server paused the import (429s with Retry-After 1s):\n%s", r.stderr)
	}
}

// TestRenderBar_ShowsThrottlingAt80Columns: the server's 429s, and rows
// waiting out their Retry-After, outrank the exists and skipped counts, so
// an 80-column terminal still says why the import is slow.
func TestRenderBar_ShowsThrottlingAt80Columns(t *testing.T) {
	t.Parallel()
	sn := snapshot{
		Summary: importer.Summary{Counts: importer.Counts{Read: 2000, Created: 1500, Exists: 20, Skipped: 30}, Waiting: 3},
		done:    1550, total: 20000, elapsed: 95 * time.Second, rowRate: 16, eta: 19 * time.Minute,
		limit: 20, throttles: 12,
	}
	line := renderBar(sn, 80)
	for _, want := range []string{"3 waiting out a Retry-After", "12×429"} {
		if !strings.Contains(line, want) {
			t.Errorf("renderBar(80 columns) = %q, want it to say %q", line, want)
		}
	}
}

// TestCLI_FleetImportShowsAProgressBarOnATerminal: an import on a
// PostgreSQL ledger with stderr on a terminal draws the same live bar as
// one on SQLite, counting the rows of its file as the ledger has them,
// whichever process sent them: here a worker sends beside its own pool.
func TestCLI_FleetImportShowsAProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	data, _ := genRows(120)
	writeFile(t, dir, "in.csv", data)
	worker := startProc(t, dir, maps.Clone(env), "worker", "--quiet")
	screen, stdout := runOnPty(t, dir, 160, env, "import", "--rps", "60", "in.csv")
	worker.cmd.Process.Signal(syscall.SIGINT)
	worker.wait(t, time.Minute)
	bar := regexp.MustCompile(`\d+% \|[█ ]+\| \(\d+/\d+, \d+ rows/s\)`)
	if !bar.MatchString(screen) {
		t.Errorf("a fleet import's terminal has no progress bar:\n%q", screen)
	}
	if !strings.Contains(screen, "100% |") || !strings.Contains(screen, "created 120") {
		t.Errorf("the bar's last state lacks 100%% or created 120:\n%q\n%s", screen, stdout)
	}
	t.Logf("the worker beside: %s", worker.stdout.String())
}
