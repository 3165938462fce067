package main

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestCLI_RunsTheServerCannotServeEndWithTheirReason: an unreachable API,
// a 503 to every create and a year-long Retry-After each end the import
// with exit 3 and one line naming the cause, instead of grinding on.
func TestCLI_RunsTheServerCannotServeEndWithTheirReason(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	var data strings.Builder
	data.WriteString("email,type\n")
	for i := range 300 {
		fmt.Fprintf(&data, "stop%03d@example.com,INDIVIDUAL\n", i)
	}
	tests := []struct {
		name  string
		opts  *sandbox.Options // nil: nothing listens
		flags []string
		want  []string
	}{
		{"Unreachable", nil, []string{"--unreachable-after", "1s"}, []string{"cannot be reached", closed, "connection refused"}},
		{"Every503", &sandbox.Options{FailBeforeCommit: 1}, nil, []string{"every request failed", "503 Service Unavailable"}},
		{"RetryAfterAYear", &sandbox.Options{ThrottleAll: 365 * 24 * 60 * 60 * 1e9}, nil, []string{"keeps throttling", "8760h", "--max-retry-after 10m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"RIPIO_BASE_URL": "http://" + closed, "RIPIO_CLIENT_ID": "id", "RIPIO_CLIENT_SECRET": "secret"}
			if tt.opts != nil {
				srv, err := sandbox.NewServer(*tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				env = map[string]string{"RIPIO_BASE_URL": srv.URL(), "RIPIO_CLIENT_ID": srv.ClientID(), "RIPIO_CLIENT_SECRET": srv.ClientSecret()}
			}
			dir := t.TempDir()
			writeFile(t, dir, "in.csv", data.String())
			args := append([]string{"import", "--quiet", "--rps", "0"}, tt.flags...)
			r := runBin(t, dir, env, "", append(args, "in.csv")...)
			out := r.stdout + r.stderr
			if r.code != exitAborted {
				t.Fatalf("import = exit %d, want %d\n%s", r.code, exitAborted, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if tt.opts == nil && !strings.Contains(out, "not started  300") {
				t.Errorf("an unreachable run left rows other than not started, want all 300 as they were:\n%s", out)
			}
		})
	}
}
