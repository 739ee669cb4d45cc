#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kubectl) from the Go
# module proxy, pinned by hack/controlplane/go.mod and go.sum, into
# bin/k8s/<version>/. Nothing is downloaded from anywhere else, and a complete
# directory is reused as it is.
#
# Usage: hack/controlplane.sh [DIR]   prints the directory that holds the binaries.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/controlplane"
kube_version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$mod/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$mod/go.mod")
dir=${1:-"$root/bin/k8s/$kube_version-etcd-$etcd_version"}

if [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" && -x "$dir/kubectl" ]]; then
	echo "$dir"
	exit 0
fi

echo "Building kube-apiserver $kube_version, kubectl and etcd $etcd_version into $dir (once; takes a few minutes)" >&2
tmp="$dir.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
(
	cd "$mod"
	go build -mod=readonly -ldflags='-s -w' -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kubectl
	go build -mod=readonly -ldflags='-s -w' -o "$tmp/etcd" \
		go.etcd.io/etcd/server/v3
)
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
