#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package) for the browser
# test of the HTML run report, unless one is on PATH, and prints the path
# of the binary on its last line.
#
# With CI=true a Chromium that cannot be installed is a failure; otherwise
# the script says so and exits 0, and the test skips.
#
# Usage: bash .ci/chromium.sh
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
	if bin="$(command -v "$name")"; then
		echo "$bin"
		exit 0
	fi
done

missing() {
	if [[ "${CI:-}" == "true" ]]; then
		echo "chromium.sh: $1" >&2
		exit 1
	fi
	echo "chromium.sh: $1; the browser test will skip" >&2
	exit 0
}

command -v apt-get >/dev/null 2>&1 || missing "no chromium and no apt-get to install it"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null 2>&1 || missing "no chromium, and installing it needs root"
	sudo="sudo"
fi
echo "chromium.sh: installing Debian's chromium package" >&2
$sudo apt-get update >&2
# A font too: without recommended packages, text would draw as boxes.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2
bin="$(command -v chromium)" || missing "apt-get installed no chromium"
echo "$bin"
