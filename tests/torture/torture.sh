#!/bin/bash
# Crash torture: writers on live.img (buffered and O_DIRECT, stamped
# blocks), snapshots created and deleted meanwhile (some kept as
# bookmarks), and the daemon killed with SIGKILL at random moments.  After
# each kill: `snapfsctl check` on the unmounted store; after each restart:
# every snapshot equals its checksum at creation, the bookmarks are those
# kept, every write the writers saw fsync'd is there, the bitmaps since
# the newest snapshot cover every block where live.img differs from it,
# and `changed --from` each bookmark covers every block where live.img
# differs from its snapshot (a copy taken before it became a bookmark).
# Every second round the writers stop and a revert to the newest snapshot
# is killed at a random moment: after the restart live.img is either what
# it was or, once the revert began, that snapshot.
#
#   tests/torture/torture.sh [KILLS]      (default 5; SEED= to repeat)
#
# Needs the same environment as the integration tests (SNAPFS, SNAPFSCTL,
# TESTLIB), which `make check` sets; run by hand:
#   SNAPFS=build/snapfs SNAPFSCTL=build/snapfsctl \
#   TESTLIB=tests/integration/lib.sh tests/torture/torture.sh 200
. "$TESTLIB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STAMP="python3 $HERE/stamp.py"
BM="python3 $HERE/../integration/bitmaps.py"
KILLS=${1:-5}
seed_random "$KILLS kills"

IMG=$WORK/img
MNT=$WORK/mnt
STORE=$IMG.snapfs
K=65536
make_image "$IMG" 32M
declare -A SUMS=() # uuid -> sha256 at creation
declare -A BMS=()  # bookmark uuid -> 1; its snapshot's copy in $WORK/bm-UUID

start() {
	start_snapfs "$IMG" "$MNT" -o chunk_size=16K
}

start
# The logs exist from the start: a writer killed before it opened its log
# had no write acknowledged.
: >>"$WORK/log.buf"
: >>"$WORK/log.dio"
for ((round = 1; round <= KILLS; round++)); do
	$STAMP write "$MNT/live.img" 0 4096 "$WORK/log.buf" $((round * 1000000)) 2>/dev/null &
	W1=$!
	register_pid "$W1"
	$STAMP write "$MNT/live.img" 4096 4096 "$WORK/log.dio" $((round * 1000000)) direct 2>/dev/null &
	W2=$!
	register_pid "$W2"
	for ((i = 0; i < RANDOM % 4 + 1; i++)); do
		sleep "0.$((RANDOM % 4))"
		if ((${#SUMS[@]} >= 6 || (RANDOM % 3 == 0 && ${#SUMS[@]} > 0))); then
			victim=$(printf '%s\n' "${!SUMS[@]}" | sort | head -1)
			if ((RANDOM % 2 || ${#BMS[@]} == 0)); then # the first always
				cp "$MNT/snapshots/$victim.img" "$WORK/bm-$victim"
				"$SNAPFSCTL" delete "$MNT" "$victim" --keep-bookmark
				BMS[$victim]=1
			else
				"$SNAPFSCTL" delete "$MNT" "$victim"
			fi
			unset "SUMS[$victim]"
			if ((${#BMS[@]} > 3)); then
				b=$(printf '%s\n' "${!BMS[@]}" | sort | head -1)
				"$SNAPFSCTL" delete "$MNT" "$b"
				unset "BMS[$b]"
				rm -f "$WORK/bm-$b"
			fi
		else
			u=$(snap "$MNT")
			SUMS[$u]=$(sum "$MNT/snapshots/$u.img")
			NEWEST=$u
		fi
	done
	REVERT=
	if ((round % 2 == 0 && ${#SUMS[@]} > 0)); then
		# a revert, killed at a random moment: the writers stop (a
		# revert wants live.img closed), what they wrote is made
		# durable and kept, then the revert runs into the kill
		kill -9 "$W1" "$W2" 2>/dev/null || true
		wait "$W1" "$W2" 2>/dev/null || true
		python3 -c 'import os,sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$MNT/live.img"
		PRE=$(sum "$MNT/live.img")
		REVERT=$(printf '%s
' "${!SUMS[@]}" | sort | tail -1)
		"$SNAPFSCTL" revert "$MNT" "$REVERT" --no-progress 2>/dev/null &
		register_pid $!
		sleep "0.0$((RANDOM % 10))"
	else
		sleep "0.$((RANDOM % 10))"
	fi
	kill9_snapfs "$MNT"
	kill -9 "$W1" "$W2" 2>/dev/null || true
	wait "$W1" "$W2" 2>/dev/null || true

	"$SNAPFSCTL" check "$STORE" >"$WORK/check" ||
		{ cat "$WORK/check"; fail "round $round: store check failed"; }
	start
	for u in ${SUMS[@]+"${!SUMS[@]}"}; do
		[ "$(sum "$MNT/snapshots/$u.img")" = "${SUMS[$u]}" ] ||
			fail "round $round: snapshot $u changed"
	done
	[ "$(count_snapshots "$MNT")" = "${#SUMS[@]}" ] ||
		fail "round $round: snapshots appeared or vanished"
	[ "$("$SNAPFSCTL" bookmarks "$MNT" | tail -n +2 | cut -d' ' -f1 | sort)" = \
		"$(printf '%s\n' ${BMS[@]+"${!BMS[@]}"} | sort | sed '/^$/d')" ] ||
		fail "round $round: bookmarks $("$SNAPFSCTL" bookmarks "$MNT"), kept ${!BMS[*]}"
	for b in ${BMS[@]+"${!BMS[@]}"}; do
		"$SNAPFSCTL" changed "$MNT" --from "$b" >"$WORK/ext" ||
			fail "round $round: changed --from bookmark $b"
		python3 - "$WORK/bm-$b" "$MNT/live.img" "$WORK/ext" <<'PY' ||
import sys
ext = [tuple(map(int, l.split())) for l in open(sys.argv[3])]
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    off = 0
    while True:
        x, y = a.read(4096), b.read(4096)
        if not x:
            break
        if x != y and not any(o <= off < o + n for o, n in ext):
            sys.exit("block at %d changed since the bookmark, not in changed" % off)
        off += 4096
PY
			fail "round $round: changed --from bookmark $b misses a change"
	done
	if [ -n "$REVERT" ]; then
		# before the revert began: what was there; after: the snapshot
		now=$(sum "$MNT/live.img")
		if [ "$now" = "${SUMS[$REVERT]}" ]; then
			note "round $round: the revert to $REVERT was finished"
		elif [ "$now" = "$PRE" ]; then
			note "round $round: killed before the revert began"
		else
			fail "round $round: live.img is neither what it was nor $REVERT"
		fi
		# the writers' acknowledged writes were reverted away
		: >"$WORK/log.buf"
		: >"$WORK/log.dio"
	fi
	$STAMP verify "$MNT/live.img" "$WORK/log.buf" "$WORK/log.dio" >"$WORK/verify" ||
		{ cat "$WORK/verify"; fail "round $round: acknowledged writes lost"; }
	if [ -n "${NEWEST:-}" ] && [ -n "${SUMS[$NEWEST]+x}" ]; then
		g=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.snapfs.generation").decode())' "$MNT/snapshots/$NEWEST.img")
		maps=()
		for f in "$MNT"/cbt/*.bitmap; do
			n=$(basename "$f" .bitmap)
			((n > g)) && maps+=("$f")
		done
		$BM covers "$MNT/snapshots/$NEWEST.img" "$MNT/live.img" $K "${maps[@]}" >"$WORK/cov" ||
			{ cat "$WORK/cov"; fail "round $round: bitmaps miss a changed block"; }
		"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
assert all(g["widened"] is None for g in json.load(sys.stdin)["generations"])' ||
			fail "round $round: a generation was widened under durability=full"
	fi
	note "round $round: $(cat "$WORK/verify"); ${#SUMS[@]} snapshots intact, ${#BMS[@]} bookmarks"
done
stop_snapfs "$MNT"
"$SNAPFSCTL" check "$STORE" >/dev/null || fail "final store check"
echo "torture: $KILLS kills, no loss (seed $SEED)"
