#!/bin/bash
# snapfsctl resize: live.img grows while snapshots exist; they keep their
# size and bytes, the new range reads as zeros and is changed in the open
# generation, every bitmap takes the new size, the next mount accepts it;
# shrinking, a size that is not whole chunks and junk are refused with
# nothing changed; an ext4 on live.img grows with resize2fs; a block
# device must be grown first; a revert to a snapshot from before the
# growth zeroes the range it never had.  With fault points: a growth of
# the file that fails changes nothing, one killed before it reached the
# file leaves the old size, which the next mount takes.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 16M
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
random_writes "$L" 20 16
A=$(snap "$MNT")
SUM_A=$(sum "$MNT/snapshots/$A.img")
random_writes "$L" 5 16
cp "$L" "$WORK/before"
GEN=$(generations "$MNT" | tail -1)

# refused: smaller, not whole chunks, junk; nothing changes
for bad in 8M 16777217 12M+ 0 -1; do
	"$SNAPFSCTL" resize "$MNT" "$bad" 2>"$WORK/err" && fail "resize to $bad succeeded"
	[ "$(wc -l <"$WORK/err")" = 1 ] || fail "resize $bad: not one line: $(cat "$WORK/err")"
done
grep -q "shrinking is refused" <("$SNAPFSCTL" resize "$MNT" 8M 2>&1) ||
	fail "shrinking: no clear message"
[ "$(stat -c %s "$L")" = $((16 << 20)) ] || fail "a refused resize changed the size"
cmp -s "$L" "$WORK/before" || fail "a refused resize changed live.img"

# a closed bitmap open (and read) across the growth: its length stays
exec 8<"$MNT/cbt/1.bitmap"
head -c 1 <&8 >/dev/null
"$SNAPFSCTL" backup "$MNT" "$A" "$WORK/backup" --no-progress || fail "backup of $A"
"$SNAPFSCTL" resize "$MNT" 40M || fail "resize to 40M"
python3 -c 'import os, sys; b = os.pread(8, 1 << 20, 0); sys.exit(len(b) != 80 or any(b[32:]))' ||
	fail "a bitmap open across the growth does not read as one of the new size"
exec 8<&-
[ "$(stat -c %s "$L")" = $((40 << 20)) ] || fail "live.img is not 40 MiB"
[ "$(stat -c %s "$IMG")" = $((40 << 20)) ] || fail "the backing file was not extended"
[ "$(stat -c %s "$MNT/snapshots/$A.img")" = $((16 << 20)) ] ||
	fail "the snapshot did not keep its size"
[ "$(sum "$MNT/snapshots/$A.img")" = "$SUM_A" ] || fail "the snapshot changed"
cmp -s <(head -c 16M "$L") "$WORK/before" || fail "the old range changed"
[ "$(tail -c 24M "$L" | tr -d '\0' | wc -c)" = 0 ] || fail "the new range is not zeros"
# a read past a snapshot's end ends there, O_DIRECT too
[ "$(dd if="$MNT/snapshots/$A.img" bs=1M skip=15 iflag=direct status=none | wc -c)" = $((1 << 20)) ] ||
	fail "a snapshot read went past its end"
for b in "$MNT"/cbt/*.bitmap; do
	[ "$(stat -c %s "$b")" = $((40 * 16 / 8)) ] || fail "$b is not of the new size"
done
# the new blocks are changed in the open generation
truncate -s 40M "$WORK/before"
cmp -s "$WORK/before" "$L" || fail "live.img is not the old image plus zeros"
python3 - "$MNT/cbt/$GEN.bitmap" <<'EOF' || fail "the new range is not marked changed"
import sys
data = open(sys.argv[1], "rb").read()
missing = [b for b in range(256, 640) if not data[b // 8] >> (b % 8) & 1]
sys.exit(1 if missing else 0)
EOF
"$SNAPFSCTL" changed "$MNT" --from "$A" | awk -v s=$((16 << 20)) -v e=$((40 << 20)) '
	{ for (o = $1; o < $1 + $2; o += 65536) if (o >= s) seen[o] = 1 }
	END { for (o = s; o < e; o += 65536) if (!(o in seen)) exit 1 }' ||
	fail "changed --from misses the new range"
"$SNAPFSCTL" status "$MNT" | grep -q "resize: live.img grown from 16777216 to 41943040 bytes" ||
	fail "no resize event"

# writes into the new range, a snapshot of the new size, a remount
dd if=/dev/urandom of="$L" bs=1M seek=30 count=2 conv=notrunc status=none
B=$(snap "$MNT")
SUM_B=$(sum "$MNT/snapshots/$B.img")
[ "$(stat -c %s "$MNT/snapshots/$B.img")" = $((40 << 20)) ] || fail "a new snapshot is not of the new size"
# an incremental backup across the growth extends its copy
"$SNAPFSCTL" backup "$MNT" "$B" "$WORK/backup" --since "$A" --no-progress ||
	fail "backup --since across the growth"
cmp -s "$WORK/backup" "$MNT/snapshots/$B.img" || fail "the backup is not $B"
stop_snapfs "$MNT"
start_snapfs "$IMG" "$MNT"
[ "$(stat -c %s "$L")" = $((40 << 20)) ] || fail "the remount lost the size"
[ "$(sum "$MNT/snapshots/$A.img")" = "$SUM_A" ] || fail "$A changed across the remount"
[ "$(sum "$MNT/snapshots/$B.img")" = "$SUM_B" ] || fail "$B changed across the remount"

# back to the snapshot from before the growth: its bytes, then zeros
"$SNAPFSCTL" revert "$MNT" "$A" --no-progress || fail "revert to $A"
cmp -s <(head -c 16M "$L") "$MNT/snapshots/$A.img" || fail "revert: the old range is not $A"
[ "$(tail -c 24M "$L" | tr -d '\0' | wc -c)" = 0 ] || fail "revert: the new range is not zeros"
[ "$(sum "$MNT/snapshots/$B.img")" = "$SUM_B" ] || fail "revert changed $B"
stop_snapfs "$MNT"

# a size changed while unmounted is still refused
truncate -s 48M "$IMG"
"$SNAPFS" -f "$IMG" "$MNT" 2>"$WORK/err" && fail "mounted after an offline size change"
grep -q "size changed" "$WORK/err" || fail "offline size change: said $(cat "$WORK/err")"
truncate -s 40M "$IMG"

# ext4 on live.img grows with it
rm -rf "$IMG" "$IMG.snapfs"
make_image "$IMG" 64M
mkfs.ext4 -q -F "$IMG"
start_snapfs "$IMG" "$MNT"
S=$(snap "$MNT")
"$SNAPFSCTL" resize "$MNT" 128M || fail "resize of the ext4 image"
e2fsck -fy "$L" >/dev/null 2>&1 || true
resize2fs "$L" >/dev/null 2>&1 || fail "resize2fs on live.img"
e2fsck -fn "$L" >/dev/null 2>&1 || fail "e2fsck after resize2fs"
e2fsck -fn "$MNT/snapshots/$S.img" >/dev/null 2>&1 || fail "e2fsck of the snapshot"
blocks=$(dumpe2fs -h "$L" 2>/dev/null | sed -n 's/^Block count: *//p')
bsize=$(dumpe2fs -h "$L" 2>/dev/null | sed -n 's/^Block size: *//p')
[ $((blocks * bsize)) = $((128 << 20)) ] || fail "ext4 did not grow to 128 MiB"
stop_snapfs "$MNT"

# a block device: grown first (here a loop device, then losetup -c)
rm -rf "$IMG" "$IMG.snapfs"
make_image "$IMG" 16M
DEV=$(losetup -f --show "$IMG")
register_loop "$DEV"
STORE=$WORK/devstore
start_snapfs "$DEV" "$MNT" -o store="$STORE"
"$SNAPFSCTL" resize "$MNT" 32M 2>"$WORK/err" && fail "a block device grew past its size"
grep -q "grow it first" "$WORK/err" || fail "block device: said $(cat "$WORK/err")"
S=$(snap "$MNT")
# the device's new range holds old bytes (another volume's, say)
head -c 16M /dev/urandom >>"$IMG"
losetup -c "$DEV"
"$SNAPFSCTL" resize "$MNT" 32M || fail "resize of the grown block device"
[ "$(stat -c %s "$L")" = $((32 << 20)) ] || fail "live.img on the device is not 32 MiB"
[ "$(tail -c 16M "$L" | tr -d '\0' | wc -c)" = 0 ] ||
	fail "the device's new range shows what it held"
# writes there cost the older snapshot nothing: it never had the range
diff_bytes() {
	"$SNAPFSCTL" list "$MNT" --json |
		python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["diff_bytes"])'
}
before=$(diff_bytes)
dd if=/dev/urandom of="$L" bs=1M seek=20 count=4 conv=notrunc,fsync status=none
[ "$(diff_bytes)" = "$before" ] || fail "writes past $S's size were preserved for it"
stop_snapfs "$MNT"
start_snapfs "$DEV" "$MNT" -o store="$STORE"
stop_snapfs "$MNT"
losetup -d "$DEV"

if "$SNAPFS" --version | grep -q "fault injection"; then
	rm -rf "$IMG" "$IMG.snapfs"
	make_image "$IMG" 16M
	# the file's growth fails: nothing changed, and the store agrees
	SNAPFS_FAULT=backing.grow:1:EIO start_snapfs "$IMG" "$MNT"
	S=$(snap "$MNT")
	"$SNAPFSCTL" resize "$MNT" 32M 2>/dev/null && fail "resize succeeded through an I/O error"
	[ "$(stat -c %s "$L")" = $((16 << 20)) ] || fail "a failed resize changed live.img's size"
	[ "$(stat -c %s "$IMG")" = $((16 << 20)) ] || fail "a failed resize left the file longer"
	# changes up to a snapshot end at its size, whatever came later
	dd if=/dev/urandom of="$L" bs=1M seek=15 count=1 conv=notrunc status=none
	B=$(snap "$MNT")
	"$SNAPFSCTL" resize "$MNT" 32M || fail "resize after the failed one"
	"$SNAPFSCTL" changed "$MNT" --from "$S" --to "$B" |
		awk -v s=$((16 << 20)) '$1 + $2 > s { exit 1 }' ||
		fail "changed --to a snapshot reaches past its size"
	stop_snapfs "$MNT"
	truncate -s 16M "$IMG"
	rm -rf "$IMG.snapfs"
	# killed after the store took the new size, before the file did
	SNAPFS_FAULT=backing.grow:1:KILL start_snapfs "$IMG" "$MNT"
	S=$(snap "$MNT")
	"$SNAPFSCTL" resize "$MNT" 32M 2>/dev/null && fail "the daemon survived its kill"
	kill9_snapfs "$MNT"
	start_snapfs "$IMG" "$MNT"
	[ "$(stat -c %s "$L")" = $((16 << 20)) ] || fail "after the kill live.img is not 16 MiB"
	"$SNAPFSCTL" list "$MNT" | grep -q "$S" || fail "the snapshot is gone after the kill"
	"$SNAPFSCTL" resize "$MNT" 32M || fail "resize after the kill"
	stop_snapfs "$MNT"
	start_snapfs "$IMG" "$MNT"
	[ "$(stat -c %s "$L")" = $((32 << 20)) ] || fail "the size did not stay"
	stop_snapfs "$MNT"
fi
echo "resize: ok"
