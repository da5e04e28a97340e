#!/usr/bin/env python3
"""Snapshot-count part of `make bench` (contrib/bench.sh).

  bench-counts.py MNT SNAPFSCTL SIZE_LABEL

On a mounted snapfs: grows the chain to 1, 100 and 1000 snapshots (one
random 4 KiB write into live.img before each, so every generation has a
change), and at each count times `snapfsctl create` as a script sees it
(the whole command) for 11 create + delete pairs, the count staying put.
At 1000 it writes 1000 random 4 KiB blocks and times `snapfsctl changed
--from` the snapshot 50 back (50 bitmaps OR'ed; older ones are dropped
at the default cbt_keep=64), and a read of the open and of a closed
bitmap.  Prints tab-separated rows: size, snapshots, metric, median ms,
max ms.
"""
import os
import random
import statistics
import subprocess
import sys
import time

mnt, ctl, label = sys.argv[1:4]
live = os.path.join(mnt, "live.img")
size = os.stat(live).st_size
fd = os.open(live, os.O_WRONLY)
rng = random.Random(1)


def poke():
    os.pwrite(fd, os.urandom(4096), rng.randrange(size // 4096) * 4096)


def timed(argv):
    t = time.perf_counter()
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return (time.perf_counter() - t) * 1000, out.stdout


def row(count, metric, samples):
    print(f"{label}\t{count}\t{metric}\t{statistics.median(samples):.2f}"
          f"\t{max(samples):.2f}", flush=True)


uuids = []
for target in (1, 100, 1000):
    while len(uuids) < target:
        poke()
        uuids.append(timed([ctl, "create", mnt])[1].strip())
    samples = []
    for _ in range(11):
        poke()
        ms, u = timed([ctl, "create", mnt])
        samples.append(ms)
        subprocess.run([ctl, "delete", mnt, u.strip()], check=True)
    row(target, "create", samples)

for _ in range(1000):
    poke()
os.fsync(fd)
row(1000, "changed-50", [timed([ctl, "changed", mnt, "--from", uuids[-50]])[0]
                         for _ in range(5)])
bitmaps = sorted(int(n.split(".")[0]) for n in os.listdir(os.path.join(mnt, "cbt")))
for name, gen in (("bitmap-open", bitmaps[-1]), ("bitmap-closed", bitmaps[-2])):
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        with open(os.path.join(mnt, "cbt", f"{gen}.bitmap"), "rb") as f:
            while f.read(1 << 20):
                pass
        samples.append((time.perf_counter() - t) * 1000)
    row(1000, name, samples)
os.close(fd)
