#!/usr/bin/env bash
# bench/fleet.sh measures fleet mode on a PostgreSQL ledger (BENCHMARKS.md
# figures 11-13) against a separate `bulkcreate sandbox` process:
#
#   11. load: wall time of `import --detach --rps 0` over ROWS rows
#       (default 1,000,000). Target <= 30 s.
#   12. throughput: SEND rows (default 30,000) sent by 4 workers, rows/s,
#       divided by the rows/s of the single-process SQLite import of as many
#       rows, in the same run. Target >= 1.0. Also the machine's CPU time
#       (/proc/stat) each used.
#   13. recovery: seconds from `kill -9` of one of two workers to the last
#       chunk it held being claimed by the other, divided by the lease
#       (LEASE, default 3s). Target <= 1. Also how long after the dead
#       lease ran out the claim came, both on the database's clock.
#
# Usage: BULKCREATE_TEST_POSTGRES_URL=postgres://... bench/fleet.sh
#        (.ci/postgres.sh starts a throwaway cluster and prints such a URL)
# Environment: ROWS, SEND, LEASE, WORK (default a new temporary directory),
# FIGURES (default "11 12 13": the figures to measure).
# Each figure uses a schema of its own in that database, dropped at the end.
set -euo pipefail

ROWS=${ROWS:-1000000}
SEND=${SEND:-30000}
LEASE=${LEASE:-3s}
FIGURES=${FIGURES:-11 12 13}
PG=${BULKCREATE_TEST_POSTGRES_URL:?set BULKCREATE_TEST_POSTGRES_URL (bash .ci/postgres.sh DIR prints one)}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/bulkcreate-fleet.XXXXXX")}
mkdir -p "$WORK"
cd "$(dirname "$0")/.."

out() { echo "$*" | tee -a "$WORK/results.txt"; }
: >"$WORK/results.txt"
out "# bulkcreate bench/fleet.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
out "machine: nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3-)"
out "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) changed files"

go build -o "$WORK/bulkcreate" ./cmd/bulkcreate
BIN=$WORK/bulkcreate
SCHEMAS=()
ledger() { SCHEMAS+=("$1"); echo "$PG&search_path=$1"; }
sql() { psql -qAtX "$PG" -c "$1"; }
now() { date +%s.%N; }
measure() { [[ " $FIGURES " == *" $1 "* ]]; }
# busy: the machine's CPU seconds used so far (user, nice, system, irq, softirq), every process
busy() { awk '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8)/100}' /proc/stat; }

"$BIN" sandbox --addr 127.0.0.1:0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
SANDBOX_PID=$!
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	kill -INT "$SANDBOX_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	for s in "${SCHEMAS[@]}"; do sql "DROP SCHEMA IF EXISTS $s CASCADE" || true; done
}
trap cleanup EXIT
URL=
for _ in $(seq 100); do
	URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/sandbox.out" 2>/dev/null | head -1 || true)
	[ -n "$URL" ] && break
	sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/sandbox.err" >&2; exit 1; }
export RIPIO_BASE_URL=$URL RIPIO_CLIENT_ID=sandbox-client RIPIO_CLIENT_SECRET=sandbox-secret
unset BULKCREATE_LEDGER
tag=b$$

# 11: load
if measure 11; then
	"$BIN" sample --rows "$ROWS" --prefix load -o "$WORK/load.csv"
	t0=$(now)
	"$BIN" import --detach --rps 0 --quiet --ledger "$(ledger ${tag}_load)" "$WORK/load.csv" >/dev/null
	t1=$(now)
	out "11. load: $ROWS rows queued in $(echo "$t1 - $t0" | bc -l | xargs printf '%.1f') s (target <= 30 s for 1,000,000)"
fi

# 12: 4 workers vs one SQLite import
if measure 12; then
	"$BIN" sample --rows "$SEND" --prefix single -o "$WORK/single.csv"
	"$BIN" sample --rows "$SEND" --prefix fleet -o "$WORK/fleet.csv"
	t0=$(now)
	c0=$(busy)
	"$BIN" import --rps 0 --quiet --ledger "$WORK/single.db" "$WORK/single.csv" >/dev/null
	t1=$(now)
	single_cpu=$(echo "$(busy) - $c0" | bc -l)
	single=$(echo "$SEND / ($t1 - $t0)" | bc -l)
	FLEET=$(ledger ${tag}_fleet)
	"$BIN" import --detach --rps 0 --quiet --ledger "$FLEET" "$WORK/fleet.csv" >/dev/null
	t0=$(now)
	c0=$(busy)
	for i in 1 2 3 4; do
		"$BIN" worker --exit-when-idle --rps 0 --quiet --ledger "$FLEET" >"$WORK/worker$i.out" 2>&1 &
		PIDS+=($!)
	done
	wait "${PIDS[@]}"
	t1=$(now)
	fleet_cpu=$(echo "$(busy) - $c0" | bc -l)
	PIDS=()
	fleet=$(echo "$SEND / ($t1 - $t0)" | bc -l)
	out "12. throughput: 4 workers $(printf '%.0f' "$fleet") rows/s, one SQLite import $(printf '%.0f' "$single") rows/s: ratio $(echo "$fleet / $single" | bc -l | xargs printf '%.2f') (target >= 1.0)"
	out "    machine CPU (every process: workers, sandbox, PostgreSQL, anything else): fleet $(printf '%.1f' "$fleet_cpu") s of $(printf '%.1f' "$(echo "$SEND / $fleet * $(nproc)" | bc -l)") s ($(nproc) cores x wall), SQLite import $(printf '%.1f' "$single_cpu") s of $(printf '%.1f' "$(echo "$SEND / $single * $(nproc)" | bc -l)") s: fleet/SQLite CPU a row $(echo "$fleet_cpu / $single_cpu" | bc -l | xargs printf '%.2f')"
fi

# 13: kill -9 to the dead worker's chunk claimed again, three times, the
if measure 13; then
	# kill at a random point of the heartbeat's period
	"$BIN" sample --rows 6000 --prefix kill -o "$WORK/kill.csv"
	lease_s=$(echo "$LEASE" | sed 's/s$//')
	for k in 1 2 3; do
		KILL=$(ledger ${tag}_kill$k)
		"$BIN" import --detach --rps 100 --quiet --ledger "$KILL" "$WORK/kill.csv" >/dev/null
		"$BIN" worker --rps 100 --lease "$LEASE" --quiet --ledger "$KILL" >"$WORK/victim$k.out" 2>&1 &
		victim=$!
		"$BIN" worker --rps 100 --lease "$LEASE" --quiet --ledger "$KILL" >"$WORK/survivor$k.out" 2>&1 &
		survivor=$!
		PIDS+=($victim $survivor)
		sleep "$(echo "2 + $RANDOM / 32768 * $lease_s" | bc -l)"
		chunk=$(sql "SELECT c.id FROM ${tag}_kill$k.chunks c JOIN ${tag}_kill$k.workers w ON w.id = c.owner WHERE w.pid = $victim AND NOT c.done ORDER BY c.id DESC LIMIT 1")
		kill -KILL "$victim"
		t0=$(now)
		[ -n "$chunk" ] || { out "13. recovery: the victim held no chunk"; exit 1; }
		expires=$(sql "SELECT lease_until FROM ${tag}_kill$k.chunks WHERE id = $chunk")
		while [ "$(sql "SELECT w.pid FROM ${tag}_kill$k.chunks c JOIN ${tag}_kill$k.workers w ON w.id = c.owner WHERE c.id = $chunk")" = "$victim" ]; do
			sleep 0.02
		done
		t1=$(now)
		kill -KILL "$survivor"
		wait "$victim" "$survivor" 2>/dev/null || true
		took=$(echo "$t1 - $t0" | bc -l)
		late=$(sql "SELECT round(EXTRACT(EPOCH FROM claimed_at - '$expires'::timestamptz) * 1000) FROM ${tag}_kill$k.chunks WHERE id = $chunk")
		out "13. recovery: chunk $chunk claimed again $(printf '%.2f' "$took") s after kill -9, lease $LEASE: ratio $(echo "$took / $lease_s" | bc -l | xargs printf '%.2f') (target <= 1); claimed $late ms after its lease ran out (the database's clock)"
	done
fi
