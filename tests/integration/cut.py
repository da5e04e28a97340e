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

  cut.py write2 FILE_A FILE_B WRITER FIRST NWRITES
      One writer across two images: its writes 0, 1, 2, ... of a pass go
      to A, B, A, B, ..., write i to block FIRST + i // 2 of its image,
      stamped (writer, pass, i); otherwise as write.

  cut.py check2 IMAGE_A IMAGE_B WRITER FIRST NWRITES
      The writer's writes read from the two images, in the order it made
      them, must be one prefix: what a snapshot of both taken at one
      instant holds, and two taken one after the other do not.
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


def write2(paths, writer, first, n):
    fds = [os.open(p, os.O_WRONLY | os.O_DIRECT) for p in paths]
    buf = mmap.mmap(-1, BS)
    p = 1
    while True:
        for i in range(n):
            buf[:32] = MAGIC + struct.pack("<QQQ", writer, p, i)[:24]
            os.pwrite(fds[i % 2], buf, (first + i // 2) * BS)
        p += 1


def stamp(f, block, writer, i):
    """The pass of write i read at block of f (0: never written), or
    None for a block someone else stamped."""
    f.seek(block * BS)
    b = f.read(BS)
    if b[:8] != MAGIC:
        return 0
    w, p, idx = struct.unpack("<QQQ", b[8:32])
    if w != writer or idx != i:
        print(f"write {i}: foreign stamp {w}/{p}/{idx}")
        return None
    return p


def check(path, writer, first, n):
    with open(path, "rb") as f:
        stamps = [stamp(f, first + i, writer, i) for i in range(n)]
    return prefix(stamps, writer, n)


def check2(paths, writer, first, n):
    files = [open(p, "rb") for p in paths]
    stamps = [stamp(files[i % 2], first + i // 2, writer, i)
              for i in range(n)]
    for f in files:
        f.close()
    return prefix(stamps, writer, n)


def prefix(stamps, writer, n):
    """Whether the passes of writes 0..n-1 are a prefix of the writer's."""
    if None in stamps:
        return False
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
    elif a[1] == "write2":
        write2(a[2:4], int(a[4]), int(a[5]), int(a[6]))
    elif a[1] == "check2":
        sys.exit(0 if check2(a[2:4], int(a[4]), int(a[5]), int(a[6])) else 1)
    else:
        sys.exit(0 if check(a[2], int(a[3]), int(a[4]), int(a[5])) else 1)
