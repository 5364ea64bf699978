#!/usr/bin/env bash
# buf breaking for the example contracts, against their previous committed
# state (`make lint` runs it; so does CI through it).
#
#   examples/contracts/breaking.sh          compare against HEAD when the
#                                           contracts have uncommitted edits,
#                                           otherwise against HEAD~1 (CI on a
#                                           fresh clone checks its last commit)
#   examples/contracts/breaking.sh <ref>    compare against <ref>, e.g. origin/main
#   BREAKING_AGAINST=<ref> make lint        the same through make
#
# The previous state is taken with git archive, so it works in any clone; the
# check is skipped, saying why, when the ref is missing (shallow clone, first
# commit) or has no contracts yet. The imports (third_party: the purista
# options and google/api) are today's: both are pinned and never change
# their field numbers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
sub=${here#"$root"/}
buf=${BUF:-$root/.cache/buf/node_modules/.bin/buf}
[[ $buf == /* ]] || buf=$root/$buf
[[ -x $buf ]] || { echo "breaking: buf not found at $buf: run make tools" >&2; exit 1; }

ref=${1:-${BREAKING_AGAINST:-}}
if [[ -z $ref ]]; then
	if git -C "$root" diff --quiet HEAD -- "$sub/proto" 2>/dev/null &&
		[[ -z $(git -C "$root" ls-files --others --exclude-standard -- "$sub/proto") ]]; then
		ref=HEAD~1
	else
		ref=HEAD
	fi
fi
if ! commit=$(git -C "$root" rev-parse --verify -q "$ref^{commit}"); then
	echo "breaking: skipped: $ref is not in this clone (shallow clone or first commit), so there is nothing to compare against"
	exit 0
fi
if ! git -C "$root" cat-file -e "$commit:$sub/proto" 2>/dev/null; then
	echo "breaking: skipped: $ref has no $sub/proto yet, so there is nothing to compare against"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$commit" -- "$sub/proto" | tar -x -C "$tmp"
cp "$here/buf.yaml" "$tmp/$sub/"
cp -R "$here/third_party" "$tmp/$sub/"
cd "$here"
if ! "$buf" breaking --against "$tmp/$sub"; then
	echo "breaking: the contracts above break clients of $ref ($(git -C "$root" rev-parse --short "$commit")):" \
		"add a new field, method or package version (users/v2) instead of changing or removing one" >&2
	exit 1
fi
echo "breaking: no breaking change against $ref ($(git -C "$root" rev-parse --short "$commit"))"
