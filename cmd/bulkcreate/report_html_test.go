package main

import (
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// chromiumPath finds headless Chromium: BULKCREATE_CHROMIUM, else chromium
// (Debian's package) or a Chrome on PATH. Without one the test skips, or
// fails under CI=true, where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	if p := os.Getenv("BULKCREATE_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no Chromium (tried %v): CI must install it (bash .ci/chromium.sh)", names)
	}
	t.Skipf("no Chromium (tried %v); install Debian's chromium package to run the browser test", names)
	return ""
}

// artifactDir is where a test keeps files for a person to look at:
// BULKCREATE_TEST_ARTIFACTS/<test name> when that is set (CI sets it),
// else the test's temporary directory, gone when it ends.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("BULKCREATE_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// proxy stands in for the network while Chromium runs: every request the
// browser makes goes to it and is refused. Chromium's own background calls
// (Google's update, time and account services) come too and are not the
// page's; any other host is one the page tried to load from.
type proxy struct {
	*httptest.Server
	mu    sync.Mutex
	hosts []string
}

func newProxy(t *testing.T) *proxy {
	t.Helper()
	p := &proxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hosts = append(p.hosts, r.Host)
		p.mu.Unlock()
		http.Error(w, "no network in this test", http.StatusBadGateway)
	}))
	t.Cleanup(p.Close)
	return p
}

var chromiumOwnHost = regexp.MustCompile(`(^|\.)(google\.com|googleapis\.com|gstatic\.com)(:\d+)?$`)

// pageHosts are the hosts requested that are not Chromium's own.
func (p *proxy) pageHosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, h := range p.hosts {
		if !chromiumOwnHost.MatchString(h) {
			out = append(out, h)
		}
	}
	return out
}

// runChromium runs headless Chromium with args, its traffic sent to px,
// and returns its standard output and error.
func runChromium(t *testing.T, bin string, px *proxy, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-default-apps",
		"--proxy-server=" + px.URL, "--enable-logging=stderr", "--v=0"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String(), errb.String()
}

var seriesPath = regexp.MustCompile(`<path class="series (\w+)" d="([^"]*)" data-points="(\d+)"`)

// TestReport_HTMLInChromium imports into a sandbox that throttles and fails
// some requests, renders the run's report, and opens it in headless
// Chromium: the page loads nothing, logs no error, and its chart has a
// point per sample the ledger holds. The page and screenshots of it, as on
// a desktop and on a phone, stay in artifactDir.
func TestReport_HTMLInChromium(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	dir := t.TempDir()
	art := artifactDir(t)
	_, env := newServer(t, sandbox.Options{RateLimit: 50, RateBurst: 5, FailBeforeCommit: 0.04,
		Latency: 5 * time.Millisecond, LatencyJitter: 10 * time.Millisecond})
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range 200 {
		fmt.Fprintf(&csv, "user%d@example.com,INDIVIDUAL\n", i)
	}
	csv.WriteString("not-an-email,INDIVIDUAL\nuser1@example.com,INDIVIDUAL\n")
	writeFile(t, dir, "in.csv", csv.String())
	env["BULKCREATE_SAMPLE_EVERY"] = "200ms"
	r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "80", "in.csv")
	if r.code != 1 {
		t.Fatalf("import = exit %d, want 1 (an invalid and a duplicate row)\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, dir, env, "", "report", "--format", "html")
	if r.code != 0 {
		t.Fatalf("report --format html = exit %d\n%s", r.code, r.stderr)
	}
	page := filepath.Join(art, "run.html")
	if err := os.WriteFile(page, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report and screenshots in %s", art)

	l, err := ledger.Open(t.Context(), filepath.Join(dir, "bulkcreate.db"), ledger.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := l.Samples(t.Context(), 1)
	l.Close()
	if err != nil || len(samples) < 5 {
		t.Fatalf("Samples(run 1) = %d samples, %v; want 5 or more from an import of seconds", len(samples), err)
	}

	px := newProxy(t)
	url := "file://" + page
	desktop, phone := filepath.Join(art, "desktop.png"), filepath.Join(art, "phone.png")
	dom, logs := runChromium(t, chromium, px, "--dump-dom", "--window-size=1100,2400", "--screenshot="+desktop, url)
	if strings.Contains(logs, ":CONSOLE") {
		t.Errorf("the page logged to the console:\n%s", logs)
	}
	points := map[string]int{}
	for _, m := range seriesPath.FindAllStringSubmatch(dom, -1) {
		points[m[1]] = strings.Count(m[2], "M") + strings.Count(m[2], "L")
		if m[1] == "limit" {
			points[m[1]] /= 2 // a step line: a sample's start and end
		}
		if m[3] != fmt.Sprint(points[m[1]]) {
			t.Errorf("series %s: path has %d points, says %s", m[1], points[m[1]], m[3])
		}
	}
	for _, class := range []string{"sent", "throttled", "errors"} {
		if points[class] != len(samples) {
			t.Errorf("series %s in the browser's DOM has %d points, want %d (one per sample)", class, points[class], len(samples))
		}
	}
	for _, want := range []string{"Run 1:", "Top failure reasons", "is not a bare email address", "Runs"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in the browser lacks %q", want)
		}
	}

	runChromium(t, chromium, px, "--window-size=390,1500", "--screenshot="+phone, url)
	for _, shot := range []string{desktop, phone} {
		if n := bluePixels(t, shot); n < 200 {
			t.Errorf("%s has %d pixels of the rate chart's blue, want 200 or more: is the chart drawn?", shot, n)
		}
	}
	if hosts := px.pageHosts(); len(hosts) > 0 {
		t.Errorf("the page made requests to %v; it must load nothing", hosts)
	}
}

// bluePixels counts the pixels of a PNG near the blue of the "requests
// sent" line (#1f6fb4).
func bluePixels(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	near := func(a uint32, b int) bool { d := int(a>>8) - b; return d > -40 && d < 40 }
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, 0x1f) && near(g, 0x6f) && near(b, 0xb4) {
				n++
			}
		}
	}
	return n
}
