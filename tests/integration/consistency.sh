#!/bin/bash
# The snapshot instant under concurrency: two writers (each one write at a
# time, O_DIRECT), a snapshot every 200 ms, a reader copying the newest
# snapshot meanwhile.  Every snapshot must hold, for each writer, a prefix
# of its writes, and never change.  SECONDS_TO_RUN (default 15) for longer.
. "$TESTLIB"
CUT="python3 $(dirname "$TESTLIB")/cut.py"
RUN=${SECONDS_TO_RUN:-15}

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 16M
start_snapfs "$IMG" "$MNT" -o chunk_size=16K
$CUT write "$MNT/live.img" 1 0 1024 2>/dev/null &
register_pid $!
W1=$!
$CUT write "$MNT/live.img" 2 1024 1024 2>/dev/null &
register_pid $!
W2=$!
declare -a SNAPS
declare -A SUMS=()
end=$((SECONDS + RUN))
while ((SECONDS < end)); do
	u=$(snap "$MNT")
	SNAPS+=("$u")
	# the reader: a copy of the newest snapshot while writes go on
	cp "$MNT/snapshots/$u.img" "$WORK/copy"
	SUMS[$u]=$(sum "$WORK/copy")
	sleep 0.2
done
kill "$W1" "$W2"
wait "$W1" "$W2" 2>/dev/null || true
n=0
for u in "${SNAPS[@]}"; do
	S=$MNT/snapshots/$u.img
	$CUT check "$S" 1 0 1024 || fail "snapshot $u: writer 1 not a prefix"
	$CUT check "$S" 2 1024 1024 || fail "snapshot $u: writer 2 not a prefix"
	[ "$(sum "$S")" = "${SUMS[$u]}" ] || fail "snapshot $u changed"
	n=$((n + 1))
done
((n >= 10)) || fail "only $n snapshots"
stop_snapfs "$MNT"
echo "consistency: $n snapshots, each a prefix of both writers"
