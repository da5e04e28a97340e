#!/bin/bash
# snapfsctl check STORE: a sound store passes (also right after kill -9),
# damage is reported with a non-zero exit, a mounted store is refused, and
# the check never writes.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
STORE=$IMG.snapfs
make_image "$IMG" 16M
start_snapfs "$IMG" "$MNT"
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=16 conv=notrunc,fsync status=none
snap "$MNT" >/dev/null
dd if=/dev/urandom of="$MNT/live.img" bs=64K count=20 conv=notrunc,fsync status=none
snap "$MNT" >/dev/null
dd if=/dev/urandom of="$MNT/live.img" bs=64K seek=10 count=20 conv=notrunc,fsync status=none

rc=0
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || rc=$?
[ "$rc" = 1 ] || fail "check of a mounted store: exit $rc"
grep -q "in use by a running snapfs daemon" "$WORK/out" || fail "$(cat "$WORK/out")"

# right after kill -9: the WAL is still there, and the store is sound
kill9_snapfs "$MNT"
BEFORE=$(tree_sum "$STORE")
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || { cat "$WORK/out"; fail "check after kill -9"; }
grep -q "ok (40 preserved chunks checked" "$WORK/out" || fail "$(cat "$WORK/out")"
[ "$(tree_sum "$STORE")" = "$BEFORE" ] || fail "check wrote to the store"
start_snapfs "$IMG" "$MNT"
stop_snapfs "$MNT"
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || fail "check of a clean store"

cp -a "$STORE" "$WORK/saved"
# one flipped byte of a preserved chunk
python3 - "$STORE/data" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(70000)
    b = f.read(1)
    f.seek(70000)
    f.write(bytes([b[0] ^ 0x10]))
PY
rc=0
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || rc=$?
[ "$rc" = 1 ] || fail "damaged chunk: exit $rc"
grep -q "at data offset 65536 fails its checksum" "$WORK/out" || fail "$(cat "$WORK/out")"
grep -q "1 problem" "$WORK/out" || fail "$(cat "$WORK/out")"
# a data file cut short
rm -rf "$STORE" && cp -a "$WORK/saved" "$STORE"
truncate -s 131072 "$STORE/data"
rc=0
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || rc=$?
[ "$rc" = 1 ] || fail "short data file: exit $rc"
grep -q "outside the data file" "$WORK/out" || fail "$(cat "$WORK/out")"
# not a store at all
rc=0
"$SNAPFSCTL" check "$WORK" >"$WORK/out" || rc=$?
[ "$rc" = 1 ] || fail "not a store: exit $rc"
echo "check: ok"
