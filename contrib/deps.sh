#!/bin/bash
# Installs, from Debian's packages, what snapfs needs to build, test and
# run.  Does nothing when everything is already there.
set -euo pipefail

PKGS=(
	build-essential autoconf automake pkg-config	# the build
	libfuse3-dev fuse3				# FUSE
	liburing-dev					# the I/O engine
	libsqlite3-dev					# the diff store's index
	libcriterion-dev				# unit tests
	fio e2fsprogs util-linux procps python3		# integration tests
	ceph-common					# rbd merge-diff, which
							# export-diff's streams
							# must satisfy
	clang libclang-rt-dev				# libFuzzer targets and
							# their runtime (a
							# recommend of clang's)
	clang-format shellcheck				# the hygiene checks
	jq gnuplot-nox					# make bench, and its
	qemu-system-common qemu-utils			# peer (qemu-storage-daemon,
							# qemu-img)
	dpkg-dev debhelper bash-completion systemd	# the package and its test
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
