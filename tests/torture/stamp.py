#!/usr/bin/env python3
"""Stamped writers and their checks, for the crash torture.

  stamp.py write FILE FIRST NBLOCKS LOG BASE [direct]
      Writes 4 KiB blocks at random in blocks FIRST..FIRST+NBLOCKS-1 of
      FILE until killed.  Each block carries (offset, version) and bytes
      derived from them.  Every few writes it fsyncs, and only then
      appends "block version" of the writes that sync covered to LOG
      (flushed), so LOG lists exactly what was acknowledged as durable.
      Versions start above BASE, so a later run's writes rank higher.

  stamp.py verify FILE LOG...
      For every block in the logs: the block must carry its own offset
      and a version at least the last one logged (a later write may have
      landed before the crash; an earlier one may not be what is left).
"""
import mmap
import os
import random
import struct
import sys

BS = 4096
MAGIC = b"SNAPFSTS"


def block(off, version):
    head = MAGIC + struct.pack("<QQ", off, version)
    rnd = random.Random(off * 1000003 + version)
    return head + rnd.randbytes(BS - len(head))


def write(path, first, n, log, base, direct):
    flags = os.O_RDWR | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    buf = mmap.mmap(-1, BS)  # page aligned, as O_DIRECT wants
    versions, pending = {}, []
    logf = open(log, "a")
    while True:
        b = first + random.randrange(n)
        v = versions.get(b, base) + 1
        versions[b] = v
        buf[:] = block(b * BS, v)
        os.pwrite(fd, buf, b * BS)
        pending.append((b, v))
        if len(pending) >= random.randint(1, 8):
            os.fsync(fd)
            logf.write("".join(f"{b} {v}\n" for b, v in pending))
            logf.flush()
            os.fsync(logf.fileno())
            pending = []


def verify(path, logs):
    last = {}
    for log in logs:
        with open(log) as f:
            for line in f:
                p = line.split()
                if len(p) == 2:
                    b, v = int(p[0]), int(p[1])
                    last[b] = max(last.get(b, 0), v)
    bad = 0
    with open(path, "rb") as f:
        for b, v in sorted(last.items()):
            f.seek(b * BS)
            data = f.read(BS)
            if data[:8] != MAGIC:
                print(f"block {b}: no stamp (fsync'd version {v} lost)")
                bad += 1
                continue
            off, got = struct.unpack("<QQ", data[8:24])
            if off != b * BS or got < v or data != block(off, got):
                print(f"block {b}: offset {off} version {got}, "
                      f"fsync'd version {v}")
                bad += 1
    print(f"{len(last)} fsync'd blocks checked, {bad} wrong")
    return bad == 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
              int(sys.argv[6]), len(sys.argv) > 7 and sys.argv[7] == "direct")
    elif sys.argv[1] == "verify":
        sys.exit(0 if verify(sys.argv[2], sys.argv[3:]) else 1)
    else:
        sys.exit(2)
