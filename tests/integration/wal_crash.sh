#!/bin/bash
# A crash inside a WAL checkpoint never locks the user out.  The daemon is
# killed (fault point index.checkpoint, a build with
# --enable-fault-injection) in the middle of the checkpoint that copies
# the WAL into index.db, at several of its writes: index.db is then sound
# only together with its WAL.  The next mount must recover the WAL, find
# the store sound and mount, with every snapshot whole; `snapfsctl check`
# agrees before and after.
. "$TESTLIB"
"$SNAPFS" --version | grep -q "fault injection" ||
	{ echo "SKIP: snapfs built without --enable-fault-injection"; exit 77; }

IMG=$WORK/img
MNT=$WORK/mnt
STORE=$WORK/store
make_image "$IMG" 32M
start_snapfs "$IMG" "$MNT" -o store="$STORE",chunk_size=4K
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=32 conv=notrunc,fsync status=none
u1=$(snap "$MNT")
S1=$(sum "$MNT/snapshots/$u1.img")
stop_snapfs "$MNT"

# Until the daemon dies: 4 KiB first writes, each preserving a chunk and
# committing its row, so the WAL soon reaches the automatic checkpoint.
write_until_killed() {
	local round
	for ((round = 0; round < 8; round++)); do
		dd if=/dev/urandom of="$MNT/live.img" bs=4K count=8192 \
			oflag=direct conv=notrunc status=none 2>/dev/null || break
		kill -0 "$SNAPFS_PID" 2>/dev/null || break
		snap "$MNT" >/dev/null 2>&1 || break
	done
	wait "$SNAPFS_PID" 2>/dev/null && fail "the daemon was not killed"
	fusermount3 -u -z "$MNT" 2>/dev/null || true
}

for pass in 1 2 3 5 8; do
	SNAPFS_FAULT=index.checkpoint:$pass:KILL start_snapfs "$IMG" "$MNT" \
		-o store="$STORE"
	write_until_killed
	grep -q "index.checkpoint pass $pass: killing" "$WORK/daemon.log" ||
		fail "pass $pass: not killed in a checkpoint"
	[ -s "$STORE/index.db-wal" ] || fail "pass $pass: no WAL left"
	"$SNAPFSCTL" check "$STORE" >"$WORK/out" 2>&1 ||
		fail "pass $pass: check after the kill: $(cat "$WORK/out")"
	start_snapfs "$IMG" "$MNT" -o store="$STORE"
	[ "$(sum "$MNT/snapshots/$u1.img")" = "$S1" ] ||
		fail "pass $pass: the first snapshot changed"
	"$SNAPFSCTL" list "$MNT" | tail -n +2 | while read -r u _; do
		dd if="$MNT/snapshots/$u.img" of=/dev/null bs=1M status=none ||
			fail "pass $pass: snapshot $u unreadable"
	done
	stop_snapfs "$MNT"
	"$SNAPFSCTL" check "$STORE" >"$WORK/out" 2>&1 ||
		fail "pass $pass: check after the restart: $(cat "$WORK/out")"
	note "pass $pass: killed in a checkpoint, mounted again, sound"
done
echo "wal_crash: ok"
