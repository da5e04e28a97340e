#!/usr/bin/env python3
"""Power-loss replay of a snapfs write-ordering log (src/iolog.c).

  replay.py LOG IMAGE STORE SIZE SUMS MNT SNAPFS SNAPFSCTL [CUTS] [SEED] [KEPT]

For CUTS points of the log (after syncs, spread over it), rebuilds what a
power loss there could leave: of each file (the image, the data file, the
index and its WAL), every write its last sync before the cut covered, and
a random subset of the later ones.  The image is rewritten in place (the
store knows it by inode), the store's files are rewritten, and then:
`snapfsctl check` passes, snapfs mounts it, every snapshot it shows has
the checksum it had at creation (SUMS: "uuid sha256" lines), every
snapshot whose creation had returned before the cut is there, every
snapshot deleted with --keep-bookmark (KEPT: a uuid a line) is a
snapshot or a bookmark, every bookmark is one of those and works as
`changed --from`, the bitmaps since the newest snapshot cover every
block where live.img differs from it, and a revert the cut fell in (its
"revert" mark before the cut, its "reverted" mark not) is finished by the
mount: live.img is that snapshot.  Every sync point inside a revert is a
cut, besides the CUTS spread over the log.
"""
import hashlib
import os
import random
import sqlite3
import struct
import subprocess
import sys
import time

REC = struct.Struct("<IBBHQQ")
MAGIC = 0x4F494E53
BACKING, DATA, INDEX, WAL, OTHER = range(5)
NAMES = {DATA: "data", INDEX: "index.db", WAL: "index.db-wal"}
BS = 65536


def parse(path):
    recs = []
    with open(path, "rb") as f:
        while True:
            h = f.read(REC.size)
            if len(h) < REC.size:
                break
            magic, kind, file, _, off, ln = REC.unpack(h)
            if magic != MAGIC:
                raise SystemExit("bad log record")
            kind = chr(kind)
            data = f.read(ln) if kind in "WM" else None
            recs.append((kind, file, off, ln, data))
    return recs


def build(recs, cut, rng):
    """File contents (bytearrays) as a power loss at cut could leave."""
    last_sync = {}
    for i in range(cut):
        k, f = recs[i][0], recs[i][1]
        if k == "S":
            last_sync[f] = i
    files, exists = {}, set()
    for i in range(cut):
        k, f, off, ln, data = recs[i]
        if k in "SM":
            continue
        exists.add(f)
        if i > last_sync.get(f, -1) and rng.random() < 0.5:
            continue  # not yet synced: lost in this crash
        b = files.setdefault(f, bytearray())
        if k == "W":
            if len(b) < off + ln:
                b.extend(bytes(off + ln - len(b)))
            b[off:off + ln] = data
        elif k == "Z":
            end = min(off + ln, len(b))
            if off < end:
                b[off:end] = bytes(end - off)
        elif k == "T":
            del b[off:]
    return files, exists


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bits(data):
    return {i for i in range(len(data) * 8) if data[i // 8] >> (i % 8) & 1}


def main():
    (log, image, store, size, sums_path, mnt, snapfs, snapfsctl) = sys.argv[1:9]
    cuts = int(sys.argv[9]) if len(sys.argv) > 9 else 20
    rng = random.Random(int(sys.argv[10]) if len(sys.argv) > 10 else 1)
    size = int(size)
    recs = parse(log)
    sums = dict(line.split() for line in open(sums_path) if line.strip())
    kept = set(open(sys.argv[11]).read().split()) if len(sys.argv) > 11 else set()
    marks = [(i, *r[4].decode().split()) for i, r in enumerate(recs)
             if r[0] == "M"]
    # The clean stop records the backing's modification time, which this
    # harness cannot reproduce when it rewrites the image: cuts stop there.
    end = next((i for i, k, *_ in marks if k == "clean"), len(recs))
    points = [i + 1 for i, r in enumerate(recs[:end]) if r[0] == "S"] + [end]
    # revert windows: from its mark (the record is durable) to "reverted"
    windows = []
    for i, k, *rest in marks:
        if k == "revert":
            done = next((j for j, k2, *r2 in marks
                         if j > i and k2 == "reverted" and r2 == rest), end)
            windows.append((i, done, rest[0]))

    def reverting(cut):
        return next((u for a, b, u in windows if a < cut <= b), None)

    inside = [p for p in points if reverting(p)]
    if len(points) > cuts:
        points = sorted(set(rng.sample(points, cuts)) | set(inside))
    reverted_cuts = 0
    for n, cut in enumerate(points):
        files, exists = build(recs, cut, rng)
        img = files.get(BACKING, bytearray())
        with open(image, "r+b") as f:
            f.truncate(0)
            f.truncate(size)
            f.write(img[:size])
        for name in os.listdir(store):
            os.unlink(os.path.join(store, name))
        # store.c renames a whole new store into place, then marks it: a
        # cut before that leaves no store (the next mount makes one)
        made = any(k == "store" and i < cut for i, k, _ in marks)
        if made:
            exists |= {DATA, INDEX}
            for fid, name in NAMES.items():
                if fid in exists:
                    with open(os.path.join(store, name), "wb") as f:
                        f.write(files.get(fid, b""))
            chk = subprocess.run([snapfsctl, "check", store],
                                 capture_output=True, text=True)
            if chk.returncode:
                raise SystemExit(f"cut {cut}: store check failed:\n"
                                 f"{chk.stdout}")
            # a power loss means a new boot: the daemon must not take
            # what it finds for a crash it survived (cbt.map is gone too)
            db = sqlite3.connect(os.path.join(store, "index.db"))
            db.execute("UPDATE meta SET value='another-boot' "
                       "WHERE key='run_boot_id'")
            db.commit()
            db.close()
        errlog = open(os.path.join(os.path.dirname(log), "replay-daemon.log"),
                      "w")
        d = subprocess.Popen([snapfs, "-f", "-o", f"store={store}", image, mnt],
                             stderr=errlog)
        for _ in range(500):
            if os.path.ismount(mnt) or d.poll() is not None:
                break
            time.sleep(0.02)
        if not os.path.ismount(mnt):
            raise SystemExit(f"cut {cut}: snapfs did not mount (see "
                             f"{errlog.name})")
        # a revert the cut interrupted is finished once mounted; live.img
        # opens (no EBUSY) when it is done
        for _ in range(3000):
            try:
                os.close(os.open(os.path.join(mnt, "live.img"), os.O_RDONLY))
                break
            except OSError:
                time.sleep(0.02)
        try:
            shown = [f[:-4] for f in os.listdir(os.path.join(mnt, "snapshots"))]
            for u in shown:
                if u not in sums:
                    raise SystemExit(f"cut {cut}: unknown snapshot {u}")
                if sha(os.path.join(mnt, "snapshots", u + ".img")) != sums[u]:
                    raise SystemExit(f"cut {cut}: snapshot {u} changed")
            # creations that had returned, unless a deletion had begun
            gone = {u for i, k, u in marks if i < cut and k == "deleting"}
            for i, k, u in marks:
                if i < cut and k == "snapshot" and u not in shown \
                        and u not in gone:
                    raise SystemExit(f"cut {cut}: snapshot {u} lost")
            out = subprocess.run([snapfsctl, "bookmarks", mnt],
                                 capture_output=True, text=True, check=True)
            bookmarks = {l.split()[0] for l in out.stdout.splitlines()[1:]}
            if bookmarks - kept:
                raise SystemExit(f"cut {cut}: bookmarks never asked for: "
                                 f"{bookmarks - kept}")
            for i, k, u in marks:
                if i < cut and k == "snapshot" and u in kept \
                        and u not in shown and u not in bookmarks:
                    raise SystemExit(f"cut {cut}: {u}, deleted to stay as a "
                                     "bookmark, is gone")
            for b in bookmarks:
                if subprocess.run([snapfsctl, "changed", mnt, "--from", b],
                                  capture_output=True).returncode:
                    raise SystemExit(f"cut {cut}: changed --from bookmark "
                                     f"{b} failed")
            target = reverting(cut)
            if target:
                if sha(os.path.join(mnt, "live.img")) != sums[target]:
                    raise SystemExit(f"cut {cut}: the revert to {target} "
                                     "was not finished by the mount")
                reverted_cuts += 1
            gens = {}
            for u in shown:
                p = os.path.join(mnt, "snapshots", u + ".img")
                gens[u] = int(os.getxattr(p, "user.snapfs.generation"))
            if gens:
                newest = max(gens, key=gens.get)
                acc = set()
                for name in os.listdir(os.path.join(mnt, "cbt")):
                    g = int(name.split(".")[0])
                    if g > gens[newest]:
                        acc |= bits(open(os.path.join(mnt, "cbt", name),
                                         "rb").read())
                with open(os.path.join(mnt, "snapshots", newest + ".img"),
                          "rb") as a, \
                        open(os.path.join(mnt, "live.img"), "rb") as b:
                    i = 0
                    while True:
                        x, y = a.read(BS), b.read(BS)
                        if not x:
                            break
                        if x != y and i not in acc:
                            raise SystemExit(
                                f"cut {cut}: block {i} changed since "
                                f"{newest} but no bit says so")
                        i += 1
        finally:
            if subprocess.run(["fusermount3", "-u", mnt]).returncode:
                subprocess.run(["fusermount3", "-u", "-z", mnt])
                d.kill()
            d.wait()
        print(f"cut {n + 1}/{len(points)} at record {cut}/{len(recs)}: "
              f"{len(shown)} snapshots, {len(bookmarks)} bookmarks ok")
    print(f"power-loss replay: {len(points)} prefixes of {len(recs)} records, "
          f"{reverted_cuts} inside a revert (finished at mount), no loss")


main()
