#!/bin/bash
# The snapfs demo: installs what is needed, builds, makes a small image,
# mounts it, writes, takes a snapshot, writes again, and shows the tree
# and that the snapshot kept the old bytes.  Run as root (FUSE mount).
set -euo pipefail
cd "$(dirname "$0")/.."

./contrib/deps.sh
if [ ! -x build/snapfs ]; then
	./autogen.sh >/dev/null
	mkdir -p build
	(cd build && ../configure -q && make -j"$(nproc)" >/dev/null)
fi
SNAPFS=$PWD/build/snapfs
SNAPFSCTL=$PWD/build/snapfsctl

DIR=$(mktemp -d /tmp/snapfs-demo.XXXXXX)
trap 'fusermount3 -u "$DIR/mnt" 2>/dev/null; rm -rf "$DIR"' EXIT
mkdir "$DIR/mnt"
truncate -s 64M "$DIR/disk.img"

set -x
"$SNAPFS" "$DIR/disk.img" "$DIR/mnt"
dd if=/dev/urandom of="$DIR/mnt/live.img" bs=1M count=4 conv=notrunc,fsync status=none
sha256sum "$DIR/mnt/live.img"
uuid=$("$SNAPFSCTL" create "$DIR/mnt")
dd if=/dev/urandom of="$DIR/mnt/live.img" bs=1M count=2 conv=notrunc,fsync status=none
ls -lR "$DIR/mnt"
sha256sum "$DIR/mnt/live.img" "$DIR/mnt/snapshots/$uuid.img"
"$SNAPFSCTL" list "$DIR/mnt"
"$SNAPFSCTL" status "$DIR/mnt"
fusermount3 -u "$DIR/mnt"
