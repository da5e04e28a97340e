#!/bin/bash
# snapfsctl revert: live.img becomes a snapshot again, byte for byte, and
# every snapshot keeps its bytes; the copied blocks are changed in the
# open generation; refused, with nothing changed, while live.img is open
# (a process, a loop device) or for an unknown uuid; an ext4 on live.img
# reverted is the file system it was; the cost follows what changed, not
# the image (a 1 TiB sparse image after a few MiB of changes).
. "$TESTLIB"
BM="python3 $(dirname "$TESTLIB")/bitmaps.py"
seed_random

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 64M
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img

# three states of the image, a snapshot of each
random_writes "$L" 20 64
A=$(snap "$MNT")
random_writes "$L" 20 64
B=$(snap "$MNT")
random_writes "$L" 20 64
fallocate --punch-hole -o 1M -l 3M "$L"
C=$(snap "$MNT")
random_writes "$L" 20 64
declare -A SUMS=([$A]=$(sum "$MNT/snapshots/$A.img")
	[$B]=$(sum "$MNT/snapshots/$B.img") [$C]=$(sum "$MNT/snapshots/$C.img"))
[ "${SUMS[$A]}" != "$(sum "$L")" ] || fail "the writes changed nothing"
check_snapshots() {
	for u in "$A" "$B" "$C"; do
		[ "$(sum "$MNT/snapshots/$u.img")" = "${SUMS[$u]}" ] ||
			fail "$1: snapshot $u changed"
	done
}

# refused while open by a process, and by a loop device: nothing changed
before=$(sum "$L")
exec 7<"$L"
out=$("$SNAPFSCTL" revert "$MNT" "$A" 2>&1) && fail "revert ran with live.img open"
echo "$out" | grep -q "live.img is open" || fail "open: said '$out'"
exec 7<&-
LOOP=$(losetup -f --show -r "$L")
register_loop "$LOOP"
"$SNAPFSCTL" revert "$MNT" "$A" 2>/dev/null && fail "revert ran with a loop device on live.img"
losetup -d "$LOOP"
[ "$(sum "$L")" = "$before" ] || fail "a refused revert changed live.img"
out=$("$SNAPFSCTL" revert "$MNT" 12345678-1234-4234-8234-123456789abc 2>&1) &&
	fail "revert to an unknown snapshot succeeded"
echo "$out" | grep -q "no snapshot" || fail "unknown uuid: said '$out'"
rc=0
"$SNAPFSCTL" revert "$MNT" not-a-uuid 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "a malformed uuid exited $rc, not 2"
[ "$(sum "$L")" = "$before" ] || fail "a refused revert changed live.img"

# to the oldest, then the newest, then the middle one
for u in "$A" "$C" "$B"; do
	gen=$(generations "$MNT" | tail -1)
	cp --sparse=always "$L" "$WORK/before"
	"$SNAPFSCTL" revert "$MNT" "$u" --no-progress || fail "revert to $u"
	[ "$(sum "$L")" = "${SUMS[$u]}" ] || fail "live.img is not snapshot $u"
	check_snapshots "after the revert to $u"
	# every block the revert changed is marked in the open generation
	$BM covers "$WORK/before" "$L" 65536 "$MNT/cbt/$gen.bitmap" ||
		fail "the revert to $u changed blocks its bitmap misses"
	random_writes "$L" 5 64
done
"$SNAPFSCTL" status "$MNT" | grep -q "revert: live.img reverted to snapshot $B" ||
	fail "status shows no revert event"

# progress: a bar on a terminal, lines with --progress elsewhere, none by
# default off a terminal
dd if=/dev/urandom of="$L" bs=1M count=8 conv=notrunc status=none
bar=$(script -qec "$SNAPFSCTL revert $MNT $A" /dev/null | tr '\r' '\n')
echo "$bar" | grep -q "MiB 100%" || fail "no progress bar on a terminal: $bar"
dd if=/dev/urandom of="$L" bs=1M count=8 conv=notrunc status=none
"$SNAPFSCTL" revert "$MNT" "$A" --progress 2>"$WORK/progress"
grep -q "^copied [0-9]* of [0-9]* bytes (100%)" "$WORK/progress" ||
	fail "revert --progress: $(cat "$WORK/progress")"
"$SNAPFSCTL" revert "$MNT" "$A" 2>"$WORK/progress"
[ ! -s "$WORK/progress" ] || fail "progress off a terminal: $(cat "$WORK/progress")"
[ "$(sum "$L")" = "${SUMS[$A]}" ] || fail "live.img is not snapshot $A"

# a file system on live.img, reverted, is the one in the snapshot
stop_snapfs "$MNT"
rm -rf "$IMG" "$IMG.snapfs"
make_image "$IMG" 64M
mkfs.ext4 -q -F "$IMG"
start_snapfs "$IMG" "$MNT"
mkdir -p "$WORK/fs"
LOOP=$(losetup -f --show "$L")
register_loop "$LOOP"
mount "$LOOP" "$WORK/fs"
register_mount "$WORK/fs"
seq 100000 >"$WORK/fs/kept"
umount "$WORK/fs"
S=$(snap "$MNT")
mount "$LOOP" "$WORK/fs"
rm "$WORK/fs/kept"
head -c 5M /dev/urandom >"$WORK/fs/later"
umount "$WORK/fs"
losetup -d "$LOOP"
"$SNAPFSCTL" revert "$MNT" "$S" --no-progress || fail "revert of the ext4 image"
e2fsck -fn "$L" >/dev/null 2>&1 || fail "e2fsck after the revert"
LOOP=$(losetup -f --show "$L")
register_loop "$LOOP"
mount -o ro "$LOOP" "$WORK/fs"
cmp -s "$WORK/fs/kept" <(seq 100000) || fail "the file of the snapshot is not back"
[ ! -e "$WORK/fs/later" ] || fail "the file written after the snapshot is still there"
umount "$WORK/fs"
losetup -d "$LOOP"
stop_snapfs "$MNT"

# time follows the changes: 1 TiB sparse, a snapshot, 8 MiB of 4 KiB writes
rm -rf "$IMG" "$IMG.snapfs"
make_image "$IMG" 1T
start_snapfs "$IMG" "$MNT"
S=$(snap "$MNT")
python3 - "$L" <<'EOF'
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
r = random.Random(1)
for block in r.sample(range(1 << 28), 2048):
    os.pwrite(fd, os.urandom(4096), block * 4096)
os.close(fd)
EOF
t0=$(date +%s%N)
"$SNAPFSCTL" revert "$MNT" "$S" --no-progress || fail "revert on 1 TiB"
t1=$(date +%s%N)
note "revert of 2048 scattered 4 KiB blocks on a 1 TiB image: $(((t1 - t0) / 1000000)) ms"
# a whole pass over 1 TiB would read 2^28 chunks: the revert must have
# copied the 8 MiB and nothing else
"$SNAPFSCTL" status "$MNT" | grep -q "reverted to snapshot $S: 8388608 bytes copied" ||
	fail "the revert on 1 TiB did not copy exactly the 8 MiB that changed"
[ "$(du -k "$IMG" | cut -f1)" -lt 65536 ] || fail "the revert filled the sparse image"
stop_snapfs "$MNT"

# an image whose size is not a multiple of 8: its last bytes are data
rm -rf "$IMG" "$IMG.snapfs"
make_image "$IMG" 1000001
printf '\253' | dd of="$IMG" bs=1 seek=1000000 conv=notrunc status=none
start_snapfs "$IMG" "$MNT"
S=$(snap "$MNT")
head -c 400 /dev/urandom | dd of="$L" bs=1 seek=999500 conv=notrunc status=none
"$SNAPFSCTL" revert "$MNT" "$S" --no-progress || fail "revert of the odd-sized image"
cmp -s "$L" "$MNT/snapshots/$S.img" || fail "the odd-sized image is not $S after the revert"
stop_snapfs "$MNT"
echo "revert: ok"
