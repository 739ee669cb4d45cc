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
# The binaries say their version (kubectl version, the API server's
# /version, which helm checks a chart's kubeVersion against), as a release
# build's do; a build from the module proxy says v0.0.0-master otherwise.
# The directory's suffix changes when the build does.
dir=${1:-"$root/bin/k8s/$kube_version-etcd-$etcd_version-versioned"}

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
	minor=${kube_version#v*.}
	minor=${minor%%.*}
	stamp=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		stamp+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	go build -mod=readonly -ldflags="-s -w$stamp" -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kubectl
	go build -mod=readonly -ldflags='-s -w' -o "$tmp/etcd" \
		go.etcd.io/etcd/server/v3
)
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
