package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCLI_SummaryJSONIsWrittenBeforeTheMetricsLinger: a scheduler reads the
// summary as soon as the import is done, not after the metrics endpoint's
// last-scrape wait.
func TestCLI_SummaryJSONIsWrittenBeforeTheMetricsLinger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\n")
	cmd := exec.Command(binPath, "import", "--quiet", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "5m",
		"--summary-json", "sum.json", "in.csv")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "sum.json")); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("import exited (%v) before writing its summary JSON", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no summary JSON while the metrics linger")
		}
	}
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("import exited (%v) at once; want it to linger 5m for the last scrape", err)
	default:
	}
}
