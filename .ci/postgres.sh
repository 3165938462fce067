#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests and prints its URL on
# the last line. Installs PostgreSQL from Debian's packages when missing.
#
#   bash .ci/postgres.sh DIR [PORT]    start a cluster in DIR (which must not exist),
#                                      on PORT or the first free port from 55432
#   bash .ci/postgres.sh --stop DIR    stop it
#
# initdb refuses to run as root, so as root the cluster belongs to the
# postgres user, which the package creates. Trust authentication and a
# socket in DIR: the cluster listens on 127.0.0.1 only and lives as long
# as the CI run.
set -euo pipefail

if [ "${1:-}" = "--stop" ]; then
	dir="$2"
	bin="$(cat "$dir/bindir")"
	as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
	as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
	rm -rf "$dir"
	exit 0
fi

dir="${1:?usage: postgres.sh DIR [PORT]}"
port="${2:-}"
if [ -z "$port" ]; then
	# Other checkouts on this machine may run their own cluster.
	port=55432
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
fi

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin="$(find_bin)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
	echo "== installing PostgreSQL from Debian's packages" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	# The package may create and start a cluster of its own (port 5432);
	# the tests use theirs.
	apt-get install -y -qq --no-install-recommends postgresql >&2
	bin="$(find_bin)"
fi

mkdir -p "$dir"
echo "$bin" >"$dir/bindir"
if [ "$(id -u)" = 0 ]; then
	chown postgres "$dir"
	as_owner() { runuser -u postgres -- "$@"; }
else
	as_owner() { "$@"; }
fi
as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
# fsync stays on: the tests check what a commit promises. Small buffers:
# the machine is shared.
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
	-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=32MB -c max_connections=200" start >/dev/null ||
	{ cat "$dir/log" >&2; exit 1; }
echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
