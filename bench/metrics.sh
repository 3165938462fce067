#!/usr/bin/env bash
# bench/metrics.sh measures what --metrics-addr costs an import: PAIRS pairs
# of `bulkcreate import --rps 0` over ROWS new rows each, one run with
# metrics off and one with them on and scraped every SCRAPE_EVERY seconds,
# against a separate `bulkcreate sandbox` process. The order alternates
# from pair to pair (off/on, on/off, ...), so that a machine getting busier
# or the sandbox filling up weighs on both sides alike.
#
# ANSWER=exists measures instead imports that the server answers "already
# exists" for every row (a file imported once first, then into a new ledger
# each run): an error answer, which the metrics classify from its body.
#
# It prints, per pair and in total, wall time, CPU time and peak RSS with
# metrics on divided by the same with metrics off: 1.00 is no cost.
#
# Usage: bench/metrics.sh                 (from anywhere; a few minutes)
#        ROWS=50000 PAIRS=2 bench/metrics.sh
# Environment: ROWS (default 200000), PAIRS (default 3), ANSWER (created or
# exists, default created), SCRAPE_EVERY
# (seconds, default 1; Prometheus' default interval is 15), WORK (kept
# afterwards; default a new temporary directory).
# Needs Go, gcc (cgo, for SQLite), curl and GNU time. Everything runs on loopback.
set -euo pipefail

ROWS=${ROWS:-200000}
PAIRS=${PAIRS:-3}
SCRAPE_EVERY=${SCRAPE_EVERY:-1}
ANSWER=${ANSWER:-created}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/bulkcreate-metrics.XXXXXX")}
mkdir -p "$WORK"
cd "$(dirname "$0")/.."
for tool in /usr/bin/time curl; do
	command -v "$tool" >/dev/null || { echo "bench/metrics.sh: needs $tool" >&2; exit 2; }
done

out() { echo "$*" | tee -a "$WORK/results.txt"; }
: >"$WORK/results.txt"
out "# bulkcreate bench/metrics.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
out "machine: nproc $(nproc), $(go version | cut -d' ' -f3-); $ROWS rows a run, $PAIRS pairs, a scrape every $SCRAPE_EVERY s, every answer $ANSWER"
out "work dir: $WORK"

go build -o "$WORK/bulkcreate" ./cmd/bulkcreate
BIN=$WORK/bulkcreate

"$BIN" sandbox --addr 127.0.0.1:0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
SANDBOX_PID=$!
trap 'kill -INT $SANDBOX_PID 2>/dev/null || true; wait $SANDBOX_PID 2>/dev/null || true' EXIT
URL=
for _ in $(seq 100); do
	URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/sandbox.out" 2>/dev/null | head -1 || true)
	[ -n "$URL" ] && break
	sleep 0.1
done
[ -n "$URL" ] || { echo "bench/metrics.sh: the sandbox did not start" >&2; cat "$WORK/sandbox.err" >&2; exit 1; }

# scrape NAME: until NAME.stop exists, finds the import's metrics URL on its
# stderr and fetches it every SCRAPE_EVERY seconds, as Prometheus would.
scrape() {
	local name=$1 murl=
	while [ ! -e "$WORK/$name.stop" ]; do
		[ -z "$murl" ] && murl=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$WORK/$name.err" 2>/dev/null | head -1 || true)
		if [ -n "$murl" ]; then
			curl -fsS -o /dev/null "$murl" 2>/dev/null && echo >>"$WORK/$name.scrapes" || true
			sleep "$SCRAPE_EVERY"
		else
			sleep 0.05
		fi
	done
}

# run_import NAME on|off: one import of a new file under GNU time.
run_import() {
	local name=$1 mode=$2 scraper= args=()
	local csv=$WORK/$name.csv
	if [ "$ANSWER" = exists ]; then
		csv=$WORK/seed.csv
	else
		"$BIN" sample --rows "$ROWS" --prefix "$name" -o "$csv"
	fi
	[ "$mode" = on ] && args=(--metrics-addr 127.0.0.1:0)
	rm -f "$WORK/$name.stop"
	: >"$WORK/$name.err"
	: >"$WORK/$name.scrapes"
	[ "$mode" = on ] && { scrape "$name" & scraper=$!; }
	RIPIO_BASE_URL=$URL RIPIO_CLIENT_ID=sandbox-client RIPIO_CLIENT_SECRET=sandbox-secret \
		/usr/bin/time -v -o "$WORK/$name.time" \
		"$BIN" import --rps 0 --quiet --ledger "$WORK/$name.db" "${args[@]}" "$csv" \
		>"$WORK/$name.out" 2>>"$WORK/$name.err" || out "$name: exit status $? (see $WORK/$name.err)"
	touch "$WORK/$name.stop"
	[ -n "$scraper" ] && wait "$scraper"
	rm -f "$WORK/$name.csv" "$WORK/$name.db"*
}

wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$WORK/$1.time"; }
cpu() { awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$WORK/$1.time"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f\n", $2 / 1024}' "$WORK/$1.time"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

if [ "$ANSWER" = exists ]; then
	"$BIN" sample --rows "$ROWS" --prefix seed -o "$WORK/seed.csv"
	RIPIO_BASE_URL=$URL RIPIO_CLIENT_ID=sandbox-client RIPIO_CLIENT_SECRET=sandbox-secret \
		"$BIN" import --rps 0 --quiet --ledger "$WORK/seed.db" "$WORK/seed.csv" >/dev/null
fi

tw_on=0 tw_off=0 tc_on=0 tc_off=0 tr_on=0 tr_off=0
for i in $(seq "$PAIRS"); do
	if [ $((i % 2)) -eq 1 ]; then
		run_import "off$i" off
		run_import "on$i" on
	else
		run_import "on$i" on
		run_import "off$i" off
	fi
	out "pair $i ($([ $((i % 2)) -eq 1 ] && echo off first || echo on first)): wall $(wall "off$i") / $(wall "on$i") s, cpu $(cpu "off$i") / $(cpu "on$i") s, peak RSS $(rss "off$i") / $(rss "on$i") MiB (off / on; $(wc -l <"$WORK/on$i.scrapes") scrapes); on/off: wall $(ratio "$(wall "on$i")" "$(wall "off$i")"), cpu $(ratio "$(cpu "on$i")" "$(cpu "off$i")"), rss $(ratio "$(rss "on$i")" "$(rss "off$i")")"
	tw_on=$(awk -v a="$tw_on" -v b="$(wall "on$i")" 'BEGIN {print a + b}')
	tw_off=$(awk -v a="$tw_off" -v b="$(wall "off$i")" 'BEGIN {print a + b}')
	tc_on=$(awk -v a="$tc_on" -v b="$(cpu "on$i")" 'BEGIN {print a + b}')
	tc_off=$(awk -v a="$tc_off" -v b="$(cpu "off$i")" 'BEGIN {print a + b}')
	tr_on=$(awk -v a="$tr_on" -v b="$(rss "on$i")" 'BEGIN {print a + b}')
	tr_off=$(awk -v a="$tr_off" -v b="$(rss "off$i")" 'BEGIN {print a + b}')
done
out ""
out "metrics on / off over $PAIRS pairs: wall $(ratio "$tw_on" "$tw_off"), cpu $(ratio "$tc_on" "$tc_off"), peak RSS $(ratio "$tr_on" "$tr_off")"
out "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
