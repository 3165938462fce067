package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// runSandbox runs "bulkcreate sandbox args..." in process with a context
// already done, so that a sandbox that starts stops at once.
func runSandboxCmd(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errb bytes.Buffer
	err = run(ctx, append([]string{"sandbox"}, args...), func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return out.String(), err
}

func TestRun_SandboxListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8080", "example.com:8080", "8080"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			out, err := runSandboxCmd(t, "--addr", addr)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("run(sandbox --addr %s) = %v, want a usage error (exit %d)", addr, err, exitUsage)
			}
			if !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "try: bulkcreate sandbox --addr 127.0.0.1:8080") {
				t.Errorf("run(sandbox --addr %s) = %q, want it to say loopback and show a command to try", addr, err)
			}
			if out != "" {
				t.Errorf("run(sandbox --addr %s) printed %q, want nothing: it must not listen", addr, out)
			}
		})
	}
	out, err := runSandboxCmd(t, "--addr", "127.0.0.1:0")
	if err != nil || !strings.Contains(out, "export RIPIO_BASE_URL=http://127.0.0.1:") {
		t.Errorf("run(sandbox --addr 127.0.0.1:0) = %v, printed %q; want it to serve on loopback", err, out)
	}
}

func TestRun_SandboxMisbehaviourFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--html-200", "--assign-ids", "--other-email"},
		{"--token-echo", "json-php", "--token-echo-status", "503"},
		{"--token-404"},
		{"--throttle-all", "8760h"},
		{"--fail-before", "1"},
		{"--reject-emails", "ana@example.com, Beto@Example.com"},
	} {
		out, err := runSandboxCmd(t, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
		if err != nil || !strings.Contains(out, "export RIPIO_BASE_URL=") {
			t.Errorf("run(sandbox %s) = %v, printed %q; want it to serve", strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{
		{"--token-echo", "rot13"},
		{"--token-echo", "plain", "--token-echo-status", "200"},
		{"--token-echo", "plain", "--token-404"},
		{"--throttle-all", "-1s"},
	} {
		_, err := runSandboxCmd(t, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("run(sandbox %s) = %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
