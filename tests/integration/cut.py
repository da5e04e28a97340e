#!/usr/bin/env python3
"""Writers whose snapshots must be consistent cuts.

  cut.py write FILE WRITER FIRST NBLOCKS
      Writes 4 KiB blocks FIRST, FIRST+1, ... in order with O_DIRECT,
      wrapping around with the next pass, each stamped (writer, pass,
      index), until killed.  One write at a time: each returns before the
      next starts.

  cut.py check IMAGE WRITER FIRST NBLOCKS
      The writer's region in IMAGE must be a prefix of its writes: blocks
      0..M of pass p and the rest of pass p-1 (or never written).
"""
import mmap
import os
import struct
import sys

BS = 4096
MAGIC = b"SNAPCUT1"


def write(path, writer, first, n):
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, BS)
    p = 1
    while True:
        for i in range(n):
            buf[:32] = MAGIC + struct.pack("<QQQ", writer, p, i)[:24]
            os.pwrite(fd, buf, (first + i) * BS)
        p += 1


def check(path, writer, first, n):
    stamps = []
    with open(path, "rb") as f:
        f.seek(first * BS)
        for i in range(n):
            b = f.read(BS)
            if b[:8] != MAGIC:
                stamps.append(0)
                continue
            w, p, idx = struct.unpack("<QQQ", b[8:32])
            if w != writer or idx != i:
                print(f"block {i}: foreign stamp {w}/{p}/{idx}")
                return False
            stamps.append(p)
    top = max(stamps)
    # passes may only step down by one, once, from the front
    m = 0
    while m < n and stamps[m] == top:
        m += 1
    rest = stamps[m:]
    if any(s != top - 1 for s in rest) and not (top == 1 and all(s == 0 for s in rest)):
        print(f"writer {writer}: not a prefix: pass {top} up to {m}, "
              f"then {sorted(set(rest))}")
        return False
    return True


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "write":
        write(a[2], int(a[3]), int(a[4]), int(a[5]))
    else:
        sys.exit(0 if check(a[2], int(a[3]), int(a[4]), int(a[5])) else 1)
