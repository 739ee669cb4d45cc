#!/usr/bin/env bash
# Fetches the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs
# from the Go module proxy (they ship in its module) into
# bin/crds/prometheus-operator-<version>/, once, and prints that directory.
# The tests install them into the local control plane to apply
# config/prometheus with a server-side dry run.
set -euo pipefail

version=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/bin/crds/prometheus-operator-$version
if [[ ! -f $dir/.complete ]]; then
	src=$(cd / && go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" |
		sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $src ]] || { echo "the module github.com/prometheus-operator/prometheus-operator@$version was not downloaded" >&2; exit 1; }
	mkdir -p "$dir"
	for crd in servicemonitors prometheusrules; do
		install -m 0644 "$src/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$dir/"
	done
	touch "$dir/.complete"
fi
echo "$dir"
