#!/bin/bash
# Walks every fault point (a build with --enable-fault-injection): each
# fails once with EIO, ENOSPC and a torn transfer during a workload that
# passes through all of them.  The client sees the error, every snapshot
# that was taken reads the bytes it had, nothing is half recorded
# (`snapfsctl check` passes after the stop), and after a restart without
# faults the snapshots are still whole.
. "$TESTLIB"
"$SNAPFS" --version | grep -q "fault injection" ||
	{ echo "SKIP: snapfs built without --enable-fault-injection"; exit 77; }

POINTS="backing.read backing.write backing.sync backing.discard data.write
data.read data.sync index.commit index.snapshot index.purge"
IMG=$WORK/img
MNT=$WORK/mnt

# The workload: every step may fail; the steps that failed are listed.
workload() {
	local L=$MNT/live.img u
	FAILED=""
	dd if=/dev/urandom of="$L" bs=64K count=16 conv=notrunc,fsync status=none 2>/dev/null || FAILED+=" write1"
	dd if="$L" of=/dev/null bs=64K count=16 iflag=direct status=none 2>/dev/null || FAILED+=" read1"
	if u=$("$SNAPFSCTL" create "$MNT" 2>/dev/null); then
		SUMS[$u]=$(sum "$MNT/snapshots/$u.img" 2>/dev/null) || FAILED+=" sum1"
		FIRST=$u
	else
		FAILED+=" create1"
	fi
	dd if=/dev/urandom of="$L" bs=64K count=8 conv=notrunc oflag=direct status=none 2>/dev/null || FAILED+=" write2"
	[ -n "${FIRST:-}" ] && { dd if="$MNT/snapshots/$FIRST.img" of=/dev/null bs=64K count=16 iflag=direct status=none 2>/dev/null || FAILED+=" snapread"; }
	fallocate --punch-hole -o $((20 * 65536)) -l 65536 "$L" 2>/dev/null || FAILED+=" punch"
	if u=$("$SNAPFSCTL" create "$MNT" 2>/dev/null); then
		SUMS[$u]=$(sum "$MNT/snapshots/$u.img" 2>/dev/null) || FAILED+=" sum2"
	else
		FAILED+=" create2"
	fi
	dd if=/dev/urandom of="$L" bs=64K seek=30 count=4 conv=notrunc,fsync status=none 2>/dev/null || FAILED+=" write3"
	if [ -n "${FIRST:-}" ]; then
		if "$SNAPFSCTL" delete "$MNT" "$FIRST" 2>/dev/null; then
			unset "SUMS[$FIRST]"
		else
			FAILED+=" delete"
		fi
	fi
	return 0
}

walked=0
for point in $POINTS; do
	for err in EIO ENOSPC SHORT; do
		rm -rf "$IMG" "$IMG.snapfs"
		make_image "$IMG" 8M
		declare -A SUMS=()
		FIRST=
		# fail-writes: an injected ENOSPC must reach the client (with
		# drop-oldest it drops a snapshot instead: store_full.sh)
		SNAPFS_FAULT="$point:1:$err" start_snapfs "$IMG" "$MNT" \
			-o on_full=fail-writes
		workload
		[ -n "$FAILED" ] || fail "$point:$err: no request failed"
		for u in ${SUMS[@]+"${!SUMS[@]}"}; do
			[ -z "${SUMS[$u]}" ] && continue
			[ "$(sum "$MNT/snapshots/$u.img")" = "${SUMS[$u]}" ] ||
				fail "$point:$err: snapshot $u changed"
		done
		stop_snapfs "$MNT"
		"$SNAPFSCTL" check "$IMG.snapfs" >"$WORK/check" ||
			{ cat "$WORK/check"; fail "$point:$err: store damaged"; }
		start_snapfs "$IMG" "$MNT"
		for u in ${SUMS[@]+"${!SUMS[@]}"}; do
			[ -z "${SUMS[$u]}" ] && continue
			[ "$(sum "$MNT/snapshots/$u.img")" = "${SUMS[$u]}" ] ||
				fail "$point:$err: snapshot $u changed across a restart"
		done
		stop_snapfs "$MNT"
		note "$point:$err: failed:$FAILED"
		walked=$((walked + 1))
	done
done
# An unknown point is refused at start, naming it.
if SNAPFS_FAULT="no.such.point:1:EIO" "$SNAPFS" -f "$IMG" "$MNT" 2>"$WORK/err"; then
	fail "an unknown fault point was accepted"
fi
grep -q "no.such.point" "$WORK/err" || fail "$(cat "$WORK/err")"
echo "fault points: $walked cases walked, all clean"
