#!/usr/bin/env bash
# Builds the manager of the release before the split into components (one
# process, one Deployment: the commit PREVIOUS_RELEASE), from this
# repository's own history, into bin/previous/<commit>/, with its config/
# beside it, for the e2e scenario that upgrades an install of it. A
# complete directory is reused as it is.
#
# Usage: hack/previous.sh            prints the directory (manager, src/config).
#        hack/previous.sh --commit   prints the commit alone, building nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
commit=${PREVIOUS_RELEASE:-8e7e77ffc592dd5808564c4d8205d2bdbe3c5c09}
if [[ ${1:-} == --commit ]]; then
	echo "$commit"
	exit 0
fi
dir="$root/bin/previous/$commit"
if [[ -x "$dir/manager" && -d "$dir/src/config" ]]; then
	echo "$dir"
	exit 0
fi
if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
	# A shallow clone: fetch the history from where it came from.
	git -C "$root" fetch --quiet --unshallow >&2 2>/dev/null || git -C "$root" fetch --quiet origin "$commit" >&2 || true
fi
if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
	echo "hack/previous.sh: commit $commit (the release before the split) is not in this repository's history" >&2
	exit 1
fi
echo "Building the manager of $commit into $dir (once)" >&2
tmp="$dir.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/src"
git -C "$root" archive "$commit" | tar -x -C "$tmp/src"
(cd "$tmp/src" && go build -mod=readonly -o "$tmp/manager" ./cmd)
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
