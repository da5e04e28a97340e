#!/bin/bash
# Changed-block tracking: exact bits, superset over random workloads,
# across kill -9, punch/zero and loop-device discards, retention, and the
# backup chain with snapfsctl and the contrib script.
. "$TESTLIB"
BM="python3 $(dirname "$TESTLIB")/bitmaps.py"
seed_random "the random writes, punches and zeroings"

IMG=$WORK/img
MNT=$WORK/mnt
K=65536
make_image "$IMG" $((64 * 1024 * 1024 + 12288)) # 1025 blocks, the last short
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img

# --- tightness: exactly the blocks written, on a fresh store
[ "$(ls "$MNT/cbt")" = 1.bitmap ] || fail "fresh store: $(ls "$MNT/cbt")"
[ "$(stat -c %s "$MNT/cbt/1.bitmap")" = 129 ] || fail "bitmap size"
[ "$(stat -c %a "$MNT/cbt/1.bitmap")" = 444 ] || fail "bitmap mode"
[ -z "$($BM bits "$MNT/cbt/1.bitmap")" ] || fail "fresh bitmap not empty"
w() { dd if=/dev/urandom of="$L" bs=1 seek="$1" count="$2" conv=notrunc status=none; }
w $((5 * K)) $K                     # aligned: block 5
w $((10 * K + 500)) 100             # unaligned inside block 10
w $((20 * K - 4096)) 8192           # crossing: blocks 19 and 20
w $((1024 * K + 100)) 10            # the short last block
[ "$($BM bits "$MNT/cbt/1.bitmap")" = "5 10 19 20 1024" ] ||
	fail "tight bits: $($BM bits "$MNT/cbt/1.bitmap")"
fallocate --punch-hole -o $((30 * K)) -l 4096 "$L"
fallocate --zero-range -o $((40 * K + 8192)) -l $((K)) "$L"
[ "$($BM bits "$MNT/cbt/1.bitmap")" = "5 10 19 20 30 40 41 1024" ] ||
	fail "punch/zero bits: $($BM bits "$MNT/cbt/1.bitmap")"
# pages written through mmap are tracked once they reach the daemon
python3 - "$L" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 65536, mmap.MAP_SHARED, offset=60 * 65536)
m[100:200] = b"x" * 100
m.flush()
m.close()
os.close(fd)
PY
[ "$($BM bits "$MNT/cbt/1.bitmap")" = "5 10 19 20 30 40 41 60 1024" ] ||
	fail "mmap bits: $($BM bits "$MNT/cbt/1.bitmap")"
# rewriting identical bytes counts as written
exec 4<"$MNT/cbt/1.bitmap" # opened while generation 1 is the open one
A=$(snap "$MNT")
dd if="$L" of="$WORK/blk" bs=$K skip=50 count=1 status=none
dd if="$WORK/blk" of="$L" bs=$K seek=50 conv=notrunc status=none
[ "$($BM bits "$MNT/cbt/2.bitmap")" = 50 ] || fail "identical rewrite not tracked"
[ "$($BM bits "$MNT/cbt/1.bitmap")" = "5 10 19 20 30 40 41 60 1024" ] ||
	fail "closed bitmap changed"
cat <&4 >"$WORK/held"
exec 4<&-
cmp "$WORK/held" "$MNT/cbt/1.bitmap" || fail "a reader holding 1.bitmap saw generation 2"
[ "$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.snapfs.generation").decode())' "$MNT/snapshots/$A.img")" = 1 ] ||
	fail "snapshot generation xattr"
[ "$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.snapfs.closed_by").decode())' "$MNT/cbt/1.bitmap")" = "$A" ] ||
	fail "bitmap closed_by xattr"
"$SNAPFSCTL" changed "$MNT" --from "$A" >"$WORK/ext"
[ "$(cat "$WORK/ext")" = "$((50 * K)) $K" ] || fail "changed: $(cat "$WORK/ext")"
# (block 50 was never written: the identical rewrite wrote zeros)
"$SNAPFSCTL" changed "$MNT" --from "$A" --json | python3 -c '
import json, sys
assert json.load(sys.stdin) == [{"offset": 50 * 65536, "length": 65536, "zero": True}]'

# --- superset over random workloads, between snapshots and up to now
for round in 1 2 3; do
	U0=$(snap "$MNT")
	cp --sparse=always "$MNT/snapshots/$U0.img" "$WORK/before"
	G0=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.snapfs.generation").decode())' "$MNT/snapshots/$U0.img")
	random_writes "$L" 15 64
	fallocate --punch-hole -o $(((RANDOM % 1000) * 4096)) -l 200000 "$L"
	fallocate --zero-range -o $(((RANDOM % 1000) * 4096 + 7)) -l 100000 "$L"
	U1=$(snap "$MNT")
	G1=$((G0 + 1))
	$BM covers "$WORK/before" "$MNT/snapshots/$U1.img" $K "$MNT/cbt/$G1.bitmap" ||
		fail "round $round: bitmap misses a changed block"
	"$SNAPFSCTL" changed "$MNT" --from "$U0" --to "$U1" >"$WORK/ext"
	python3 - "$WORK/ext" "$WORK/before" "$MNT/snapshots/$U1.img" <<'PY' || fail "changed extents miss a change"
import sys
ext = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
a, b = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
covered = bytearray(len(a))
prev_end = -1
for off, ln in ext:
    assert off > prev_end, "not sorted and merged"
    prev_end = off + ln
    assert off + ln <= len(a), "not clipped"
    covered[off:off + ln] = b"\1" * ln
bad = [i for i in range(0, len(a), 4096) if a[i:i+4096] != b[i:i+4096] and not any(covered[i:i+4096])]
assert not bad, bad[:5]
PY
done

# --- kill -9 under writes, durability=full: no widening, still a superset
U=$(snap "$MNT")
cp --sparse=always "$MNT/snapshots/$U.img" "$WORK/base"
G=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.snapfs.generation").decode())' "$MNT/snapshots/$U.img")
(
	while :; do
		dd if=/dev/urandom of="$L" bs=4K seek=$((RANDOM % 16000)) count=$((RANDOM % 8 + 1)) \
			conv=notrunc oflag=direct status=none 2>/dev/null || exit 0
	done
) &
WRITER=$!
register_pid "$WRITER"
sleep 1
kill9_snapfs "$MNT"
kill "$WRITER" 2>/dev/null || true
wait "$WRITER" 2>/dev/null || true
start_snapfs "$IMG" "$MNT"
"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["clean_shutdown"] is False, s
assert all(g["widened"] is None for g in s["generations"]), s["generations"]'  ||
	fail "kill -9 with durability=full widened a bitmap"
$BM covers "$WORK/base" "$L" $K "$MNT/cbt/$((G + 1)).bitmap" ||
	fail "after kill -9 the open bitmap misses a changed block"

# --- a discard through a loop device is preserved and tracked
U=$(snap "$MNT")
SUM=$(sum "$MNT/snapshots/$U.img")
LOOP=$(losetup -f --show "$L")
register_loop "$LOOP"
blkdiscard -o $((200 * K)) -l $((4 * K)) "$LOOP"
detach_loop "$LOOP"
[ "$(sum "$MNT/snapshots/$U.img")" = "$SUM" ] || fail "discard changed the snapshot"
GO=$(generations "$MNT" | tail -1)
[ "$($BM bits "$MNT/cbt/$GO.bitmap")" = "200 201 202 203" ] ||
	fail "discard bits: $($BM bits "$MNT/cbt/$GO.bitmap")"
[ -z "$(dd if="$L" bs=$K skip=200 count=4 status=none | tr -d '\0' | head -c1)" ] ||
	fail "discarded range does not read zeros"

# --- the open bitmap cannot be removed; a closed one can
if rm "$MNT/cbt/$GO.bitmap" 2>/dev/null; then fail "removed the open bitmap"; fi
rm "$MNT/cbt/1.bitmap"
[ ! -e "$MNT/cbt/1.bitmap" ] || fail "rm of a closed bitmap"
# A closed generation 1: its bitmap is not needed from A on
"$SNAPFSCTL" changed "$MNT" --from "$A" >/dev/null || fail "changed needed generation 1"
rm "$MNT/cbt/2.bitmap"
if "$SNAPFSCTL" changed "$MNT" --from "$A" 2>"$WORK/err"; then fail "changed across a dropped bitmap"; fi
grep -q "generation 2 was dropped" "$WORK/err" || fail "$(cat "$WORK/err")"
stop_snapfs "$MNT"

# --- cbt_keep drops the oldest closed bitmaps, and changed names them
IMG2=$WORK/img2
make_image "$IMG2" 8M
start_snapfs "$IMG2" "$MNT" -o cbt_keep=2
declare -a S
for i in 0 1 2 3; do
	w $((i * K)) 10
	S[i]=$(snap "$MNT")
done
[ "$(generations "$MNT" | tr '\n' ' ')" = "3 4 5 " ] ||
	fail "cbt_keep=2 kept: $(generations "$MNT" | tr '\n' ' ')"
if "$SNAPFSCTL" changed "$MNT" --from "${S[0]}" 2>"$WORK/err"; then fail "changed used a dropped bitmap"; fi
grep -q "generation 2 was dropped" "$WORK/err" || fail "$(cat "$WORK/err")"
"$SNAPFSCTL" changed "$MNT" --from "${S[1]}" >/dev/null || fail "changed within kept bitmaps"
stop_snapfs "$MNT"

# --- an incremental backup chain, with snapfsctl and with the script
start_snapfs "$IMG" "$MNT"
S1=$(snap "$MNT")
"$SNAPFSCTL" backup "$MNT" "$S1" "$WORK/bk.img" --no-progress
cmp "$WORK/bk.img" "$MNT/snapshots/$S1.img" || fail "full backup differs"
python3 "$CONTRIB/snapfs-incremental.py" "$MNT" "$S1" "$WORK/py.img"
cmp "$WORK/py.img" "$MNT/snapshots/$S1.img" || fail "script full backup differs"
PREV=$S1
for i in 1 2 3; do
	random_writes "$L" 10 64
	fallocate --punch-hole -o $(((RANDOM % 1000) * 4096)) -l 300000 "$L"
	N=$(snap "$MNT")
	"$SNAPFSCTL" backup "$MNT" "$N" "$WORK/bk.img" --since "$PREV" --no-progress
	cmp "$WORK/bk.img" "$MNT/snapshots/$N.img" || fail "incremental $i differs"
	python3 "$CONTRIB/snapfs-incremental.py" "$MNT" "$N" "$WORK/py.img" --since "$PREV"
	cmp "$WORK/py.img" "$MNT/snapshots/$N.img" || fail "script incremental $i differs"
	PREV=$N
done
# a block device as DEST: every byte of a full copy, then increments
make_image "$WORK/dev.img" 80M
DEV=$(losetup -f --show "$WORK/dev.img")
register_loop "$DEV"
register_file "$DEV.snapfs-backup"
dd if=/dev/urandom of="$DEV" bs=1M count=80 status=none # old contents
"$SNAPFSCTL" backup "$MNT" "$S1" "$DEV" --no-progress
cmp -n $((64 * 1024 * 1024 + 12288)) "$DEV" "$MNT/snapshots/$S1.img" || fail "full backup to a block device"
"$SNAPFSCTL" backup "$MNT" "$PREV" "$DEV" --since "$S1" --no-progress
cmp -n $((64 * 1024 * 1024 + 12288)) "$DEV" "$MNT/snapshots/$PREV.img" || fail "incremental backup to a block device"
detach_loop "$DEV"
rm -f "$DEV.snapfs-backup"
# a DEST that does not hold --since is refused, and left alone
BEFORE=$(sum "$WORK/bk.img")
if "$SNAPFSCTL" backup "$MNT" "$PREV" "$WORK/bk.img" --since "$S1" 2>"$WORK/err"; then
	fail "backup --since accepted the wrong base"
fi
grep -q "does not hold snapshot $S1" "$WORK/err" || fail "$(cat "$WORK/err")"
[ "$(sum "$WORK/bk.img")" = "$BEFORE" ] || fail "refused backup changed DEST"
# an interrupted backup leaves DEST marked incomplete
sed -i 's/state complete/state incomplete/' "$WORK/bk.img.snapfs-backup"
if "$SNAPFSCTL" backup "$MNT" "$PREV" "$WORK/bk.img" --since "$PREV" 2>/dev/null; then
	fail "incomplete DEST accepted"
fi

# --- an offline change drops the snapshots and widens the open generation
stop_snapfs "$MNT"
dd if=/dev/urandom of="$IMG" bs=4K count=1 seek=7 conv=notrunc status=none
start_snapfs "$IMG" "$MNT"
[ -z "$(ls "$MNT/snapshots")" ] || fail "snapshots kept after an offline change"
GO=$(generations "$MNT" | tail -1)
$BM ones "$MNT/cbt/$GO.bitmap" 1025 || fail "open generation not all ones"
"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
g = s["generations"][-1]
assert g["widened"] and "offline change" in g["widened"], g
assert any(e["kind"] == "offline-change" for e in s["events"]), s["events"]' ||
	fail "status does not say why"
stop_snapfs "$MNT"

# --- kill -9 (the same boot) leaves the bits exact in both durability
# modes; a machine crash (another boot id, cbt.map lost) over-reports
# whole 64 MiB write-intent regions under durability=full and widens
# under durability=process
power_loss() { # STORE: what a reboot after a power loss shows the daemon
	rm -f "$1/cbt.map"
	python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/index.db")
db.execute("UPDATE meta SET value=? WHERE key=?", ("another-boot", "run_boot_id"))
db.commit()' "$1"
}
for dur in full process; do
	start_snapfs "$IMG" "$MNT" -o durability=$dur
	snap "$MNT" >/dev/null
	GO=$(generations "$MNT" | tail -1)
	w $((3 * K)) 10
	w $((700 * K)) $((2 * K))
	kill9_snapfs "$MNT"
	start_snapfs "$IMG" "$MNT"
	[ "$($BM bits "$MNT/cbt/$GO.bitmap")" = "3 700 701" ] ||
		fail "durability=$dur: kill -9 bits: $($BM bits "$MNT/cbt/$GO.bitmap")"
	"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
g = [g for g in json.load(sys.stdin)["generations"] if g["generation"] == int(sys.argv[1])]
assert g and g[0]["widened"] is None, g' "$GO" ||
		fail "durability=$dur: kill -9 widened the bitmap"
	stop_snapfs "$MNT"
	start_snapfs "$IMG" "$MNT" -o durability=$dur
	w $((1024 * K)) 10
	kill9_snapfs "$MNT"
	power_loss "$IMG.snapfs"
	start_snapfs "$IMG" "$MNT"
	if [ $dur = full ]; then
		# blocks 3, 700, 701 were sealed at the clean stop; block 1024
		# is region 1 (blocks 1024..), recorded before the write
		[ "$($BM bits "$MNT/cbt/$GO.bitmap")" = "3 700 701 1024" ] ||
			fail "power loss bits: $($BM bits "$MNT/cbt/$GO.bitmap")"
	else
		$BM ones "$MNT/cbt/$GO.bitmap" 1025 ||
			fail "process-mode machine crash not widened"
		"$SNAPFSCTL" status "$MNT" |
			grep -q "all ones: widened after a machine crash" ||
			fail "status does not say the generation was widened"
	fi
	stop_snapfs "$MNT"
done
echo "change tracking: ok"
