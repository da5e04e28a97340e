#!/bin/bash
# snapfsctl check STORE: a sound store passes (also right after kill -9),
# damage is reported with a non-zero exit, a mounted store is refused, and
# the check never writes.  The report goes to stdout; a failure adds one
# line on stderr, the verdict or why the store could not be checked.
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

# CHECK DIR: runs snapfsctl check DIR, stdout in $WORK/out, stderr in
# $WORK/err, the exit status in $rc
CHECK() {
	rc=0
	"$SNAPFSCTL" check "$1" >"$WORK/out" 2>"$WORK/err" || rc=$?
}
# one line on stderr matching $1, and nothing on stdout
cannot_check() {
	[ "$rc" = 1 ] || fail "$2: exit $rc"
	[ "$(wc -l <"$WORK/err")" = 1 ] || fail "$2: stderr: $(cat "$WORK/err")"
	grep -q "$1" "$WORK/err" || fail "$2: stderr: $(cat "$WORK/err")"
	[ ! -s "$WORK/out" ] || fail "$2: stdout: $(cat "$WORK/out")"
}
# the report on stdout matching $1, one line on stderr saying it is damaged
damaged() {
	[ "$rc" = 1 ] || fail "$2: exit $rc"
	grep -q "$1" "$WORK/out" || fail "$2: stdout: $(cat "$WORK/out")"
	[ "$(wc -l <"$WORK/err")" = 1 ] || fail "$2: stderr: $(cat "$WORK/err")"
	grep -q "damaged" "$WORK/err" || fail "$2: stderr: $(cat "$WORK/err")"
}

CHECK "$STORE"
cannot_check "in use by a running snapfs daemon" "check of a mounted store"

# right after kill -9: the WAL is still there, and the store is sound
kill9_snapfs "$MNT"
BEFORE=$(tree_sum "$STORE")
"$SNAPFSCTL" check "$STORE" >"$WORK/out" 2>"$WORK/err" ||
	fail "check after kill -9: $(cat "$WORK/out" "$WORK/err")"
[ ! -s "$WORK/err" ] || fail "a sound store: stderr: $(cat "$WORK/err")"
grep -q "ok (640 preserved chunks checked" "$WORK/out" || fail "$(cat "$WORK/out")"
[ "$(tree_sum "$STORE")" = "$BEFORE" ] || fail "check wrote to the store"
start_snapfs "$IMG" "$MNT"
stop_snapfs "$MNT"
"$SNAPFSCTL" check "$STORE" >"$WORK/out" || fail "check of a clean store"

cp -a "$STORE" "$WORK/saved"
# one flipped byte of a preserved chunk (4 KiB chunks: the one at 69632)
python3 - "$STORE/data" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(70000)
    b = f.read(1)
    f.seek(70000)
    f.write(bytes([b[0] ^ 0x10]))
PY
CHECK "$STORE"
damaged "at data offset 69632 fails its checksum" "damaged chunk"
grep -q "1 problem" "$WORK/out" || fail "$(cat "$WORK/out")"
# a data file cut short
rm -rf "$STORE" && cp -a "$WORK/saved" "$STORE"
truncate -s 131072 "$STORE/data"
CHECK "$STORE"
damaged "outside the data file" "short data file"
# not a store at all, and no directory at all
CHECK "$WORK"
cannot_check "not a snapfs store" "not a store"
CHECK "$WORK/nothing-here"
cannot_check "No such file or directory" "missing directory"
echo "check: ok"
