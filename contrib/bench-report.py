#!/usr/bin/env python3
"""Report of `make bench` (contrib/bench.sh): reads DIR/raw.tsv, rss.tsv
and create.tsv, prints the table of ratios and the targets, writes
DIR/summary.csv and draws DIR/chart.png (gnuplot).

  bench-report.py DIR

A ratio is taken inside one run and one location (the same image, the
configurations measured in turn) and the median over runs is reported:
to the ceiling (the better of ceiling-default and ceiling-direct), to the
raw file, and for the targets to live.img with no snapshot.  A second
table sets snapfs beside the peer, qemu-storage-daemon's FUSE export
(qemu-live; qemu-first through a copy-before-write filter), on the
write jobs: no snapshot, first touch, and their ratios.
"""
import collections
import csv
import os
import statistics
import subprocess
import sys

out = sys.argv[1]
mbs = collections.defaultdict(dict)  # (run, where, job) -> config -> MB/s
iops = collections.defaultdict(dict)  # (run, where, job) -> config -> IOPS
floor = collections.defaultdict(dict)  # (run, where) -> copy-floor job -> MB/s
for line in open(os.path.join(out, "raw.tsv")):
    f = [x.strip() for x in line.rstrip("\n").split("\t")]
    if len(f) < 5 or f[4].startswith("ERR"):
        continue
    run, where, config, job = f[:4]
    if config == "copy-floor":
        floor[(run, where)][job] = float(f[4])
    else:
        mbs[(run, where, job)][config] = float(f[4])
        if len(f) > 5 and f[5]:
            iops[(run, where, job)][config] = float(f[5])

CONFIGS = ["raw", "ceiling-default", "ceiling-direct", "live-full",
           "live-process", "bookmark-full", "1snap-first-full", "1snap-first-process",
           "1snap-rewrite-full", "10snap-first-full", "10snap-rewrite-full",
           "snapimg-none", "snapimg-all", "snapimg-4k", "qemu-live",
           "qemu-first"]
PEER = ["qemu-live", "qemu-first"]  # not snapfs: no snapfs target applies
wheres = sorted({k[1] for k in mbs}, key=lambda w: (w != "disk", w))
jobs = sorted({k[2] for k in mbs}, key=lambda j: (not j.startswith("seq"), j))
# write jobs in the peer table: 4 KiB ones in IOPS, the others in MB/s
WRITE_JOBS = ["seq-write-1M-sync-buf", "seq-write-1M-qd4-dio", "distinct-seq-1M-qd4-dio",
              "randwrite-4k-sync-buf", "randwrite-4k-qd16-dio", "distinct-4k-qd16-dio"]


def ceiling(v):
    return max(v.get("ceiling-default", 0), v.get("ceiling-direct", 0))


def ratios(where, job, config, base):
    """Per-run ratios of config to base(values) for one job."""
    r = []
    for (run, w, j), v in mbs.items():
        if w == where and j == job and config in v and base(v):
            r.append(v[config] / base(v))
    return r


def of(config):
    return lambda v: v.get(config, 0)


def med(x):
    return statistics.median(x) if x else None


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


rows = []
for where in wheres:
    print(f"\n{where}: MB/s of the ceiling; every other column is the median over runs of MB/s / ceiling")
    present = [c for c in CONFIGS[3:] if any(c in v for (r, w, j), v in mbs.items() if w == where)]
    print(f"{'job':24} {'ceiling':>8} {'raw':>6} " + " ".join(f"{c:>10.10}" for c in present))
    for job in jobs:
        ceil = med([ceiling(v) for (r, w, j), v in mbs.items() if w == where and j == job and ceiling(v)])
        cells = {c: med(ratios(where, job, c, ceiling)) for c in ["raw"] + present}
        print(f"{job:24} {fmt(ceil, '8.0f')} {fmt(cells['raw']):>6} " +
              " ".join(f"{fmt(cells[c]):>10}" for c in present))
        for c in CONFIGS:
            vals = [v[c] for (r, w, j), v in mbs.items() if w == where and j == job and c in v]
            if not vals:
                continue
            rows.append({"where": where, "job": job, "config": c,
                         "mb_s": round(med(vals), 1),
                         "to_ceiling": fmt(med(ratios(where, job, c, ceiling))),
                         "to_raw": fmt(med(ratios(where, job, c, lambda v: v.get("raw", 0)))),
                         "runs": len(vals)})

for where in wheres:
    print(f"\n{where}: snapfs and the peer (qemu-storage-daemon, FUSE export) on the write jobs;"
          "\n  values are medians over runs (IOPS for 4k jobs, else MB/s); ratios are medians of"
          "\n  per-run ratios: first touch / no snapshot for each, then snapfs's first touch"
          "\n  (durability=full, and =process: qemu's copies are not flushed before the"
          "\n  overwrite either) / qemu's")
    print(f"{'job':24} {'unit':>4} {'live-full':>10} {'1snap-1st':>10} {'ft/ns':>6} "
          f"{'qemu-live':>10} {'qemu-1st':>10} {'ft/ns':>6} {'full/qemu':>9} {'proc/qemu':>9}")
    for job in WRITE_JOBS:
        if not any(w == where and j == job and set(PEER) & set(v) for (r, w, j), v in mbs.items()):
            continue
        unit, table = ("IOPS", iops) if "-4k-" in job else ("MB/s", mbs)

        def value(c):
            return med([v[c] for (r, w, j), v in table.items() if w == where and j == job and c in v])
        print(f"{job:24} {unit:>4} {fmt(value('live-full'), '10.0f')} "
              f"{fmt(value('1snap-first-full'), '10.0f')} "
              f"{fmt(med(ratios(where, job, '1snap-first-full', of('live-full')))):>6} "
              f"{fmt(value('qemu-live'), '10.0f')} {fmt(value('qemu-first'), '10.0f')} "
              f"{fmt(med(ratios(where, job, 'qemu-first', of('qemu-live')))):>6} "
              f"{fmt(med(ratios(where, job, '1snap-first-full', of('qemu-first')))):>9} "
              f"{fmt(med(ratios(where, job, '1snap-first-process', of('qemu-first')))):>9}")

# targets
targets = []
bounds = []  # (where, copy-floor bound on first touch / no snapshot)


def target(name, where, value, limit, ok):
    targets.append({"target": name, "where": where, "value": fmt(value), "limit": limit,
                    "met": "-" if value is None else ("met" if ok(value) else "missed")})


for where in wheres:
    def live(c):
        return lambda v: v.get("live-full", 0)
    for job in ("seq-read-1M-sync-buf", "seq-read-1M-qd4-dio",
                "seq-write-1M-sync-buf", "seq-write-1M-qd4-dio"):
        target(f"live {job}, no snapshot / ceiling", where,
               med(ratios(where, job, "live-full", ceiling)), ">= 0.95", lambda x: x >= 0.95)
    for job in ("randread-4k-qd16-dio", "randwrite-4k-qd16-dio"):
        target(f"live {job}, no snapshot / ceiling", where,
               med(ratios(where, job, "live-full", ceiling)), ">= 0.9", lambda x: x >= 0.9)
    # The most first touch could reach if copying were all it did: each
    # 4 KiB write moves a 64 KiB chunk in and out at the copy-floor rates.
    bound = []
    for (run, w), fl in floor.items():
        v = mbs.get((run, w, "randwrite-4k-qd16-dio"), {})
        r = fl.get("randread-64k-qd16-dio") or fl.get("randread-64k-qd16-buf")
        wr = fl.get("write-64k-qd16-dio") or fl.get("write-64k-qd16-buf")
        if w == where and r and wr and v.get("live-full"):
            bound.append(4096 / (65536 / r + 65536 / wr) / v["live-full"])
    if bound:
        bounds.append((where, med(bound)))
    for job in ("randwrite-4k-sync-buf", "randwrite-4k-qd16-dio"):
        target(f"{job} first touch, 1 snapshot / no snapshot", where,
               med(ratios(where, job, "1snap-first-full", live(0))), ">= 0.5", lambda x: x >= 0.5)
        target(f"{job} rewrite, 1 snapshot / no snapshot", where,
               med(ratios(where, job, "1snap-rewrite-full", live(0))), ">= 0.9", lambda x: x >= 0.9)
    for job in WRITE_JOBS:
        target(f"{job}, bookmark only / no snapshot", where,
               med(ratios(where, job, "bookmark-full", live(0))), ">= 0.9", lambda x: x >= 0.9)
    for job in ("distinct-4k-qd16-dio", "distinct-seq-1M-qd4-dio"):
        target(f"{job} first touch, 1 snapshot / no snapshot", where,
               med(ratios(where, job, "1snap-first-full", live(0))), ">= 0.5", lambda x: x >= 0.5)
    for job in ("distinct-4k-qd16-dio", "randwrite-4k-qd16-dio"):
        target(f"{job} first touch, snapfs / qemu-first", where,
               med(ratios(where, job, "1snap-first-full", of("qemu-first"))), ">= 5",
               lambda x: x >= 5)
    for c in ("snapimg-none", "snapimg-all"):
        for job in ("seq-read-1M-sync-buf", "seq-read-1M-qd4-dio"):
            target(f"{c} {job} / live.img's", where,
                   med(ratios(where, job, c, live(0))), ">= 0.9", lambda x: x >= 0.9)
    target("snapimg-4k randread-4k-qd16-dio / live.img's", where,
           med(ratios(where, "randread-4k-qd16-dio", "snapimg-4k", live(0))), ">= 0.8",
           lambda x: x >= 0.8)

create = collections.defaultdict(dict)
for line in open(os.path.join(out, "create.tsv")):
    f = line.split("\t")
    if len(f) == 5:
        create[(f[0], int(f[1]))][f[2]] = (float(f[3]), float(f[4]))
for (sz, count), m in sorted(create.items()):
    if "create" in m:
        target(f"snapfsctl create, {sz} image, {count} snapshots (median ms)", "disk",
               m["create"][0], "< 10", lambda x: x < 10)

rss = []
for line in open(os.path.join(out, "rss.tsv")):
    f = line.split()
    if len(f) == 4 and f[3].isdigit():
        rss.append((f[1], f[2], int(f[3])))
size_of = {"counts-1G": 1 << 30, "counts-1T": 1 << 40}
img_size = None
info = open(os.path.join(out, "info.txt")).read()
for tok in info.split():
    if tok.startswith("size="):
        n, unit = tok[5:-1], tok[-1]
        img_size = int(n) << {"K": 10, "M": 20, "G": 30, "T": 40}.get(unit, 0)
peak = collections.defaultdict(int)
for where, config, kib in rss:
    if config.startswith("ceiling") or config in PEER:
        continue
    peak[(where, config)] = max(peak[(where, config)], kib)
for (where, config), kib in sorted(peak.items()):
    size = size_of.get(config, img_size) or 0
    limit = 64 * 1024 + size // 4096 * 2 // 8 // 1024  # KiB: 64 MiB + 2 bits/4 KiB
    target(f"peak RSS MiB, {config}", where, kib / 1024, f"< {limit / 1024:.1f}",
           lambda x, l=limit: x * 1024 < l)

checks = collections.defaultdict(list)  # (where, config) -> "ok" or "N bad" per run
if os.path.exists(os.path.join(out, "check.tsv")):
    for line in open(os.path.join(out, "check.tsv")):
        f = line.rstrip("\n").split("\t")
        if len(f) == 4:
            checks[(f[1], f[2])].append(f[3])
if checks:
    print("\ndata check (16384 random 4 KiB O_DIRECT writes at queue depth 16 over 64 MiB,"
          "\n  read back, fio crc32c verify; per run):")
    for (where, config), res in sorted(checks.items()):
        print(f"  {where:6} {config:12} {', '.join(res)}")

print("\ncreate latency and large-image operations (ms, median and max):")
for (sz, count), m in sorted(create.items()):
    for metric, (md, mx) in m.items():
        print(f"  {sz:3} image, {count:4} snapshots: {metric:14} {md:8.2f} {mx:8.2f}")
print("\ntargets:")
for t in targets:
    print(f"  {t['met']:6} {t['where']:6} {t['target']:62} {t['value']:>7} {t['limit']}")
for where, b in bounds:
    print(f"  copy floor, {where}: 64 KiB read + 64 KiB write per first touch at the storage's own"
          f"\n    rates allow at most {b:.2f} of no-snapshot randwrite-4k-qd16-dio")

with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["kind", "where", "name", "config", "value", "to_ceiling", "to_raw", "limit", "met"])
    for r in rows:
        w.writerow(["fio_mb_s", r["where"], r["job"], r["config"], r["mb_s"],
                    r["to_ceiling"], r["to_raw"], "", ""])
    for (sz, count), m in sorted(create.items()):
        for metric, (md, mx) in m.items():
            w.writerow(["ms", "disk", f"{metric} {sz} {count} snapshots", "", md, "", "", "", ""])
    for where, config, kib in rss:
        w.writerow(["rss_kib", where, "peak RSS", config, kib, "", "", "", ""])
    for t in targets:
        w.writerow(["target", t["where"], t["target"], "", t["value"], "", "", t["limit"], t["met"]])
    for where, b in bounds:
        w.writerow(["bound", where, "copy floor: first touch / no snapshot at most",
                    "", fmt(b), "", "", "", ""])
    for (run, where), fl in sorted(floor.items()):
        for job, v in sorted(fl.items()):
            w.writerow(["fio_mb_s", where, job, "copy-floor", v, "", "", "", ""])
    for (where, config), res in sorted(checks.items()):
        for r in res:
            w.writerow(["data_check", where, "4k qd16 dio verify", config, r, "", "", "", ""])
    for where in wheres:
        for job in WRITE_JOBS:
            for name, c, base in (("first touch / no snapshot", "1snap-first-full", "live-full"),
                                  ("first touch / no snapshot", "qemu-first", "qemu-live"),
                                  ("snapfs first touch / qemu's", "1snap-first-full", "qemu-first"),
                                  ("snapfs first touch / qemu's", "1snap-first-process",
                                   "qemu-first")):
                r = med(ratios(where, job, c, of(base)))
                if r is not None:
                    w.writerow(["peer_ratio", where, f"{job} {name}", c, fmt(r), "", "", "", ""])

# chart: ratio to the ceiling per job, one panel per location
chart = ["raw", "live-full", "live-process", "1snap-first-full", "1snap-rewrite-full",
         "10snap-first-full", "10snap-rewrite-full", "snapimg-none", "snapimg-all",
         "snapimg-4k", "qemu-live", "qemu-first"]
plot = [f"set terminal pngcairo size 1400,{450 * len(wheres)} font 'sans,9'" if
        subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], capture_output=True).returncode == 0
        else f"set terminal png size 1400,{450 * len(wheres)}",
        f"set output '{out}/chart.png'",
        f"set multiplot layout {len(wheres)},1",
        "set style data histogram", "set style histogram cluster gap 1",
        "set style fill solid border -1", "set boxwidth 0.9",
        "set datafile missing '-'", "set yrange [0:1.4]", "set grid ytics",
        "set ytics 0.2", "set key outside right top vertical",
        "set xtics rotate by -20 scale 0", "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2"]
for where in wheres:
    dat = os.path.join(out, f"chart-{where}.dat")
    with open(dat, "w") as f:
        f.write("job " + " ".join(chart) + "\n")
        for job in jobs:
            f.write(job + " " + " ".join(fmt(med(ratios(where, job, c, ceiling))) for c in chart) + "\n")
    plot.append(f"set title 'snapfs and qemu / ceiling (MB/s), {where}, median of runs'")
    # gnuplot's default colours repeat after eight: the peer's columns
    # get grey hatching of their own
    style = {"qemu-live": " fs pattern 4 lc rgb '#505050'",
             "qemu-first": " fs pattern 5 lc rgb '#909090'"}
    plot.append("plot " + ", ".join(
        f"'{dat}' using {i + 2}:xtic(1) title columnheader{style.get(c, '')}"
        for i, c in enumerate(chart)))
plot.append("unset multiplot")
subprocess.run(["gnuplot"], input="\n".join(plot), text=True, check=True)
print(f"\n{out}/summary.csv, {out}/chart.png")
