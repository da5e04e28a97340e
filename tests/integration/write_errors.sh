#!/bin/bash
# A queued write that is dropped (its write to the backing fails, with
# fault injection) is reported like a write-back error of the page
# cache: once to every file of live.img that was open when it happened,
# at its next fsync or close, and never to a file opened after it (the
# one that `snapfsctl create` opens), which would leave the writer's own
# fsync with nothing to report.
. "$TESTLIB"
"$SNAPFS" --version | grep -q "fault injection" ||
	{ echo "SKIP: snapfs built without --enable-fault-injection"; exit 77; }

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 8M
# The first write to the backing fails: the snapshot below writes none,
# so it is the queued first write after it.
SNAPFS_FAULT="backing.write:1:EIO" start_snapfs "$IMG" "$MNT"
snap "$MNT" >/dev/null
python3 - "$MNT/live.img" <<'EOF' || fail "the dropped write was not reported as it should be"
import errno, mmap, os, sys

live = sys.argv[1]
bad = []

def fsync_err(fd):
    try:
        os.fsync(fd)
        return 0
    except OSError as e:
        return e.errno

def close_err(fd):
    try:
        os.close(fd)
        return 0
    except OSError as e:
        return e.errno

writer = os.open(live, os.O_RDWR)
reader = os.open(live, os.O_RDONLY | os.O_DIRECT)  # open when it drops
closer = os.open(live, os.O_WRONLY)  # open when it drops, only closed
assert os.pwrite(writer, b"x" * 4096, 0) == 4096  # queued, answered
# A read of the chunk waits for the queued write: once it returns, the
# write has been dropped.
buf = mmap.mmap(-1, 4096)
assert os.preadv(reader, [buf], 0) == 4096
if buf[:4096] == b"x" * 4096:
    bad.append("the write was not dropped (fault not hit?)")
later = os.open(live, os.O_RDWR)  # like snapfsctl create's
if fsync_err(later) != 0:
    bad.append("a file opened after the drop was told of it")
e = fsync_err(writer)
if e != errno.EIO:
    bad.append("the writer's fsync gave %s, not EIO" % errno.errorcode.get(e, e))
if fsync_err(writer) != 0:
    bad.append("the writer was told twice")
e = fsync_err(reader)
if e != errno.EIO:
    bad.append("another open file's fsync gave %s, not EIO" % errno.errorcode.get(e, e))
e = close_err(closer)
if e != errno.EIO:
    bad.append("the close of another open file gave %s, not EIO" % errno.errorcode.get(e, e))
for fd, name in ((writer, "writer"), (reader, "reader"), (later, "later")):
    if close_err(fd) != 0:
        bad.append("the %s's close reported it again" % name)
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
stop_snapfs "$MNT"
echo "write errors: ok"
