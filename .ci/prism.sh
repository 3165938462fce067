#!/usr/bin/env bash
# Installs the pinned Stoplight Prism CLI (OpenAPI mock server used by the
# Ripio contract tests) into $REPO/.cache/prism (git-ignored) and prints the
# path of the prism binary on its last line.
#
# Idempotent: npm is only run when the binary is missing or the installed
# version differs from PRISM_VERSION, so after the first install it works
# offline. Needs node and npm; only the npm registry is contacted.
#
# Usage: bash .ci/prism.sh            # install if needed, print binary path
#        PRISM_BIN=$(bash .ci/prism.sh | tail -n1) go test ./...
set -euo pipefail

# Pinned exactly; bump deliberately (check with: npm view @stoplight/prism-cli version).
PRISM_VERSION="5.14.2"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$REPO/.cache/prism"
BIN="$PREFIX/node_modules/.bin/prism"
PKG_JSON="$PREFIX/node_modules/@stoplight/prism-cli/package.json"

installed_version() {
	[[ -x "$BIN" && -f "$PKG_JSON" ]] || return 0
	node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$PKG_JSON" 2>/dev/null || true
}

have="$(installed_version)"
if [[ "$have" != "$PRISM_VERSION" ]]; then
	command -v npm >/dev/null 2>&1 || { echo "prism.sh: npm not found (install node/npm)" >&2; exit 1; }
	if [[ -n "$have" ]]; then
		echo "prism.sh: installed prism-cli $have != pinned $PRISM_VERSION, reinstalling" >&2
	else
		echo "prism.sh: installing @stoplight/prism-cli@$PRISM_VERSION into $PREFIX" >&2
	fi
	mkdir -p "$PREFIX"
	# Keep the install self-contained: a package.json in the prefix stops npm
	# from walking up and picking another project's root.
	[[ -f "$PREFIX/package.json" ]] || echo '{"name":"bulkcreate-prism","private":true}' >"$PREFIX/package.json"
	# No telemetry from the @scarf/scarf postinstall hook.
	SCARF_ANALYTICS=false npm install --prefix "$PREFIX" --no-audit --no-fund \
		"@stoplight/prism-cli@$PRISM_VERSION" >&2
	have="$(installed_version)"
	if [[ "$have" != "$PRISM_VERSION" ]]; then
		echo "prism.sh: install failed: found version '${have:-none}', want $PRISM_VERSION" >&2
		exit 1
	fi
fi

echo "$BIN"
