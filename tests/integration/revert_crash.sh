#!/bin/bash
# A revert killed part way (SIGKILL at its Nth copy, a fault point) is
# finished by the next mount: live.img is the snapshot, byte for byte,
# every snapshot kept its bytes, the store checks clean after the kill,
# the bitmaps cover every block the revert changed, and status says the
# mount finished it.  Every crash point of one revert, from the same
# starting state each time; at every third one the finishing mount (which
# mounts first, live.img closed until the revert is done) is killed too,
# and the mount after it finishes the job; a read-only mount refuses to
# serve the half-reverted image.
. "$TESTLIB"
"$SNAPFS" --version | grep -q "fault injection" ||
	{ echo "SKIP: snapfs built without --enable-fault-injection"; exit 77; }
BM="python3 $(dirname "$TESTLIB")/bitmaps.py"
seed_random

IMG=$WORK/img
MNT=$WORK/mnt
STORE=$WORK/store
make_image "$IMG" 32M
start_snapfs "$IMG" "$MNT" -o store="$STORE"
L=$MNT/live.img
random_writes "$L" 20 32
S=$(snap "$MNT")
random_writes "$L" 12 32
T=$(snap "$MNT")
# scattered writes: many extents to copy back, a crash point each
for ((i = 0; i < 24; i++)); do
	dd if=/dev/urandom of="$L" bs=4K seek=$((RANDOM % 7800)) \
		count=$((RANDOM % 300 + 1)) conv=notrunc status=none
done
SUM_S=$(sum "$MNT/snapshots/$S.img")
SUM_T=$(sum "$MNT/snapshots/$T.img")
cp --sparse=always "$L" "$WORK/before"
GEN=$(generations "$MNT" | tail -1)
stop_snapfs "$MNT"
cp -a --sparse=always "$IMG" "$WORK/img.0"
cp -a "$STORE" "$WORK/store.0"

# restore: the state before the revert, unmounted
restore() {
	cp --sparse=always --preserve=timestamps "$WORK/img.0" "$IMG"
	rm -rf "$STORE"
	cp -a "$WORK/store.0" "$STORE"
}

# check WHAT: live.img is S, both snapshots whole, the bitmap covers it
check() {
	[ "$(sum "$L")" = "$SUM_S" ] || fail "$1: live.img is not snapshot $S"
	[ "$(sum "$MNT/snapshots/$S.img")" = "$SUM_S" ] || fail "$1: $S changed"
	[ "$(sum "$MNT/snapshots/$T.img")" = "$SUM_T" ] || fail "$1: $T changed"
	$BM covers "$WORK/before" "$L" 65536 "$MNT/cbt/$GEN.bitmap" >/dev/null ||
		fail "$1: the bitmap misses blocks the revert changed"
}

n=0
for ((point = 1; ; point++)); do
	restore
	SNAPFS_FAULT=revert.copy:$point:KILL start_snapfs "$IMG" "$MNT" -o store="$STORE"
	if "$SNAPFSCTL" revert "$MNT" "$S" --no-progress 2>/dev/null; then
		# past the last copy: the revert ran whole
		check "no crash"
		stop_snapfs "$MNT"
		break
	fi
	kill9_snapfs "$MNT"
	"$SNAPFSCTL" check "$STORE" >/dev/null || fail "point $point: store check"
	if ((point == 1)); then # read-only, it is not served half done
		"$SNAPFS" -f -o ro,store="$STORE" "$IMG" "$MNT" 2>"$WORK/err" &&
			fail "a read-only mount served a half-reverted live.img"
		grep -q "mount read-write once to finish it" "$WORK/err" ||
			fail "read-only mount: said $(cat "$WORK/err")"
	fi
	if ((point % 3 == 0)); then
		# the finishing mount dies too, after it mounted: a long
		# finish never holds a boot's mount back
		SNAPFS_FAULT=revert.copy:2:KILL "$SNAPFS" -o store="$STORE" \
			"$IMG" "$MNT" 2>>"$WORK/daemon.log" ||
			fail "point $point: not mounted before the finish"
		for ((i = 0; i < 500; i++)); do
			pgrep -f "store=$STORE" >/dev/null || break
			sleep 0.02
		done
		fusermount3 -u -z "$MNT" 2>/dev/null || true
	fi
	start_snapfs "$IMG" "$MNT" -o store="$STORE"
	check "point $point"
	"$SNAPFSCTL" status "$MNT" |
		grep -q "live.img reverted to snapshot $S at mount" ||
		fail "point $point: status shows no revert finished at mount"
	stop_snapfs "$MNT"
	n=$((n + 1))
done
((n >= 10)) || fail "only $n crash points"
echo "revert_crash: $n crash points, each finished at the next mount"
