#!/usr/bin/env python3
"""Incremental backup of a snapfs snapshot from the changed-block bitmaps.

    snapfs-incremental.py MOUNT UUID DEST [--since OLD_UUID]

Reads MOUNT/cbt/<N>.bitmap directly, as any backup script may, without
snapfsctl: the generation of each snapshot comes from the xattr
user.snapfs.generation of its image, the block size from the bitmap's
user.snapfs.block_size.  The blocks changed from snapshot OLD (generation
a) to snapshot UUID (generation b) are the OR of bitmaps a+1 .. b; only
those are copied into DEST, which must hold OLD.  Without --since, the
whole snapshot is copied (sparse).

DEST's record is the same sidecar file snapfsctl backup keeps
(DEST.snapfs-backup), so the two tools can take turns on one chain.
Exit status: 0 done, 1 failed, 2 bad usage.
"""
import argparse
import os
import sys

PIECE = 1 << 20


def fail(msg):
    print(f"snapfs-incremental: {msg}", file=sys.stderr)
    sys.exit(1)


def sidecar(dest):
    return dest + ".snapfs-backup"


def held(dest):
    try:
        with open(sidecar(dest)) as f:
            kv = dict(line.split(None, 1) for line in f if " " in line)
    except FileNotFoundError:
        return None
    if kv.get("snapfs-backup", "").strip() != "1":
        return None
    if kv.get("state", "").strip() != "complete":
        return None
    return kv.get("uuid", "").strip()


def record(dest, uuid, complete):
    tmp = sidecar(dest) + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"snapfs-backup 1\nuuid {uuid}\n"
                f"state {'complete' if complete else 'incomplete'}\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, sidecar(dest))


def generation(mount, uuid):
    path = os.path.join(mount, "snapshots", uuid + ".img")
    try:
        return int(os.getxattr(path, "user.snapfs.generation"))
    except FileNotFoundError:
        fail(f"snapshot {uuid}: no such snapshot")


def changed_blocks(mount, a, b):
    """The OR of bitmaps a+1 .. b, and the block size."""
    acc, bs = None, None
    for g in range(a + 1, b + 1):
        path = os.path.join(mount, "cbt", f"{g}.bitmap")
        try:
            with open(path, "rb") as f:
                bits = f.read()
            bs = int(os.getxattr(path, "user.snapfs.block_size"))
        except FileNotFoundError:
            fail(f"bitmap of generation {g} is gone (cbt_keep): "
                 "take a full backup")
        acc = bits if acc is None else bytes(x | y for x, y in zip(acc, bits))
    return acc or b"", bs


def copy(src, dst, off, length, sparse):
    """Copies [off, off+length); with sparse, zero pieces stay holes."""
    while length:
        n = min(length, PIECE)
        buf = os.pread(src, n, off)
        if len(buf) != n:
            fail(f"short read at {off}")
        if not (sparse and buf.count(0) == n):
            os.pwrite(dst, buf, off)
        off += n
        length -= n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mount")
    ap.add_argument("uuid")
    ap.add_argument("dest")
    ap.add_argument("--since")
    args = ap.parse_args()

    src_path = os.path.join(args.mount, "snapshots", args.uuid + ".img")
    b = generation(args.mount, args.uuid)
    src = os.open(src_path, os.O_RDONLY)
    size = os.fstat(src).st_size

    if args.since:
        if held(args.dest) != args.since:
            fail(f"{args.dest} does not hold snapshot {args.since}")
        a = generation(args.mount, args.since)
        if b < a:
            fail("the snapshot is older than --since")
        bits, bs = changed_blocks(args.mount, a, b)
        record(args.dest, args.uuid, False)
        dst = os.open(args.dest, os.O_WRONLY)
        i, nblocks = 0, (size + bs - 1) // bs if bs else 0
        while i < nblocks:
            if not bits[i // 8] >> (i % 8) & 1:
                i += 1
                continue
            start = i
            while i < nblocks and bits[i // 8] >> (i % 8) & 1:
                i += 1
            off = start * bs
            copy(src, dst, off, min(i * bs, size) - off, False)
    else:
        record(args.dest, args.uuid, False)
        dst = os.open(args.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(dst, size)
        copy(src, dst, 0, size, True)
    os.fsync(dst)
    os.close(dst)
    os.close(src)
    record(args.dest, args.uuid, True)


if __name__ == "__main__":
    main()
