// Package prismtest runs Stoplight Prism (an OpenAPI mock server we did not
// write) for contract tests: Prism serves an OpenAPI document, validates every
// request it receives against it, and answers with the document's examples.
//
// Prism is installed by .ci/prism.sh into <repo>/.cache/prism (pinned
// version, needs node/npm). Start looks for it there, or at $PRISM_BIN. When
// it is missing the test is skipped, unless CI=true, in which case it fails:
// CI must never silently skip the contract test.
//
// Typical use:
//
//	m := prismtest.Start(t, "testdata/ramp-subset.openapi.yaml")
//	client := ripio.New(m.URL, ...)
//	... exercise the client ...
//	if v := m.Violations(); len(v) > 0 {
//		t.Errorf("requests violate the OpenAPI contract:\n%s", strings.Join(v, "\n"))
//	}
//
// This package is Unix-only (it runs Prism in its own process group).
package prismtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long Start waits for Prism to listen; node
	// start-up and spec parsing are slow on a busy CI machine.
	startTimeout = 60 * time.Second
	// flushTimeout bounds how long Violations waits for Prism's log to catch up.
	flushTimeout = 15 * time.Second
	// stopTimeout is how long Prism gets after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second

	// flushPathPrefix is the path of the barrier requests Violations sends.
	// It is not in any spec, so Prism answers 404 and logs the path.
	flushPathPrefix = "/__prismtest/flush/"

	skipMessage = "prism not installed: run .ci/prism.sh (needs node/npm)"
)

// Mock is a running Prism mock server.
type Mock struct {
	// URL is the base URL of the mock, e.g. "http://127.0.0.1:41234" (no
	// trailing slash); append the API paths to it.
	URL string

	t      testing.TB
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed when the Prism process has been reaped
	flushN atomic.Int64
	client *http.Client
}

// Start starts Prism serving the OpenAPI document at specPath (relative to
// the test's working directory, i.e. its package directory) on a free port of
// 127.0.0.1, waits until it listens and stops it in t.Cleanup. It must be
// called from the test goroutine.
//
// Prism runs as `prism mock -h 127.0.0.1 -p PORT -v info SPEC`: static
// responses (the document's examples, deterministic), request validation and
// security checks always on, and no --errors, which would only turn Prism's
// own *response* violations into 500s.
func Start(t testing.TB, specPath string) *Mock {
	t.Helper()

	spec, err := filepath.Abs(specPath)
	if err != nil {
		t.Fatalf("prismtest: spec path %q: %v", specPath, err)
	}
	if _, err := os.Stat(spec); err != nil {
		t.Fatalf("prismtest: spec: %v", err)
	}

	bin := findPrism(t)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("prismtest: finding a free port: %v", err)
		}
		m, err := launch(t, bin, spec, port)
		if err == nil {
			return m
		}
		lastErr = err
		// Another process may have taken the port between freePort and
		// Prism's listen; only that case is worth a retry.
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("prismtest: starting prism (%s): %v", bin, lastErr)
	return nil
}

// findPrism returns the prism executable: $PRISM_BIN, else
// <repo root>/.cache/prism/node_modules/.bin/prism. If neither is usable it
// skips the test, or fails it when CI=true.
func findPrism(t testing.TB) string {
	t.Helper()

	if env := os.Getenv("PRISM_BIN"); env != "" {
		// An explicit setting that does not work is a configuration error,
		// never a reason to skip.
		bin, err := exec.LookPath(env)
		if err != nil {
			t.Fatalf("prismtest: PRISM_BIN=%q is not an executable: %v", env, err)
		}
		return bin
	}

	var why string
	root, err := repoRoot()
	if err != nil {
		why = err.Error()
	} else {
		bin := filepath.Join(root, ".cache", "prism", "node_modules", ".bin", "prism")
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			why = fmt.Sprintf("%s not found or not executable", bin)
		} else if _, err := exec.LookPath("node"); err != nil {
			// .bin/prism is a node script ("#!/usr/bin/env node").
			why = fmt.Sprintf("%s needs node, which is not on PATH", bin)
		} else {
			return bin
		}
	}

	if isCI() {
		t.Fatalf("prismtest: %s (%s); CI=true, so the contract test must not be skipped: run `bash .ci/prism.sh` before the tests, or set PRISM_BIN", skipMessage, why)
	}
	t.Log("prismtest: " + why)
	t.Skip(skipMessage)
	return ""
}

func isCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var errAddrInUse = errors.New("address already in use")

func launch(t testing.TB, bin, spec string, port int) (*Mock, error) {
	t.Helper()

	host := "127.0.0.1"
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port))
	out := &syncBuffer{}
	cmd := exec.Command(bin, "mock",
		"-h", host,
		"-p", strconv.Itoa(port),
		"-v", "info", // "Request received" lines (info) delimit requests in the log
		spec,
	)
	cmd.Dir = filepath.Dir(spec)
	cmd.Env = append(os.Environ(),
		"FORCE_COLOR=0", // plain log lines even if the CI forces colours
		"NO_COLOR=1",
		"SCARF_ANALYTICS=false",
	)
	// One writer for both streams: exec then shares a single pipe, which keeps
	// Prism's log lines in order.
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = stopTimeout

	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &Mock{
		URL:    url,
		t:      t,
		cmd:    cmd,
		out:    out,
		exited: make(chan struct{}),
		client: &http.Client{Timeout: flushTimeout},
	}
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()

	ready := "Prism is listening on " + url
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-m.exited:
			log := out.String()
			if strings.Contains(log, "EADDRINUSE") {
				return nil, fmt.Errorf("port %d: %w", port, errAddrInUse)
			}
			return nil, fmt.Errorf("prism exited before listening (%v); output:\n%s", cmd.ProcessState, log)
		case <-time.After(100 * time.Millisecond):
		}
		if strings.Contains(out.String(), ready) {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("prism not listening on %s after %v; output:\n%s", url, startTimeout, out.String())
		}
	}

	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("prismtest: prism output:\n%s", m.Log())
		}
	})
	return m, nil
}

// stop terminates Prism's process group: SIGTERM, then SIGKILL.
func (m *Mock) stop() {
	pgid := m.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	select {
	case <-m.exited:
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.exited
	}
}

// Log returns everything Prism has printed so far (stdout and stderr).
func (m *Mock) Log() string { return m.out.String() }

// syncBuffer is a bytes.Buffer safe for concurrent Write and String.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
