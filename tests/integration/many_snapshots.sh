#!/bin/bash
# 20 snapshots interleaved with random writes, each equal to a reference
# copy made with cp right after it was created; then several deleted in
# the middle, and every other one still equal, also after a remount.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 32M
start_snapfs "$IMG" "$MNT" -o chunk_size=16K
random_writes "$MNT/live.img" 30 32

declare -a UUIDS
for i in $(seq 0 19); do
	UUIDS[i]=$(snap "$MNT")
	cp --sparse=always "$MNT/snapshots/${UUIDS[i]}.img" "$WORK/ref$i"
	cmp "$MNT/snapshots/${UUIDS[i]}.img" "$WORK/ref$i" || fail "copy $i"
	random_writes "$MNT/live.img" $((RANDOM % 12 + 1)) 32
done

check_all() {
	local i
	for i in $(seq 0 19); do
		[ -n "${UUIDS[i]}" ] || continue
		cmp "$MNT/snapshots/${UUIDS[i]}.img" "$WORK/ref$i" ||
			fail "snapshot $i (${UUIDS[i]}) changed ($1)"
	done
}
check_all "after all writes"

"$SNAPFSCTL" delete "$MNT" "${UUIDS[5]}" "${UUIDS[6]}"
rm "$MNT/snapshots/${UUIDS[12]}.img"
"$SNAPFSCTL" delete "$MNT" "${UUIDS[0]}"
"$SNAPFSCTL" delete "$MNT" "${UUIDS[19]}"
for i in 0 5 6 12 19; do
	[ ! -e "$MNT/snapshots/${UUIDS[i]}.img" ] || fail "snapshot $i still there"
	UUIDS[i]=""
done
[ "$(count_snapshots "$MNT")" = 15 ] || fail "wrong number of snapshots left"
random_writes "$MNT/live.img" 20 32
check_all "after deletions"

# Deleting twice, or a uuid that never existed, fails and changes nothing.
if "$SNAPFSCTL" delete "$MNT" 01234567-89ab-4def-8123-456789abcdef 2>"$WORK/err"; then
	fail "delete of an unknown uuid succeeded"
fi
grep -q "no such snapshot" "$WORK/err" || fail "$(cat "$WORK/err")"

stop_snapfs "$MNT"
start_snapfs "$IMG" "$MNT"
check_all "after remount"
"$SNAPFSCTL" list "$MNT" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert len(v) == 15, len(v)
g = [s["generation"] for s in v]
assert g == sorted(g) and len(set(g)) == 15, g
'
stop_snapfs "$MNT"
echo "many snapshots: ok"
