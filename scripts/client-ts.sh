#!/usr/bin/env bash
# make client-ts: generates a TypeScript client from the OpenAPI 3 document
# the example system's gateway serves, with openapi-typescript, type-checks
# examples/client-ts/src against it with tsc, and runs it with Node through
# openapi-fetch against the running system (scripts/with-example-system.sh).
# The npm packages are pinned by examples/client-ts/package-lock.json and
# installed with npm ci into .cache/client-ts.
set -euo pipefail
cd "$(dirname "$0")/.."
src=examples/client-ts
work=.cache/client-ts
command -v node >/dev/null || { echo "client-ts: node not found: install Node.js 20+ (Debian: apt-get install nodejs npm)" >&2; exit 1; }

mkdir -p "$work"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" || [[ ! -d $work/node_modules ]]; then
	cp "$src/package.json" "$src/package-lock.json" "$work/"
	(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$src/tsconfig.json" "$work/"
rm -rf "$work/src" "$work/dist"
cp -R "$src/src" "$work/src"

t=$SECONDS
scripts/with-example-system.sh bash -c '
	set -euo pipefail
	cd '"$work"'
	curl -sf "$PURISTA_GATEWAY_URL/openapi.v3.json" -o openapi.v3.json
	node_modules/.bin/openapi-typescript openapi.v3.json -o src/schema.d.ts
	node_modules/.bin/tsc -p .
	node dist/client.js
'
echo "client-ts: passed in $((SECONDS - t)) s"
