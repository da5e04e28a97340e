#!/bin/bash
# What sparse-aware readers see: SEEK_DATA/SEEK_HOLE on every file of the
# tree and the blocks each one reports as allocated.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
mkdir -p "$MNT"

# A bitmap file has no holes: SEEK_DATA(off) is off and SEEK_HOLE its
# size, whatever the layout of live.img (data here only at 512 MiB of
# 1 GiB, so live.img's answers would be 512 MiB and 0).
make_image "$IMG" 1G
dd if=/dev/urandom of="$IMG" bs=4K seek=$((512 * 256)) count=1 conv=notrunc status=none
start_snapfs "$IMG" "$MNT"
dd if=/dev/urandom of="$MNT/live.img" bs=4K seek=$((600 * 256)) count=1 conv=notrunc status=none
snap "$MNT" >/dev/null # cbt/1 closed, cbt/2 open
for g in 1 2; do
	python3 - "$MNT/cbt/$g.bitmap" <<'PY' || fail "SEEK_DATA/SEEK_HOLE on cbt/$g.bitmap"
import errno, os, sys
f = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(f).st_size
assert size == 2048, size
for off in (0, 1, 100, size - 1):
    d = os.lseek(f, off, os.SEEK_DATA)
    assert d == off, ("SEEK_DATA", off, d)
    h = os.lseek(f, off, os.SEEK_HOLE)
    assert h == size, ("SEEK_HOLE", off, h)
for off in (size, size + 1, 1 << 30):
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            r = os.lseek(f, off, whence)
        except OSError as e:
            assert e.errno == errno.ENXIO, e
        else:
            raise AssertionError(("past the end", off, whence, r))
PY
done

# FALLOC_FL_ZERO_RANGE without KEEP_SIZE may not grow live.img: a range
# past the end fails (EFBIG) and changes nothing, while the kernel would
# otherwise take the new end as the size until the attributes expire.
# With KEEP_SIZE the part inside the image is zeroed and the size stays.
L=$MNT/live.img
SIZE=$((1 << 30))
dd if=/dev/urandom of="$L" bs=64K seek=$((SIZE / 65536 - 1)) count=1 conv=notrunc,fsync status=none
TAIL=$(tail -c 65536 "$L" | sha256sum)
if fallocate -z -o $((SIZE - 4096)) -l 65536 "$L" 2>"$WORK/err"; then
	fail "ZERO_RANGE past the end without KEEP_SIZE succeeded"
fi
grep -q "File too large" "$WORK/err" || fail "ZERO_RANGE past the end: $(cat "$WORK/err")"
[ "$(stat -c %s "$L")" = "$SIZE" ] || fail "live.img grew to $(stat -c %s "$L")"
[ "$(tail -c 65536 "$L" | sha256sum)" = "$TAIL" ] || fail "a refused ZERO_RANGE changed bytes"
if fallocate -o $((SIZE - 4096)) -l 65536 "$L" 2>/dev/null; then
	fail "allocation past the end without KEEP_SIZE succeeded"
fi
fallocate -n -z -o $((SIZE - 4096)) -l 65536 "$L" || fail "ZERO_RANGE with KEEP_SIZE past the end"
fallocate -n -o $((SIZE - 4096)) -l 65536 "$L" || fail "allocation with KEEP_SIZE past the end"
[ "$(stat -c %s "$L")" = "$SIZE" ] || fail "live.img size $(stat -c %s "$L") after KEEP_SIZE"
[ "$(tail -c 4096 "$L" | tr -d '\0' | wc -c)" = 0 ] || fail "the tail was not zeroed"
[ "$(tail -c 65536 "$L" | head -c 61440 | tr -d '\0' | wc -c)" -gt 0 ] ||
	fail "ZERO_RANGE zeroed before its offset"
stop_snapfs "$MNT"

# st_blocks: live.img reports what the backing has allocated, a snapshot
# a figure never below what its data needs (the backing's blocks and the
# preserved bytes, at most its size), so du, cp and tar -S see a sparse
# image as sparse.  64 MiB holding 4 MiB.
IMG=$WORK/img2
make_image "$IMG" 64M
dd if=/dev/urandom of="$IMG" bs=1M seek=16 count=4 conv=notrunc,fsync status=none
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
blocks() { stat -c %b "$1"; }
[ "$(blocks "$L")" = "$(blocks "$IMG")" ] ||
	fail "live.img st_blocks $(blocks "$L"), the backing has $(blocks "$IMG")"
[ "$(du -k "$L" | cut -f1)" -le 4200 ] || fail "du of live.img: $(du -k "$L")"
U=$(snap "$MNT")
S=$MNT/snapshots/$U.img
check_snap() { # what the snapshot reports: at least 4 MiB, not all of it
	local b
	b=$(blocks "$S")
	((b >= 8192 && b < 64 * 2048)) || fail "$1: snapshot st_blocks $b"
}
check_snap "fresh"
cp "$S" "$WORK/copy" # --sparse=auto: sparse only if the source looks sparse
cmp "$S" "$WORK/copy" || fail "cp of the snapshot differs"
[ "$(du -k "$WORK/copy" | cut -f1)" -le 8192 ] ||
	fail "cp made a full copy: $(du -k "$WORK/copy" | cut -f1) KiB"
rm -f "$WORK/copy"
tar -S -cf "$WORK/t.tar" -C "$MNT/snapshots" "$U.img"
tar -xf "$WORK/t.tar" -C "$WORK"
cmp "$S" "$WORK/$U.img" || fail "tar -S of the snapshot differs"
rm -f "$WORK/t.tar" "$WORK/$U.img"
# its data moves to the store: the figure still covers it
dd if=/dev/urandom of="$L" bs=1M seek=16 count=4 conv=notrunc,fsync status=none
check_snap "overwritten"
fallocate -p -o 0 -l 64M "$L"
[ "$(blocks "$L")" = "$(blocks "$IMG")" ] || fail "live.img st_blocks after a punch"
[ "$(blocks "$L")" -lt 100 ] || fail "live.img st_blocks $(blocks "$L") after a punch of all"
check_snap "punched"
# a bitmap is all data
[ "$(blocks "$MNT/cbt/1.bitmap")" = 1 ] || fail "bitmap st_blocks"
stop_snapfs "$MNT"

# A snapshot's holes are part of its contents: its SEEK_DATA/SEEK_HOLE
# map stays what it was when taken, whatever live.img does later: writes
# into holes (preserved as zeros), overwrites of data, discards of holes
# (an fstrim) and of data.
IMG=$WORK/img3
make_image "$IMG" 64M
dd if=/dev/urandom of="$IMG" bs=1M seek=16 count=4 conv=notrunc,fsync status=none
dd if=/dev/urandom of="$IMG" bs=4K seek=$((40 * 256 + 3)) count=1 conv=notrunc,fsync status=none
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
U=$(snap "$MNT")
S=$MNT/snapshots/$U.img
extents() {
	python3 - "$1" <<'PY'
import errno, os, sys
f = os.open(sys.argv[1], os.O_RDONLY)
size, off, out = os.fstat(f).st_size, 0, []
while off < size:
    try:
        d = os.lseek(f, off, os.SEEK_DATA)
    except OSError as e:
        assert e.errno == errno.ENXIO, e
        break
    h = os.lseek(f, d, os.SEEK_HOLE)
    assert h > d, (d, h)
    out.append("%d-%d" % (d, h))
    off = h
print(" ".join(out))
PY
}
MAP=$(extents "$S")
# (chunk by chunk: the default 4 KiB chunk is the block written)
[ "$MAP" = "$((16 << 20))-$((20 << 20)) $(((40 << 20) + 12288))-$(((40 << 20) + 16384))" ] ||
	fail "fresh snapshot map: $MAP"
SUM=$(sum "$S")
dd if=/dev/urandom of="$L" bs=1M seek=8 count=1 conv=notrunc,fsync status=none
[ "$(extents "$S")" = "$MAP" ] || fail "a write into a hole: $(extents "$S")"
dd if=/dev/urandom of="$L" bs=1M seek=16 count=4 conv=notrunc,fsync status=none
[ "$(extents "$S")" = "$MAP" ] || fail "an overwrite: $(extents "$S")"
fallocate -p -o $((24 << 20)) -l $((16 << 20)) "$L" # holes only
[ "$(extents "$S")" = "$MAP" ] || fail "a discard of holes: $(extents "$S")"
fallocate -p -o 0 -l 64M "$L"
[ "$(extents "$S")" = "$MAP" ] || fail "a discard of everything: $(extents "$S")"
[ "$(sum "$S")" = "$SUM" ] || fail "the snapshot's bytes changed"
cp --sparse=always "$S" "$WORK/copy"
[ "$(du -k "$WORK/copy" | cut -f1)" -le 4200 ] ||
	fail "sparse copy holds $(du -k "$WORK/copy" | cut -f1) KiB"
stop_snapfs "$MNT"

echo "layout: ok"
