#!/bin/bash
# snapfsctl export-diff against Ceph's own tool and an independent reader:
# a full stream of A, then A->B and B->C (B kept as a bookmark before
# B->C is taken); every stream is well formed (tests/integration/rbddiff.py)
# and, applied in turn to an empty raw file, gives A, B and C byte for
# byte; `rbd merge-diff` (Debian's ceph-common, on files, no cluster)
# accepts every stream and merges the chain into streams that give C
# too, and A->B + B->C merged equals the direct A->C stream (its records
# joined where rbd left them cut at the inputs' boundaries); discarded
# and zeroed ranges are z records, and changed --json calls them zero.
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

"$SNAPFSCTL" export-diff "$MNT" "$A" "$S/A.diff" || fail "export-diff of A"
"$SNAPFSCTL" export-diff "$MNT" "$B" --since "$A" "$S/AB.diff" || fail "A->B"
"$SNAPFSCTL" export-diff "$MNT" "$C" --since "$A" "$S/AC.diff" || fail "A->C"
"$SNAPFSCTL" export-diff "$MNT" "$C" "$S/C.diff" || fail "export-diff of C"
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

# --- zeros: z records, and "zero" in changed --json
covered() { # RECORDS KIND OFF LEN: a KIND record holds [OFF, OFF+LEN)
	awk -v k="$2" -v o="$3" -v l="$4" '$1 == k && $2 <= o && $2 + $3 >= o + l { f = 1 } END { exit !f }' "$1"
}
covered "$S/AB.rec" z $((100 * K)) $((16 * K)) || fail "the zeroed range is no z record"
covered "$S/AB.rec" z $((200 * K)) $((8 * K)) || fail "the discarded range is no z record"
python3 - "$S/changed.json" $((100 * K)) $((200 * K)) <<'PY' || fail "changed --json zero flags"
import json, sys
ext = json.load(open(sys.argv[1]))
assert all(set(e) == {"offset", "length", "zero"} for e in ext), ext
for off in map(int, sys.argv[2:]):
    hit = [e for e in ext if e["offset"] <= off < e["offset"] + e["length"]]
    assert hit, off
    # the zeroed or discarded range is an extent of its own unless a
    # random write touched its neighbours
    assert hit[0]["zero"] or hit[0]["length"] > 16 * 65536, hit
assert any(not e["zero"] for e in ext), ext
PY

# --- rbd merge-diff: every stream accepted, the chain merged
rbd merge-diff "$S/AB.diff" "$S/BC.diff" "$S/ABC.diff" >/dev/null 2>&1 ||
	fail "rbd merge-diff refused A->B + B->C"
# the same records as the direct stream (rbd cuts them where the inputs did)
python3 "$RBDDIFF" same "$S/ABC.diff" "$S/AC.diff" || fail "A->B + B->C merged differs from A->C"
rbd merge-diff "$S/A.diff" "$S/ABC.diff" "$S/all.diff" >/dev/null 2>&1 ||
	fail "rbd merge-diff refused the full stream + A->C"
rm -f "$S/x.img"
python3 "$RBDDIFF" apply "$S/all.diff" "$S/x.img" || fail "apply the merged chain"
cmp -s "$S/x.img" "$S/C.img" || fail "the merged chain does not give C"
python3 "$RBDDIFF" apply "$S/C.diff" "$S/y.img" || fail "apply C"
cmp -s "$S/y.img" "$S/C.img" || fail "the full stream of C does not give C"

# --- progress, usage, and a failed export leaves nothing
"$SNAPFSCTL" export-diff "$MNT" "$C" "$S/p.diff" --progress 2>"$S/progress" ||
	fail "export-diff --progress"
grep -q "^exported [0-9]* of [0-9]* bytes (100%)$" "$S/progress" ||
	fail "progress: $(cat "$S/progress")"
rc=0
"$SNAPFSCTL" export-diff "$MNT" "$B" "$S/b.diff" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "export-diff of a bookmark: exit $rc, not 1"
if [ -e "$S/b.diff" ] || [ -e "$S/b.diff.partial" ]; then fail "a failed export left a file"; fi
rc=0
"$SNAPFSCTL" export-diff "$MNT" "$C" "$S/1" "$S/2" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "two FILEs: exit $rc, not 2"
stop_snapfs "$MNT"
echo "export-diff: ok"
