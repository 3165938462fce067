package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionText is what bulkcreate version prints: the version (-ldflags
// main.version wins over the module's, which go install stamps), then the
// module, the VCS revision go build stamps, and the toolchain, so that a
// binary found on a server can be traced to its commit.
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	return formatVersion(version, info, ok)
}

func formatVersion(v string, info *debug.BuildInfo, ok bool) string {
	if v == "dev" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bulkcreate %s\n", v)
	if !ok {
		return b.String()
	}
	if info.Main.Path != "" {
		fmt.Fprintf(&b, "module %s %s\n", info.Main.Path, info.Main.Version)
	}
	vcs := map[string]string{}
	for _, s := range info.Settings {
		vcs[s.Key] = s.Value
	}
	if rev := vcs["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, "revision %s", rev)
		if t := vcs["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " %s", t)
		}
		if vcs["vcs.modified"] == "true" {
			b.WriteString(" (modified)")
		}
		b.WriteString("\n")
	} else {
		// Say so rather than print nothing: a binary built with
		// -buildvcs=false, or outside a git checkout, carries no commit.
		b.WriteString("revision not stamped (built with -buildvcs=false or outside a git checkout)\n")
	}
	fmt.Fprintf(&b, "%s %s/%s\n", info.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
