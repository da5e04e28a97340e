#!/bin/bash
# A queued write that is dropped (its write to the backing fails, with
# fault injection) is reported like a write-back error of the page
# cache (errseq_t): once to every file of live.img that was open when it
# happened, at its next fsync or close, and to a file opened later as
# long as no fsync has reported it yet (`sync FILE` after a writer that
# only closed), never to one opened after that.
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
import errno, mmap, os, subprocess, sys

live = sys.argv[1]
bad = []

def name(e):
    return errno.errorcode.get(e, e) if e else "0"

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
e = close_err(closer)
if e != errno.EIO:
    bad.append("the close of a file open when it dropped gave %s, not EIO" % name(e))
# No fsync has reported it (a close does not count): a file opened now,
# here by `sync FILE`, is told.  The child closes the descriptors it
# inherited (writer, reader): that must not take the report from their
# fsync below.
p = subprocess.run(["sync", live], capture_output=True, text=True)
if p.returncode == 0:
    bad.append("`sync FILE` after the drop, before any fsync reported it, succeeded")
elif "Input/output error" not in p.stderr:
    bad.append("`sync FILE` failed otherwise: %s" % p.stderr.strip())
later = os.open(live, os.O_RDWR)  # after an fsync reported it
e = fsync_err(later)
if e != 0:
    bad.append("a file opened after an fsync reported the drop was told of it (%s)" % name(e))
e = fsync_err(writer)
if e != errno.EIO:
    bad.append("the writer's fsync gave %s, not EIO" % name(e))
if fsync_err(writer) != 0:
    bad.append("the writer was told twice")
e = fsync_err(reader)
if e != errno.EIO:
    bad.append("another open file's fsync gave %s, not EIO" % name(e))
for fd, what in ((writer, "writer"), (reader, "reader"), (later, "later")):
    e = close_err(fd)
    if e != 0:
        bad.append("the %s's close reported it again (%s)" % (what, name(e)))
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
stop_snapfs "$MNT"
echo "write errors: ok"
