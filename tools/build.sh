#!/usr/bin/env bash
# Builds the simulated cluster's control-plane binaries from Go modules and caches them by
# version, outside git. Idempotent: a component whose binaries are already cached is skipped.
# Prints the cache directory as its last line.
#
#   IDENTITY_UPGRADE_TOOLS  cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools)
#
# First build takes about 6 minutes on 2 cores; later runs take under a second.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${IDENTITY_UPGRADE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools}
mkdir -p "$cache"

k8s_version=v1.37.2
etcd_version=v3.6.16
kwok_version=v0.8.0

# One builder at a time, across processes (parallel test binaries, make targets).
exec 9>"$cache/.build.lock"
flock 9

# build NAME VERSION MODDIR LDFLAGS PKG...
build() {
	local name=$1 version=$2 moddir=$3 ldflags=$4
	shift 4
	local dest="$cache/$name-$version"
	if [ -f "$dest/.complete" ]; then
		return 0
	fi
	echo "identity-upgrade tools: building $name $version into $dest (first time only; a few minutes on 2 cores)..." >&2
	local start=$SECONDS
	local tmp
	tmp=$(mktemp -d "$cache/.tmp-$name-XXXXXX")
	(cd "$here/$moddir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@")
	# The etcd server module's main package would be named after its path ("server").
	if [ -f "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
	touch "$tmp/.complete"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	echo "identity-upgrade tools: built $name $version in $((SECONDS - start))s" >&2
}

build kubernetes "$k8s_version" kubernetes \
	"-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
build etcd "$etcd_version" etcd \
	"-s -w" \
	go.etcd.io/etcd/server/v3
build kwok "$kwok_version" kwok \
	"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}" \
	sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl

echo "$cache"
