#!/bin/bash
# Side-by-side benchmark of live.img against the ceiling (a minimal tuned
# FUSE passthrough, ../shared/bench/ceiling.c) on the same image, taken in
# turn as ../shared/bench/README.md asks: per pair, the ceiling in its two
# configurations (default; direct_io+pdw with max_background=64), snapfs
# with no snapshot, and snapfs with a snapshot taken right before each job
# (every first write to a chunk preserves it: "first touch").
#
#   contrib/bench-compare.sh [-p PAIRS] [-t SEC] [-s SIZE] [-d DIR] [-j REGEX]
#
# Prints, per job, the median over pairs of snapfs / best ceiling (MB/s),
# and the raw lines to DIR/bench-*.tsv.  Run as root on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
BENCH=${BENCH:-$top/../shared/bench}
PAIRS=3
RUNTIME=4
SIZE=2G
DIR=/var/tmp/snapfs-bench
JOBS='^(seq-read-1M-sync-buf|seq-write-1M-sync-buf|seq-read-1M-qd4-dio|seq-write-1M-qd4-dio|randread-4k-qd16-dio|randwrite-4k-qd16-dio|randread-4k-sync-buf|randwrite-4k-sync-buf)$'
while getopts p:t:s:d:j: o; do
	case $o in
	p) PAIRS=$OPTARG ;;
	t) RUNTIME=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	d) DIR=$OPTARG ;;
	j) JOBS=$OPTARG ;;
	*) exit 2 ;;
	esac
done
SNAPFS=${SNAPFS:-$top/build/snapfs}
SNAPFSCTL=${SNAPFSCTL:-$top/build/snapfsctl}
[ -x "$SNAPFS" ] || { echo "build snapfs first (contrib/demo.sh builds build/)" >&2; exit 1; }

mkdir -p "$DIR/mnt"
CEIL=$DIR/ceiling
gcc -O2 -Wall -o "$CEIL" "$BENCH/ceiling.c" $(pkg-config --cflags --libs fuse3) -lpthread
IMG=$DIR/bench.img
rm -rf "$IMG" "$IMG.snapfs"
truncate -s "$SIZE" "$IMG"
dd if=/dev/urandom of="$IMG" bs=4M count=$(($(stat -c %s "$IMG") / 4194304)) conv=notrunc,fsync status=none
OUT=$DIR/bench-$(date +%Y%m%d-%H%M%S).tsv
: >"$OUT"
trap 'fusermount3 -u "$DIR/mnt" 2>/dev/null || true' EXIT

wait_mount() {
	for _ in $(seq 250); do mountpoint -q "$DIR/mnt" && return 0; sleep 0.02; done
	echo "mount failed" >&2
	exit 1
}
suite() { # LABEL [fio-suite args]
	local label=$1
	shift
	bash "$BENCH/fio-suite.sh" -t "$RUNTIME" -r 1 -l "$label" "$@" "$DIR/mnt/live.img" |
		sed "s/^/$pair\t/" | tee -a "$OUT"
}

for pair in $(seq "$PAIRS"); do
	"$CEIL" -f -o backing="$IMG" "$DIR/mnt" & wait_mount
	suite ceiling-default -j "$JOBS"
	fusermount3 -u "$DIR/mnt"; wait
	"$CEIL" -f -o backing="$IMG",direct_io,pdw,max_background=64 "$DIR/mnt" & wait_mount
	suite ceiling-direct -j "$JOBS"
	fusermount3 -u "$DIR/mnt"; wait

	"$SNAPFS" -o store="$IMG.snapfs" "$IMG" "$DIR/mnt"
	suite snapfs -j "$JOBS"
	# first touch: a fresh snapshot before each job, deleted after it
	for job in seq-read-1M-sync-buf seq-write-1M-sync-buf seq-read-1M-qd4-dio \
		seq-write-1M-qd4-dio randread-4k-qd16-dio randwrite-4k-qd16-dio \
		randread-4k-sync-buf randwrite-4k-sync-buf; do
		[[ $job =~ $JOBS ]] || continue
		u=$("$SNAPFSCTL" create "$DIR/mnt")
		suite snapfs-1snap -j "^$job\$"
		"$SNAPFSCTL" delete "$DIR/mnt" "$u"
	done
	fusermount3 -u "$DIR/mnt"
	sleep 0.5
done

python3 - "$OUT" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(dict)  # (pair, job) -> label -> MB/s
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 6 or f[1].startswith("#") or f[3].strip() == "ERR":
        continue
    pair, label, job, mbs = f[0], f[1], f[2].strip(), float(f[3])
    rows[(pair, job)][label] = mbs
jobs = sorted({j for _, j in rows})
print(f"{'job':28} {'ceiling MB/s':>12} {'snapfs':>8} {'1 snap':>8}   (median of per-pair ratios to the better ceiling)")
for job in jobs:
    r0, r1, ceil = [], [], []
    for (pair, j), v in rows.items():
        if j != job:
            continue
        c = max(v.get("ceiling-default", 0), v.get("ceiling-direct", 0))
        if not c:
            continue
        ceil.append(c)
        if "snapfs" in v:
            r0.append(v["snapfs"] / c)
        if "snapfs-1snap" in v:
            r1.append(v["snapfs-1snap"] / c)
    m = lambda x: f"{statistics.median(x):.2f}" if x else "-"
    print(f"{job:28} {statistics.median(ceil):12.0f} {m(r0):>8} {m(r1):>8}")
PY
echo "raw: $OUT"
