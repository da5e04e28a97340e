#!/bin/bash
# The snapfs demo: installs what is needed, builds, makes a small image,
# mounts it, writes, takes a snapshot, writes again, and shows the tree,
# that the snapshot kept the old bytes, and which blocks each generation's
# bitmap marks.  Run as root (FUSE mount).  Leaves nothing behind: the
# mount and the temporary directory go, even when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

./contrib/deps.sh
if [ ! -x build/snapfs ] || [ ! -x build/snapfsctl ]; then
	echo "== building snapfs (build/)"
	./autogen.sh >/dev/null
	mkdir -p build
	(cd build && ../configure -q && make -j"$(nproc)" >/dev/null)
fi
SNAPFS=$PWD/build/snapfs
SNAPFSCTL=$PWD/build/snapfsctl

DIR=$(mktemp -d /tmp/snapfs-demo.XXXXXX)
MNT=$DIR/mnt
cleanup() {
	# the demo unmounts itself when all goes well: only what is left
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || true
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
mkdir "$MNT"

step() { printf '\n== %s\n' "$*"; }
run() { # prints a command, then runs it
	printf '$ %s\n' "$*" | sed "s|$PWD/build/||g; s|$DIR|\$DIR|g"
	"$@"
}
first_bytes() { # FILE OFFSET: 16 bytes of FILE at OFFSET, as text
	dd if="$1" bs=16 count=1 skip=$(($2 / 16)) status=none | tr -c '[:print:]' '.'
	echo
}
bits() { # BITMAP: its first bytes in hex, and the blocks it marks
	printf ' %s...\n' "$(od -An -tx1 -N8 "$1" | tr -s ' \n' ' ')"
	python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
marked = [i for i in range(len(b) * 8) if b[i // 8] >> (i % 8) & 1]
print("  marks %d of %d blocks: %s" % (len(marked), len(b) * 8,
      "%d..%d" % (marked[0], marked[-1]) if marked else "none"))
PY
}

step "a 64 MiB image, mounted with snapfs (64 KiB chunks and CBT blocks)"
truncate -s 64M "$DIR/disk.img"
run "$SNAPFS" "$DIR/disk.img" "$MNT"
run ls -l "$MNT"

step "write 4 MiB of 'monday' into live.img"
head -c 4M < <(yes 'monday ') | dd of="$MNT/live.img" conv=notrunc,fsync status=none
first_bytes "$MNT/live.img" $((1 << 20))
before=$(sha256sum <"$MNT/live.img")

step "take a snapshot: generation 1 closes, generation 2 opens"
echo "\$ snapfsctl create \$DIR/mnt"
uuid=$("$SNAPFSCTL" create "$MNT")
echo "$uuid"

step "overwrite 1 MiB at offset 1 MiB with 'tuesday' (copy-on-write)"
head -c 1M < <(yes 'tuesday') |
	dd of="$MNT/live.img" bs=1M seek=1 conv=notrunc,fsync status=none
printf '%-62s' "live.img at 1 MiB:"
first_bytes "$MNT/live.img" $((1 << 20))
printf '%-62s' "snapshots/$uuid.img at 1 MiB:"
first_bytes "$MNT/snapshots/$uuid.img" $((1 << 20))

step "the tree"
run ls -lR "$MNT"

step "the snapshot still holds the old bytes"
snap=$(sha256sum <"$MNT/snapshots/$uuid.img")
live=$(sha256sum <"$MNT/live.img")
echo "live.img before the snapshot: ${before%% *}"
echo "the snapshot now:             ${snap%% *}"
echo "live.img now:                 ${live%% *}"
[ "$snap" = "$before" ] || { echo "demo: the snapshot changed" >&2; exit 1; }
[ "$live" != "$before" ] || { echo "demo: live.img did not change" >&2; exit 1; }

step "changed-block bitmaps: one bit per 64 KiB block, LSB first"
echo "cbt/1.bitmap (the first 4 MiB written):"
bits "$MNT/cbt/1.bitmap"
echo "cbt/2.bitmap (the 1 MiB since the snapshot):"
bits "$MNT/cbt/2.bitmap"
run "$SNAPFSCTL" changed "$MNT" --from "$uuid"
[ "$("$SNAPFSCTL" changed "$MNT" --from "$uuid")" = "1048576 1048576" ] ||
	{ echo "demo: changed does not report the 1 MiB written" >&2; exit 1; }

step "snapfsctl list and status"
run "$SNAPFSCTL" list "$MNT"
run "$SNAPFSCTL" status "$MNT"

step "unmount"
run fusermount3 -u "$MNT"

echo
echo "demo: live.img written and snapshotted, then changed; the snapshot" \
	"kept its bytes, and cbt/2.bitmap marks exactly the 16 blocks written" \
	"since."
