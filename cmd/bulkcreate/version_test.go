package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestCLI_VersionNamesTheModule: the binary the tests built names its
// module and toolchain; -ldflags main.version still names the release.
// (The tests' build may carry no revision: GOFLAGS=-buildvcs=false, or a
// git worktree, which go build does not recognise.)
func TestCLI_VersionNamesTheModule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := runBin(t, dir, nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "bulkcreate dev\nmodule github.com/bulkcreate/bulkcreate ") || !strings.Contains(r.stdout, "\ngo1.") {
		t.Errorf("bulkcreate version = exit %d, %q; want the version, the module and the toolchain", r.code, r.stdout)
	}
	bin := filepath.Join(dir, "bulkcreate-release")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "bulkcreate v9.8.7\n") {
		t.Errorf("version with -ldflags main.version = %q, %v; want bulkcreate v9.8.7 first", out, err)
	}
}

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/bulkcreate/bulkcreate", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	tail := "module github.com/bulkcreate/bulkcreate v1.4.0\nrevision 0123abcd 2026-12-01T10:00:00Z (modified)\ngo1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	tests := []struct {
		name    string
		version string
		info    *debug.BuildInfo
		want    string
	}{
		{"ModuleVersionWhenNotLinkedIn", "dev", stamped, "bulkcreate v1.4.0\n" + tail},
		{"LinkedInVersionWins", "v2.0.0-rc1", stamped, "bulkcreate v2.0.0-rc1\n" + tail},
		{"NoBuildInfo", "dev", nil, "bulkcreate dev\n"},
		{"NoRevision", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "(devel)"}},
			"bulkcreate dev\nmodule m (devel)\nrevision not stamped (built with -buildvcs=false or outside a git checkout)\ngo1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
	}
	for _, tt := range tests {
		if got := formatVersion(tt.version, tt.info, tt.info != nil); got != tt.want {
			t.Errorf("%s: formatVersion(%q) = %q, want %q", tt.name, tt.version, got, tt.want)
		}
	}
}
