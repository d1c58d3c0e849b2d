#!/usr/bin/env bash
# Builds the simulated cluster's control-plane binaries from Go modules and caches them by
# version, outside git, then fetches the test world's other PostgreSQL majors into the same
# cache (tools/postgres.sh). Idempotent: a component already cached is skipped.
# Prints the cache directory as its last line.
#
#   IDENTITY_UPGRADE_TOOLS  cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools)
#
# First build takes about 6 minutes on 2 cores (the PostgreSQL fetch about half a minute of
# it); later runs take under a second.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${IDENTITY_UPGRADE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools}
mkdir -p "$cache"

k8s_version=v1.37.2
etcd_version=v3.6.16
kwok_version=v0.8.0
# kwok as built here differs from the release by one change (kwok_overlay), so it is cached
# under its own name.
kwok_build=$kwok_version-uid

# One builder at a time, across processes (parallel test binaries, make targets).
exec 9>"$cache/.build.lock"
flock 9

# build NAME VERSION MODDIR LDFLAGS PKG...; $build_flags are passed to go build.
build_flags=()
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
	(cd "$here/$moddir" && go build -trimpath "${build_flags[@]}" -ldflags "$ldflags" -o "$tmp/" "$@")
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
# kwok_patched copies kwok's module into $1/kwok, changes one function there, and writes
# $1/go.mod, tools/kwok's go.mod with kwok replaced by that copy, for go build -modfile. The
# change: the pod controller deletes a pod by name, and it plays the delete stage once per
# update event of a terminating pod, so a late second delete can remove a new pod of the same
# name that a StatefulSet created in between (seen in a fault-matrix run: the re-created
# StatefulSet's pod deleted in the stability window). The copy deletes only the pod it means,
# with a UID precondition, and takes "gone" or "replaced" as done, as a kubelet does.
kwok_patched() {
	local dir src
	dir=$(cd "$here/kwok" && go mod download -json sigs.k8s.io/kwok | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	cp -R "$dir" "$1/kwok"
	chmod -R u+w "$1/kwok"
	src=$1/kwok/pkg/kwok/controllers/pod_controller.go
	perl -0pi -e '
		s{(\tmetav1 "k8s.io/apimachinery/pkg/apis/meta/v1"\n)}{\tapierrors "k8s.io/apimachinery/pkg/api/errors"\n$1} or die "kwok_patched: import not found\n";
		s{err := c\.typedClient\.CoreV1\(\)\.Pods\(pod\.Namespace\)\.Delete\(ctx, pod\.Name, deleteOpt\)\n\tif err != nil \{\n\t\treturn err\n\t\}}{opt := deleteOpt\n\topt.Preconditions = metav1.NewUIDPreconditions(string(pod.UID))\n\terr := c.typedClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opt)\n\tif apierrors.IsNotFound(err) \|\| apierrors.IsConflict(err) {\n\t\treturn nil\n\t}\n\tif err != nil {\n\t\treturn err\n\t}} or die "kwok_patched: pod delete not found\n";
	' "$src"
	cp "$here/kwok/go.mod" "$1/go.mod"
	cp "$here/kwok/go.sum" "$1/go.sum"
	printf '\nreplace sigs.k8s.io/kwok => %s\n' "$1/kwok" >>"$1/go.mod"
}
if [ ! -f "$cache/kwok-$kwok_build/.complete" ]; then
	patched=$(mktemp -d)
	trap 'rm -rf "$patched"' EXIT
	kwok_patched "$patched"
	build_flags=(-modfile "$patched/go.mod")
fi
build kwok "$kwok_build" kwok \
	"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}" \
	sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl

# PostgreSQL servers of majors 11, 13, 16, 17, 18 and Debian 13's client tools of major 17.
IDENTITY_UPGRADE_TOOLS=$cache bash "$here/postgres.sh" >/dev/null

echo "$cache"
