#!/bin/bash
# snapfsctl export-diff against Ceph's own tool and an independent reader:
# a full stream of A, then A->B, B->C (B kept as a bookmark before B->C is
# taken) and C->D; every stream is well formed
# (tests/integration/rbddiff.py) and, applied in turn to an empty raw
# file, gives A, B, C and D byte for byte; `rbd merge-diff` (Debian's
# ceph-common, on files, no cluster) accepts every stream, and merges the
# chain of three into one that equals the direct A->D stream (records
# joined where rbd left them cut at the inputs' boundaries) and, after
# the full stream of A, gives D; discarded and zeroed ranges are z
# records, and changed --json calls them zero.
. "$TESTLIB"
seed_random
command -v rbd >/dev/null || fail "rbd (ceph-common) is not installed"
export CEPH_CONF=/dev/null # merge-diff needs no cluster
RBDDIFF=$(dirname "$TESTLIB")/rbddiff.py
K=65536

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" $((32 * 1024 * 1024))
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
S=$WORK/s
mkdir -p "$S"

random_writes "$L" 30 32
A=$(snap "$MNT")
cp "$MNT/snapshots/$A.img" "$S/A.img"
random_writes "$L" 10 32
# a zeroed range (16 blocks at block 100) and a discarded one (block 200)
dd if=/dev/zero of="$L" bs=$K seek=100 count=16 conv=notrunc status=none
fallocate -p -o $((200 * K)) -l $((8 * K)) "$L"
B=$(snap "$MNT")
cp "$MNT/snapshots/$B.img" "$S/B.img"
random_writes "$L" 10 32
C=$(snap "$MNT")
cp "$MNT/snapshots/$C.img" "$S/C.img"
random_writes "$L" 10 32
D=$(snap "$MNT")
cp "$MNT/snapshots/$D.img" "$S/D.img"

"$SNAPFSCTL" export-diff "$MNT" "$A" "$S/A.diff" || fail "export-diff of A"
"$SNAPFSCTL" export-diff "$MNT" "$B" --since "$A" "$S/AB.diff" || fail "A->B"
"$SNAPFSCTL" export-diff "$MNT" "$D" --since "$A" "$S/AD.diff" || fail "A->D"
"$SNAPFSCTL" export-diff "$MNT" "$D" --since "$C" "$S/CD.diff" || fail "C->D"
"$SNAPFSCTL" export-diff "$MNT" "$D" --since "$D" "$S/DD.diff" || fail "D->D"
"$SNAPFSCTL" export-diff "$MNT" "$D" "$S/D.diff" || fail "export-diff of D"
"$SNAPFSCTL" changed "$MNT" --from "$A" --to "$B" --json >"$S/changed.json" ||
	fail "changed --json"
# B as a bookmark is the older end of the last stream
"$SNAPFSCTL" delete "$MNT" "$B" --keep-bookmark
"$SNAPFSCTL" export-diff "$MNT" "$C" --since "$B" - --no-progress >"$S/BC.diff" ||
	fail "B->C to standard output, since a bookmark"

# --- structure, names, and what each stream gives
python3 "$RBDDIFF" check "$S/A.diff" >"$S/A.rec" || fail "A.diff is malformed"
python3 "$RBDDIFF" check "$S/AB.diff" >"$S/AB.rec" || fail "AB.diff is malformed"
python3 "$RBDDIFF" check "$S/BC.diff" >"$S/BC.rec" || fail "BC.diff is malformed"
[ "$(sed -n 1,3p "$S/AB.rec" | tr '\n' ' ')" = "from $A to $B size $((32 * 1024 * 1024)) " ] ||
	fail "AB.diff names: $(sed -n 1,3p "$S/AB.rec")"
[ "$(sed -n 1p "$S/A.rec")" = "from -" ] || fail "a full stream names a from-snapshot"
python3 "$RBDDIFF" apply "$S/A.diff" "$S/x.img" || fail "apply A"
cmp -s "$S/x.img" "$S/A.img" || fail "the full stream does not give A"
python3 "$RBDDIFF" apply "$S/AB.diff" "$S/x.img" || fail "apply A->B"
cmp -s "$S/x.img" "$S/B.img" || fail "A + A->B does not give B"
python3 "$RBDDIFF" apply "$S/BC.diff" "$S/x.img" || fail "apply B->C"
cmp -s "$S/x.img" "$S/C.img" || fail "A + A->B + B->C does not give C"
python3 "$RBDDIFF" apply "$S/CD.diff" "$S/x.img" || fail "apply C->D"
cmp -s "$S/x.img" "$S/D.img" || fail "A + A->B + B->C + C->D does not give D"

# --- zeros: z records, and "zero" in changed --json
covered() { # RECORDS KIND OFF LEN: a KIND record holds [OFF, OFF+LEN)
	awk -v k="$2" -v o="$3" -v l="$4" '$1 == k && $2 <= o && $2 + $3 >= o + l { f = 1 } END { exit !f }' "$1"
}
covered "$S/AB.rec" z $((100 * K)) $((16 * K)) || fail "the zeroed range is no z record"
covered "$S/AB.rec" z $((200 * K)) $((8 * K)) || fail "the discarded range is no z record"
python3 - "$S/changed.json" $((100 * K)):$((16 * K)) $((200 * K)):$((8 * K)) <<'PY' || fail "changed --json zero flags"
import json, sys
ext = json.load(open(sys.argv[1]))
assert all(set(e) == {"offset", "length", "zero"} for e in ext), ext
for arg in sys.argv[2:]:
    off, length = map(int, arg.split(":"))
    hit = [e for e in ext if e["offset"] <= off < e["offset"] + e["length"]]
    assert hit, off
    # the zeroed or discarded range is an extent of its own, unless a
    # random write beside it joined it to another
    assert hit[0]["zero"] or hit[0]["length"] > length, hit
assert any(not e["zero"] for e in ext), ext
PY

# --- rbd merge-diff: every stream accepted, the chain of three merged
"$SNAPFSCTL" export-diff "$MNT" "$D" --since "$B" "$S/BD.diff" || fail "B->D"
# each stream, followed by one that starts at its end
for pair in A:AD AB:BD BC:CD CD:DD AD:DD D:DD; do
	rm -f "$S/m.diff" # rbd creates its output, never overwrites
	rbd merge-diff "$S/${pair%:*}.diff" "$S/${pair#*:}.diff" "$S/m.diff" >/dev/null 2>&1 ||
		fail "rbd merge-diff refused ${pair%:*}.diff (then ${pair#*:}.diff)"
done
rbd merge-diff "$S/AB.diff" "$S/BC.diff" "$S/ABC.diff" >/dev/null 2>&1 ||
	fail "rbd merge-diff refused A->B + B->C"
rbd merge-diff "$S/ABC.diff" "$S/CD.diff" "$S/ABCD.diff" >/dev/null 2>&1 ||
	fail "rbd merge-diff refused A->C + C->D"
# the same records as the direct stream (rbd cuts them where the inputs did)
python3 "$RBDDIFF" same "$S/ABCD.diff" "$S/AD.diff" ||
	fail "A->B + B->C + C->D merged differs from A->D"
rbd merge-diff "$S/A.diff" "$S/ABCD.diff" "$S/all.diff" >/dev/null 2>&1 ||
	fail "rbd merge-diff refused the full stream + A->D"
rm -f "$S/x.img"
python3 "$RBDDIFF" apply "$S/all.diff" "$S/x.img" || fail "apply the merged chain"
cmp -s "$S/x.img" "$S/D.img" || fail "the merged chain does not give D"
python3 "$RBDDIFF" apply "$S/D.diff" "$S/y.img" || fail "apply D"
cmp -s "$S/y.img" "$S/D.img" || fail "the full stream of D does not give D"

# --- progress, usage, and a failed export leaves nothing
"$SNAPFSCTL" export-diff "$MNT" "$D" "$S/p.diff" --progress 2>"$S/progress" ||
	fail "export-diff --progress"
grep -q "^exported [0-9]* of [0-9]* bytes (100%)$" "$S/progress" ||
	fail "progress: $(cat "$S/progress")"
rc=0
"$SNAPFSCTL" export-diff "$MNT" "$B" "$S/b.diff" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "export-diff of a bookmark: exit $rc, not 1"
if [ -e "$S/b.diff" ] || [ -e "$S/b.diff.partial" ]; then fail "a failed export left a file"; fi
rc=0
"$SNAPFSCTL" export-diff "$MNT" "$D" "$S/1" "$S/2" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "two FILEs: exit $rc, not 2"
# a malformed uuid, either end: bad usage, one line, nothing written
for args in "not-a-uuid" "$D --since not-a-uuid"; do
	rc=0
	# shellcheck disable=SC2086 # two words on purpose
	"$SNAPFSCTL" export-diff "$MNT" $args "$S/bad" 2>"$S/err" || rc=$?
	[ "$rc" = 2 ] || fail "export-diff $args: exit $rc, not 2"
	[ "$(wc -l <"$S/err")" = 1 ] || fail "export-diff $args: $(cat "$S/err")"
	if [ -e "$S/bad" ] || [ -e "$S/bad.partial" ]; then
		fail "export-diff $args wrote a file"
	fi
done
# a binary stream is not written to a terminal
out=$(script -qec "$SNAPFSCTL export-diff $MNT $D; echo rc=\$?" /dev/null | tr -d '\r')
echo "$out" | grep -q "not writing a binary stream to a terminal" ||
	fail "export-diff to a terminal: $out"
echo "$out" | grep -q "rc=2" || fail "export-diff to a terminal: not exit 2: $out"
stop_snapfs "$MNT"
echo "export-diff: ok"
