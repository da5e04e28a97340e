#!/bin/bash
# Power-loss ordering, proven by replay: a workload runs with the
# write-ordering log on (a --enable-fault-injection build, SNAPFS_IOLOG),
# then replay.py rebuilds CUTS crash states from prefixes of the log (all
# that was synced plus random subsets of the rest) and checks each: the
# store passes check, mounts, every snapshot is whole, none whose creation
# returned is lost, a snapshot deleted with --keep-bookmark is a snapshot
# or a bookmark (never gone) and serves as changed --from, the bitmaps
# cover every change since the newest, and a revert the cut interrupted is
# finished by the mount (live.img is that snapshot).
#
#   tests/torture/powerloss.sh [CUTS]     (default 20; SEED= to repeat)
. "$TESTLIB"
"$SNAPFS" --version | grep -q "fault injection" ||
	{ echo "SKIP: snapfs built without --enable-fault-injection"; exit 77; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CUTS=${1:-20}
seed_random "$CUTS cuts"

IMG=$WORK/img
MNT=$WORK/mnt
STORE=$WORK/store
SIZE=$((8 * 1024 * 1024))
make_image "$IMG" $SIZE
: >"$WORK/sums"
: >"$WORK/kept" # uuids deleted with --keep-bookmark
SNAPFS_IOLOG=$WORK/io.log start_snapfs "$IMG" "$MNT" -o store="$STORE",chunk_size=16K
L=$MNT/live.img
for i in $(seq 8); do
	random_writes "$L" 6 8
	dd if=/dev/urandom of="$L" bs=4K seek=$((RANDOM % 2000)) count=4 \
		conv=notrunc,fsync oflag=direct status=none
	u=$(snap "$MNT")
	echo "$u $(sum "$MNT/snapshots/$u.img")" >>"$WORK/sums"
	if ((RANDOM % 3 == 0)); then
		fallocate --punch-hole -o $(((RANDOM % 1000) * 4096)) -l 100000 "$L"
	fi
	if ((i % 3 == 0)); then # the oldest: kept as a bookmark, then not
		victim=$("$SNAPFSCTL" list "$MNT" | sed -n 2p | cut -d' ' -f1)
		if ((i == 3)); then
			"$SNAPFSCTL" delete "$MNT" "$victim" --keep-bookmark
			echo "$victim" >>"$WORK/kept"
		else
			"$SNAPFSCTL" delete "$MNT" "$victim"
		fi
	fi
done
# back to the oldest snapshot left, then on: a revert among the cuts
random_writes "$L" 10 8
victim=$("$SNAPFSCTL" list "$MNT" | sed -n 2p | cut -d' ' -f1)
"$SNAPFSCTL" revert "$MNT" "$victim" --no-progress
random_writes "$L" 4 8
stop_snapfs "$MNT"
note "log: $(stat -c %s "$WORK/io.log") bytes"
python3 "$HERE/replay.py" "$WORK/io.log" "$IMG" "$STORE" $SIZE "$WORK/sums" \
	"$MNT" "$SNAPFS" "$SNAPFSCTL" "$CUTS" "$SEED" "$WORK/kept" ||
	fail "power-loss replay"
