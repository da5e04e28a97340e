#!/bin/bash
# contrib/snapfs-nightly as the timer runs it: a full copy, then
# incremental ones, each equal to live.img at its snapshot; between runs
# no snapshot is held (each becomes a bookmark) and the oldest bookmarks
# beyond KEEP go; a snapshot the user took is left alone; a DEST whose
# bookmark is gone gets a full copy; a failed run leaves no snapshot.
. "$TESTLIB"
seed_random

IMG=$WORK/img
MNT=$WORK/mnt
DEST=$WORK/backup/vm.img
NIGHTLY=$CONTRIB/snapfs-nightly
make_image "$IMG" $((32 * 1024 * 1024))
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
random_writes "$L" 30 32
MINE=$(snap "$MNT")

bookmarks() { "$SNAPFSCTL" bookmarks "$MNT" | tail -n +2 | cut -d' ' -f1; }
for run in 1 2 3 4; do
	out=$("$NIGHTLY" "$MNT" "$DEST" 2) || fail "run $run: $out"
	case $run in
	1) echo "$out" | grep -q "^full backup" || fail "run 1: $out" ;;
	*) echo "$out" | grep -q "^incremental backup" || fail "run $run: $out" ;;
	esac
	cmp -s "$DEST" "$L" || fail "run $run: the backup differs from live.img"
	[ "$(snapshot_uuids "$MNT")" = "$MINE" ] ||
		fail "run $run: snapshots left: $(snapshot_uuids "$MNT" | tr '\n' ' ')"
	[ "$(bookmarks | wc -l)" = $((run < 2 ? run : 2)) ] ||
		fail "run $run: bookmarks: $(bookmarks | tr '\n' ' ')"
	[ "$(bookmarks | tail -n 1)" = "$(sed -n 's/^uuid //p' "$DEST.snapfs-backup")" ] ||
		fail "run $run: the newest bookmark is not what DEST holds"
	random_writes "$L" 20 32
done

# DEST's bookmark deleted: a full copy
"$SNAPFSCTL" delete "$MNT" "$(bookmarks | tail -n 1)"
out=$("$NIGHTLY" "$MNT" "$DEST" 2) || fail "after the bookmark went: $out"
echo "$out" | grep -q "^full backup" || fail "after the bookmark went: $out"
cmp -s "$DEST" "$L" || fail "the full copy differs from live.img"

# a run that fails (DEST cannot be written) leaves no snapshot
rc=0
"$NIGHTLY" "$MNT" /proc/version 2 >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "a run into /proc/version succeeded"
[ "$(snapshot_uuids "$MNT")" = "$MINE" ] ||
	fail "a failed run left: $(snapshot_uuids "$MNT" | tr '\n' ' ')"
stop_snapfs "$MNT"
echo "nightly: ok"
