#!/bin/sh
# Installs every build and test dependency of di3fs from Debian 12's archive.
# Idempotent and non-interactive: run it as root any number of times (a
# non-root user goes through sudo where it is installed).
set -eu

PKGS="build-essential cmake pkg-config clang clang-format git ca-certificates
 libzstd-dev zstd libxxhash-dev libdivsufsort-dev libssl-dev libarchive-dev
 libjson-c-dev libfuse3-dev fuse3 libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
 libprotobuf-dev protobuf-compiler liblmdb-dev libsqlite3-dev libcurl4-openssl-dev
 attr acl bsdiff debootstrap tar gzip python3 time bc containerd runc zlib1g-dev
 busybox-static skopeo pigz help2man libbz2-dev golang-go libarchive-tools
 debhelper dpkg-dev fakeroot lintian ccache
 docker-registry apache2-utils openssl python3-jwt python3-cryptography curl
 openssh-server openssh-client"

if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install/deps.sh: run as root (there is no sudo here): su -c 'sh install/deps.sh'" >&2
		exit 2
	fi
	SUDO=sudo
else
	SUDO=
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	echo "install/deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing
else
	echo "install/deps.sh: all dependencies present"
fi
