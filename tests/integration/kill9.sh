#!/bin/bash
# kill -9 of the daemon under write load: after a restart every snapshot
# equals its checksum at creation, and data fsync'd before the kill is
# there.  Once with durability=full and once with durability=process.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 64M

run_once() { # DURABILITY
	local d=$1 writer
	declare -A SUMS
	start_snapfs "$IMG" "$MNT" -o durability="$d"
	for _ in 1 2 3 4; do
		random_writes "$MNT/live.img" 10 64
		local u
		u=$(snap "$MNT")
		SUMS[$u]=$(sum "$MNT/snapshots/$u.img")
	done
	# a marker written and fsync'd before the kill
	head -c 1M /dev/urandom >"$WORK/marker"
	dd if="$WORK/marker" of="$MNT/live.img" bs=1M seek=63 conv=notrunc,fsync status=none
	# writers in flight when the daemon dies
	(
		while :; do
			dd if=/dev/urandom of="$MNT/live.img" bs=64K count=16 \
				seek=$((RANDOM % 900)) conv=notrunc status=none 2>/dev/null || exit 0
		done
	) &
	writer=$!
	register_pid "$writer"
	u=$(snap "$MNT")
	SUMS[$u]=$(sum "$MNT/snapshots/$u.img")
	sleep 0.5
	kill9_snapfs "$MNT"
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true

	start_snapfs "$IMG" "$MNT" -o durability="$d"
	"$SNAPFSCTL" status "$MNT" | grep -q "clean_shutdown:  no" ||
		fail "$d: the unclean stop was not noticed"
	for u in "${!SUMS[@]}"; do
		[ "$(sum "$MNT/snapshots/$u.img")" = "${SUMS[$u]}" ] ||
			fail "$d: snapshot $u changed across kill -9"
	done
	dd if="$MNT/live.img" bs=1M skip=63 count=1 status=none | cmp - "$WORK/marker" ||
		fail "$d: fsync'd data lost"
	"$SNAPFSCTL" list "$MNT" >/dev/null
	for u in "${!SUMS[@]}"; do "$SNAPFSCTL" delete "$MNT" "$u"; done
	stop_snapfs "$MNT"
	note "ok: $d"
}

run_once full
run_once process
echo "kill -9: ok"
