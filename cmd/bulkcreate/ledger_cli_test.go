package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

func TestCLI_BadLedgerIsAUsageErrorAndSendsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	writeFile(t, dir, "corrupt.db", strings.Repeat("this is not sqlite ", 400))

	// Another import holds the ledger for this target.
	held := filepath.Join(dir, "held.db")
	l, err := ledger.Open(context.Background(), held, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tgt, _ := (&targetFlags{}).resolve(env2(env), true)
	run, err := l.StartRun(context.Background(), ledger.RunInfo{Target: tgt.Name(), SourceFile: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Finish(context.Background(), ledger.RunEnd{Outcome: "completed"})

	tests := []struct {
		name, ledger, want string
	}{
		{"Corrupt", "corrupt.db", "not a bulkcreate ledger or damaged"},
		{"Busy", "held.db", "another import is running on this ledger and target"},
		{"Unwritable", "in.csv/ledger.db", "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBin(t, dir, env, "", "import", "--ledger", tt.ledger, "in.csv")
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("import --ledger %s = exit %d, stderr %q; want 2 and %q", tt.ledger, r.code, r.stderr, tt.want)
			}
		})
	}
	if st := srv.Stats(); st.Requests+st.TokenRequests != 0 {
		t.Errorf("server got %d creates and %d token requests, want none", st.Requests, st.TokenRequests)
	}
}

func env2(m map[string]string) env {
	return env{getenv: func(k string) string { return m[k] }}
}

func TestCLI_ImportFromStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	r := runBin(t, dir, env, "email,type\na@example.com,INDIVIDUAL\nb@example.com,business\n", "import", "--rps", "0", "-")
	if r.code != 0 || len(srv.Customers()) != 2 {
		t.Errorf("import - = exit %d, server holds %d; want 0, 2\n%s%s", r.code, len(srv.Customers()), r.stdout, r.stderr)
	}
}

func TestCLI_SandboxCommandServesAnImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(binPath, "sandbox", "--addr", "127.0.0.1:0", "--latency", "1ms")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	env := map[string]string{}
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(10 * time.Second)
	for len(env) < 3 && time.Now().Before(deadline) && sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok && strings.HasPrefix(k, "RIPIO_") {
			env[k] = v
		}
	}
	if len(env) != 3 {
		t.Fatalf("sandbox printed %v, want RIPIO_BASE_URL, RIPIO_CLIENT_ID, RIPIO_CLIENT_SECRET", env)
	}
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	r := runBin(t, dir, env, "", "import", "in.csv")
	if r.code != 0 || !strings.Contains(r.stdout, "created  1") {
		t.Errorf("import into the sandbox process: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
