#!/usr/bin/env bash
# Fails when `make manifests generate api-docs` changes a generated file: the
# CRDs and RBAC under config/, the deepcopy code under api/ and the API
# reference docs/api.md. The files are
# regenerated in place, so a failing run leaves the up-to-date versions to
# commit.
set -euo pipefail
cd "$(dirname "$0")/.."

generated() { git ls-files --cached --others --exclude-standard -- config/crd/bases config/rbac/role.yaml config/rbac/verifier/role.yaml config/webhook/manifests.yaml 'api/**/zz_generated.*.go' docs/api.md; }
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
generated | while read -r f; do mkdir -p "$before/$(dirname "$f")"; cp "$f" "$before/$f"; done

make --no-print-directory manifests generate api-docs >/dev/null

changed=0
while read -r f; do
	if [[ ! -f "$before/$f" ]] || ! cmp -s "$before/$f" "$f"; then
		echo "regenerated: $f"; diff -u "$before/$f" "$f" 2>/dev/null | head -40 || true; changed=1
	fi
done < <(generated)
while read -r f; do
	[[ -f "$f" ]] || { echo "no longer generated: $f"; changed=1; }
done < <(cd "$before" && find . -type f | sed 's|^\./||')

if [[ $changed -ne 0 ]]; then
	echo "Generated files were out of date; they are regenerated now: review and commit them." >&2
	exit 1
fi
echo "Generated files are up to date."
