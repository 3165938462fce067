package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestCLI_FileChangedWhileReadIsReported: a file appended to while the
// import reads it is named in the summary, text and JSON, and the run
// exits 1 although every row it read was created. The server holds every
// create request until the test has appended, and the file is many times
// what the pipeline holds, so the import cannot reach its end first.
func TestCLI_FileChangedWhileReadIsReported(t *testing.T) {
	t.Parallel()
	// 5,000 rows of about 200 bytes: 1 MB, against the few hundred rows
	// and 128 KiB of buffers the import holds while its requests wait; 30
	// rows: read whole before the first request leaves.
	for _, rows := range []int{5000, 30} {
		t.Run(fmt.Sprint(rows), func(t *testing.T) {
			t.Parallel()
			testFileChanged(t, rows)
		})
	}
}

func testFileChanged(t *testing.T, rows int) {
	dir := t.TempDir()
	srv, err := sandbox.NewServer(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/") {
			once.Do(func() { close(arrived) })
			<-release
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)

	var csv strings.Builder
	csv.WriteString("email,type,note\n")
	pad := strings.Repeat("x", 170)
	for i := range rows {
		fmt.Fprintf(&csv, "c%05d@example.com,INDIVIDUAL,%s\n", i, pad)
	}
	path := writeFile(t, dir, "in.csv", csv.String())

	cmd := exec.Command(binPath, "import", "--rps", "0", "--concurrency", "2", "--quiet", "--summary-json", "sum.json", "in.csv")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"RIPIO_BASE_URL=" + gate.URL, "RIPIO_CLIENT_ID=" + srv.ClientID(), "RIPIO_CLIENT_SECRET=" + srv.ClientSecret()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		close(release)
		cmd.Wait()
		t.Fatalf("no create request within a minute\n%s%s", stdout.String(), stderr.String())
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("late@example.com,INDIVIDUAL,\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("import of a file appended to while read: exit %d (%v), want 1\n%s%s", code, err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "in.csv changed while it was") {
		t.Errorf("summary does not say the file changed while read:\n%s", stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		ExitCode     int    `json:"exitCode"`
		InputChanged string `json:"inputChanged"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, b)
	}
	if sum.ExitCode != 1 || !strings.Contains(sum.InputChanged, "changed while it was") {
		t.Errorf("summary JSON exitCode, inputChanged = %d, %q; want 1 and the change named\n%s", sum.ExitCode, sum.InputChanged, b)
	}
}
