#!/usr/bin/env bash
# bench/run.sh measures figures 4 and 5 of issue 8 on the built binary:
#
#   4. memory: peak RSS of `bulkcreate import --rps 0` over ROWS rows
#      (default 1,000,000) against a separate `bulkcreate sandbox` process,
#      so that the fake server's memory is not counted. Target <= 64 MiB.
#   5. resume: wall time of the same import run again over the finished
#      ledger. Target <= 3 s.
#
# It also imports SMALL rows (default 1,000) into a fresh ledger first, so
# that the peak RSS can be read against the binary's floor in the same run.
#
# Usage: bench/run.sh            (from anywhere; takes minutes for 1M rows)
#        ROWS=100000 bench/run.sh
# Environment: ROWS, SMALL, WORK (kept afterwards; default a new temporary
# directory), IMPORT_TIMEOUT (seconds per import, default 1800).
# Needs Go, gcc (cgo, for SQLite) and GNU time (apt-get install time).
# Everything runs on loopback. Results go to stdout and $WORK/results.txt.
set -euo pipefail

ROWS=${ROWS:-1000000}
SMALL=${SMALL:-1000}
IMPORT_TIMEOUT=${IMPORT_TIMEOUT:-1800}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/bulkcreate-bench.XXXXXX")}
mkdir -p "$WORK"
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/time ]; then
	echo "bench/run.sh: needs GNU time at /usr/bin/time: apt-get install time" >&2
	exit 2
fi

out() { echo "$*" | tee -a "$WORK/results.txt"; }
: >"$WORK/results.txt"

out "# bulkcreate bench/run.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
out "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3-)"
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
	changed=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
	[ "$changed" -gt 0 ] && commit="$commit + $changed changed files: $(git status --porcelain --untracked-files=no | awk '{print $2}' | tr '\n' ' ')"
else
	commit="unknown (not a git work tree)"
fi
out "source: $(pwd), commit $commit"
out "work dir: $WORK"

go build -o "$WORK/bulkcreate" ./cmd/bulkcreate
BIN=$WORK/bulkcreate

"$BIN" sample --rows "$ROWS" -o "$WORK/big.csv"
"$BIN" sample --rows "$SMALL" --prefix small -o "$WORK/small.csv"

# The sandbox listens on a port the kernel picks and prints its URL.
"$BIN" sandbox --addr 127.0.0.1:0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
SANDBOX_PID=$!
stop_sandbox() {
	if kill -0 "$SANDBOX_PID" 2>/dev/null; then
		kill -INT "$SANDBOX_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$SANDBOX_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SANDBOX_PID" 2>/dev/null || true
	fi
	wait "$SANDBOX_PID" 2>/dev/null || true
}
trap stop_sandbox EXIT

URL=
for _ in $(seq 100); do # at most 10 s
	URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/sandbox.out" 2>/dev/null | head -1 || true)
	[ -n "$URL" ] && break
	kill -0 "$SANDBOX_PID" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$URL" ]; then
	echo "bench/run.sh: the sandbox did not start:" >&2
	cat "$WORK/sandbox.err" >&2
	exit 1
fi
out "sandbox: $URL (pid $SANDBOX_PID)"

# sample_rss NAME: until NAME.stop exists (or IMPORT_TIMEOUT passes), reads
# the import's anonymous and file-backed resident memory every 50 ms and
# writes the largest of each, in KiB, to NAME.rss. GNU time's peak RSS counts
# both; file-backed pages (SQLite's mmap of the ledger) are the kernel's page
# cache mapped in, dropped under memory pressure, where anonymous ones are the
# process's own (Go heap, SQLite's page cache, stacks).
sample_rss() {
	local name=$1 pid a f maxa=0 maxf=0
	for _ in $(seq $((IMPORT_TIMEOUT * 20))); do
		[ -e "$WORK/$name.stop" ] && break
		for pid in $(pgrep -f "^$BIN import" || true); do
			read -r a f < <(awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print a + 0, f + 0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
			[ "$a" -gt "$maxa" ] && maxa=$a
			[ "$f" -gt "$maxf" ] && maxf=$f
		done
		sleep 0.05
	done
	echo "$maxa $maxf" >"$WORK/$name.rss"
}

# run_import NAME CSV LEDGER: one import under GNU time, bounded by
# IMPORT_TIMEOUT. Leaves NAME.time (time -v), NAME.json (summary), NAME.rss
# (sampled peaks), NAME.out/err.
run_import() {
	local name=$1 csv=$2 ledger=$3 rc=0 sampler
	rm -f "$WORK/$name.stop"
	sample_rss "$name" &
	sampler=$!
	RIPIO_BASE_URL=$URL RIPIO_CLIENT_ID=sandbox-client RIPIO_CLIENT_SECRET=sandbox-secret \
		timeout "$IMPORT_TIMEOUT" /usr/bin/time -v -o "$WORK/$name.time" \
		"$BIN" import --rps 0 --quiet --ledger "$ledger" --summary-json "$WORK/$name.json" "$csv" \
		>"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
	touch "$WORK/$name.stop"
	wait "$sampler" || true
	if [ "$rc" -ne 0 ]; then
		out "$name: exit status $rc (see $WORK/$name.err)"
	fi
}

# Figures from a run: peak RSS in KiB, wall time in seconds, summary fields.
rss_kib() { awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$1.time"; }
wall_s() {
	awk -F': ' '/Elapsed \(wall clock\)/ {
		n = split($2, p, ":"); s = 0
		for (i = 1; i <= n; i++) s = s * 60 + p[i]
		print s
	}' "$WORK/$1.time"
}
rss_split() { awk '{printf "anon %.1f MiB, file-backed %.1f MiB", $1/1024, $2/1024}' "$WORK/$1.rss"; }
cpu_s() { awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$WORK/$1.time"; }
field() { sed -n "s/^ *\"$2\": \([0-9.e+-]*\),*$/\1/p" "$WORK/$1.json" | head -1; }

run_import small "$WORK/small.csv" "$WORK/small.db"
run_import full "$WORK/big.csv" "$WORK/ledger.db"
run_import resume "$WORK/big.csv" "$WORK/ledger.db"

SANDBOX_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$SANDBOX_PID/status" 2>/dev/null || echo "?")

small_rss=$(rss_kib small)
full_rss=$(rss_kib full)
full_wall=$(wall_s full)
resume_wall=$(wall_s resume)

out ""
out "import of $SMALL rows:   peak RSS $(awk -v k="$small_rss" 'BEGIN {printf "%.1f MiB", k/1024}'), wall $(wall_s small) s, created $(field small created)"
out "import of $ROWS rows: peak RSS $(awk -v k="$full_rss" 'BEGIN {printf "%.1f MiB", k/1024}') (sampled peaks: $(rss_split full)), wall ${full_wall} s (cpu $(cpu_s full) s), created $(field full created), $(awk -v r="$ROWS" -v w="$full_wall" 'BEGIN {printf "%.0f rows/s", r/w}')"
out "re-run over $ROWS done rows: wall ${resume_wall} s (cpu $(cpu_s resume) s), skipped $(field resume skipped), requests $(field resume requests), peak RSS $(awk -v k="$(rss_kib resume)" 'BEGIN {printf "%.1f MiB", k/1024}') (sampled peaks: $(rss_split resume))"
out "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times; cpu times less so)"
out "sandbox peak RSS (not counted): $(awk -v k="$SANDBOX_RSS" 'BEGIN {printf "%.1f MiB", k/1024}')"
out ""
out "figure 4, memory: peak RSS / 64 MiB = $(awk -v k="$full_rss" 'BEGIN {printf "%.3f", k/1024/64}')  (target <= 1; $(awk -v a="$full_rss" -v b="$small_rss" 'BEGIN {printf "%.2fx", a/b}') the $SMALL-row floor; anonymous only: $(awk '{printf "%.3f", $1/1024/64}' "$WORK/full.rss"))"
out "figure 5, resume: wall / 3 s = $(awk -v w="$resume_wall" 'BEGIN {printf "%.3f", w/3}')  (target <= 1)"
