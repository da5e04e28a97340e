#!/usr/bin/env python3
"""An independent reader of Ceph RBD diff streams (rbd diff v1, Ceph's
doc/dev/rbd-diff.rst), for the tests: checks a stream's structure and
applies it to a raw image file.

  rbddiff.py check STREAM          prints: from NAME|-, to NAME, size N,
                                   then one "w OFF LEN" / "z OFF LEN" a line
  rbddiff.py apply STREAM IMAGE    writes the stream's records into IMAGE
                                   (created, resized to the stream's size)
  rbddiff.py same STREAM1 STREAM2  exit 0 when both name the same snapshots
                                   and size and hold the same records once
                                   adjacent ones of a kind are joined (how
                                   a tool cuts records is its own affair)

Structure checked: the header; metadata ('f', 't', 's') before any data;
data records in increasing offset order, not overlapping, within the
size; 'e' last, and nothing after it.  Exit 1 with one line when wrong.
"""
import os
import struct
import sys


def fail(msg):
    print("rbddiff: " + msg, file=sys.stderr)
    sys.exit(1)


def records(path):
    with open(path, "rb") as f:
        if f.read(12) != b"rbd diff v1\n":
            fail("%s: not an rbd diff v1 stream" % path)
        meta = {"from": None, "to": None, "size": None}
        end = 0
        data_seen = False
        while True:
            tag = f.read(1)
            if not tag:
                fail("%s: no end record" % path)
            if tag in (b"f", b"t"):
                if data_seen:
                    fail("%s: metadata after data" % path)
                (n,) = struct.unpack("<I", f.read(4))
                meta["from" if tag == b"f" else "to"] = f.read(n).decode()
            elif tag == b"s":
                if data_seen:
                    fail("%s: metadata after data" % path)
                (meta["size"],) = struct.unpack("<Q", f.read(8))
            elif tag in (b"w", b"z"):
                if meta["size"] is None:
                    fail("%s: data before the size" % path)
                if not data_seen:
                    yield "meta", meta
                data_seen = True
                off, length = struct.unpack("<QQ", f.read(16))
                if off < end:
                    fail("%s: record at %d overlaps or goes back (end %d)" % (path, off, end))
                if length == 0 or off + length > meta["size"]:
                    fail("%s: record %d+%d outside the image" % (path, off, length))
                end = off + length
                payload = f.read(length) if tag == b"w" else None
                if payload is not None and len(payload) != length:
                    fail("%s: short data record at %d" % (path, off))
                yield tag.decode(), (off, length, payload)
            elif tag == b"e":
                if f.read(1):
                    fail("%s: bytes after the end record" % path)
                if not data_seen:
                    if meta["size"] is None:
                        fail("%s: no size record" % path)
                    yield "meta", meta
                return
            else:
                fail("%s: unknown record %r" % (path, tag))


def joined(path):
    """The stream's metadata and its records, adjacent ones of a kind
    joined: [kind, off, len, data]."""
    meta, out = None, []
    for kind, v in records(path):
        if kind == "meta":
            meta = dict(v)
            continue
        off, length, payload = v
        last = out[-1] if out else None
        if last and last[0] == kind and last[1] + last[2] == off:
            last[2] += length
            if kind == "w":
                last[3] += payload
        else:
            out.append([kind, off, length, bytearray(payload or b"")])
    return meta, out


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("check", "apply", "same"):
        fail("usage: rbddiff.py check STREAM | apply STREAM IMAGE | same S1 S2")
    stream = sys.argv[2]
    if sys.argv[1] == "same":
        a, b = joined(stream), joined(sys.argv[3])
        if a[0] != b[0]:
            fail("metadata differ: %s / %s" % (a[0], b[0]))
        if len(a[1]) != len(b[1]):
            fail("%d records / %d records" % (len(a[1]), len(b[1])))
        for x, y in zip(a[1], b[1]):
            if x != y:
                fail("records differ: %s %d+%d / %s %d+%d" % (x[0], x[1], x[2], y[0], y[1], y[2]))
        return
    if sys.argv[1] == "check":
        for kind, v in records(stream):
            if kind == "meta":
                print("from", v["from"] or "-")
                print("to", v["to"])
                print("size", v["size"])
            else:
                print(kind, v[0], v[1])
        return
    fd = os.open(sys.argv[3], os.O_RDWR | os.O_CREAT, 0o600)
    for kind, v in records(stream):
        if kind == "meta":
            os.ftruncate(fd, v["size"])
        elif kind == "w":
            os.pwrite(fd, v[2], v[0])
        else:
            off, length = v[0], v[1]
            while length:
                n = min(length, 1 << 20)
                os.pwrite(fd, bytes(n), off)
                off += n
                length -= n
    os.fsync(fd)
    os.close(fd)


main()
