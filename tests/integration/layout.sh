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
stop_snapfs "$MNT"

echo "layout: ok"
