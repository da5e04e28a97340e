#!/bin/bash
# O_DIRECT reads and writes, loop devices with and without direct I/O,
# and mmap with msync, each with a snapshot that must not change.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 64M
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
dd if=/dev/urandom of="$L" bs=1M count=64 conv=notrunc,fsync status=none
U=$(snap "$MNT")
S=$MNT/snapshots/$U.img
SUM=$(sum "$S")

# O_DIRECT write, then O_DIRECT read back.
head -c 4M /dev/urandom >"$WORK/d1"
dd if="$WORK/d1" of="$L" bs=1M seek=3 oflag=direct conv=notrunc status=none
dd if="$L" bs=1M skip=3 count=4 iflag=direct status=none | cmp - "$WORK/d1" ||
	fail "O_DIRECT read-back"
# unaligned-in-chunk 4K direct writes
head -c 4K /dev/urandom >"$WORK/d2"
dd if="$WORK/d2" of="$L" bs=4K seek=4099 oflag=direct conv=notrunc status=none
dd if="$L" bs=4K skip=4099 count=1 iflag=direct status=none | cmp - "$WORK/d2" ||
	fail "O_DIRECT 4K read-back"
[ "$(sum "$S")" = "$SUM" ] || fail "snapshot changed by O_DIRECT writes"
dd if="$S" of=/dev/null bs=1M iflag=direct status=none || fail "O_DIRECT snapshot read"

# Page cache coherence: an O_DIRECT write (a direct_io open) drops the
# pages a buffered reader and a shared mapping had cached, and a buffered
# write is seen by an O_DIRECT reader.
python3 - "$L" <<'PY' || fail "page cache incoherent with O_DIRECT"
import mmap, os, sys
path, off = sys.argv[1], 40 << 20
buf = os.open(path, os.O_RDWR)
dio = os.open(path, os.O_RDWR | os.O_DIRECT)
m = mmap.mmap(buf, 1 << 20, mmap.MAP_SHARED, offset=off)
for i in range(3):
    os.pread(buf, 1 << 20, off)          # cache the range
    m[:4096]                             # and map it
    new = mmap.mmap(-1, 1 << 20)         # page-aligned for O_DIRECT
    new.write(os.urandom(1 << 20))
    os.pwrite(dio, new, off)
    assert os.pread(buf, 1 << 20, off) == new[:], "buffered read is stale"
    assert m[:] == new[:], "mapping is stale"
    data = os.urandom(4096)
    os.pwrite(buf, data, off + 8192)
    got = mmap.mmap(-1, 4096)
    os.preadv(dio, [got], off + 8192)
    assert got[:] == data, "O_DIRECT read misses a buffered write"
m.close()
PY
[ "$(sum "$S")" = "$SUM" ] || fail "snapshot changed by coherence writes"

# A loop device with --direct-io=on really uses direct I/O.
LOOP=$(losetup -f --show --direct-io=on "$L")
register_loop "$LOOP"
[ "$(cat "/sys/block/${LOOP#/dev/}/loop/dio")" = 1 ] || fail "loop device not in direct I/O"
head -c 2M /dev/urandom >"$WORK/d3"
dd if="$WORK/d3" of="$LOOP" bs=64K seek=100 oflag=direct status=none
dd if="$L" bs=64K skip=100 count=32 status=none | cmp - "$WORK/d3" || fail "write through dio loop"
detach_loop "$LOOP"
# and without it
LOOP=$(losetup -f --show "$L")
register_loop "$LOOP"
[ "$(cat "/sys/block/${LOOP#/dev/}/loop/dio")" = 0 ] || fail "loop device unexpectedly in direct I/O"
head -c 1M /dev/urandom >"$WORK/d4"
dd if="$WORK/d4" of="$LOOP" bs=64K seek=300 conv=fsync status=none
detach_loop "$LOOP"
dd if="$L" bs=64K skip=300 count=16 status=none | cmp - "$WORK/d4" || fail "write through buffered loop"
[ "$(sum "$S")" = "$SUM" ] || fail "snapshot changed by loop writes"

# A read-only loop device on the snapshot.
LOOP=$(losetup -r -f --show "$S")
register_loop "$LOOP"
[ "$(sha256sum "$LOOP" | cut -d' ' -f1)" = "$SUM" ] || fail "snapshot via losetup -r"
detach_loop "$LOOP"

# mmap + msync: written through, and the snapshot still unchanged.
python3 - "$L" <<'PY' || fail "mmap write"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 8 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=16 << 20)
m[:] = b"\xa5" * (8 << 20)
m.flush()  # msync(MS_SYNC)
m.close()
os.close(fd)
PY
[ "$(dd if="$L" bs=1M skip=16 count=8 status=none | tr -d '\245' | wc -c)" = 0 ] ||
	fail "mmap data not in live.img"
[ "$(sum "$S")" = "$SUM" ] || fail "snapshot changed by mmap writes"

# Pages dirtied through mmap and not yet synced reach a snapshot taken
# while the mapping is still open: create flushes live.img first.
python3 - "$L" "$SNAPFSCTL" "$MNT" >"$WORK/u2" <<'PY' || fail "mmap + create"
import mmap, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=40 << 20)
m[:] = b"\x5a" * (1 << 20)
u = subprocess.check_output([sys.argv[2], "create", sys.argv[3]]).decode().strip()
print(u)
m.close()
os.close(fd)
PY
U2=$(cat "$WORK/u2")
[ "$(dd if="$MNT/snapshots/$U2.img" bs=1M skip=40 count=1 status=none | tr -d '\132' | wc -c)" = 0 ] ||
	fail "unsynced mmap data missing from the snapshot"

stop_snapfs "$MNT"
echo "direct I/O, loop devices, mmap: ok"
