#!/bin/bash
# The benchmark behind `make bench`: snapfs side by side with the raw
# backing file and with the ceiling (../shared/bench/ceiling.c, a minimal
# tuned FUSE passthrough: what FUSE itself allows on this kernel), on the
# same fresh image, in turn, RUNS times, on disk and on tmpfs.
#
#   contrib/bench.sh [-r RUNS] [-t SEC] [-s SIZE] [-w "disk tmpfs"] [-o DIR] [-C]
#
#   -r RUNS   rounds of everything (3); ratios are medians over rounds
#   -t SEC    measured seconds per fio job (3; each also ramps 1 s)
#   -s SIZE   image size (4G)
#   -w WHERE  locations: disk (under -o DIR) and/or tmpfs (/dev/shm)
#   -o DIR    results and the on-disk images (/var/tmp/snapfs-bench)
#   -C        skip the snapshot-count section (create latency, changed,
#             bitmap reads on 1 GiB and 1 TiB images)
#
# Configurations, each with the job set of ../shared/bench/fio-suite.sh
# named in CORE (writes: WRITES; snapshot images: READS):
#   raw                  the backing file itself
#   ceiling-default      ceiling.c, default options
#   ceiling-direct       ceiling.c, direct_io, parallel direct writes
#   live-full            live.img, no snapshot, durability=full (fresh store)
#   live-process         the same, durability=process
#   1snap-first-{full,process}  a snapshot taken right before each write
#                        job: every chunk the job touches is a first touch
#   1snap-rewrite-full   the same snapshot after every chunk was preserved
#   10snap-first-full    as 1snap-first with 9 older snapshots
#   10snap-rewrite-full  as 1snap-rewrite with 9 older snapshots
#   snapimg-none         reads of a snapshot image none of whose chunks is
#                        preserved (served from the backing)
#   snapimg-all          the same image once every chunk is preserved
#                        (served from the diff store)
#   copy-floor           no FUSE: 64 KiB random reads of the image and
#                        64 KiB writes to a file beside it, queue depth 16,
#                        O_DIRECT on disk and buffered on tmpfs, as the
#                        store writes its copies; what a first touch must
#                        move (the old chunk read and copied) at the
#                        storage's own speed, which bounds first touch
#                        on disk; on tmpfs the writes' speed follows how
#                        fast the host hands out new pages (587 MB/s in
#                        one run, 7.4 GB/s by hand into recycled ones),
#                        and first touch has beaten it: no bound there
# The daemon's peak RSS (VmHWM) is taken at the end of each mount.
#
# Output in DIR/RUN-ID/: raw.tsv (every fio line), rss.tsv, create.tsv,
# summary.csv (medians, ratios to the ceiling, targets) and chart.png;
# the table is printed.  Run as root on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
BENCH=${BENCH:-$top/../shared/bench}
RUNS=3
RUNTIME=3
SIZE=4G
WHERE="disk tmpfs"
DIR=/var/tmp/snapfs-bench
COUNTS=1
while getopts r:t:s:w:o:C o; do
	case $o in
	r) RUNS=$OPTARG ;;
	t) RUNTIME=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	w) WHERE=$OPTARG ;;
	o) DIR=$OPTARG ;;
	C) COUNTS=0 ;;
	*) sed -n '2,36p' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (drop_caches, mounts)" >&2; exit 2; }
{ [ -f "$BENCH/ceiling.c" ] && [ -f "$BENCH/fio-suite.sh" ]; } ||
	{ echo "bench: no ceiling.c and fio-suite.sh in $BENCH (set BENCH=)" >&2; exit 2; }
for t in fio jq gnuplot; do
	command -v $t >/dev/null || { echo "bench: $t missing (contrib/deps.sh installs it)" >&2; exit 2; }
done

CORE='^(seq-read-1M-sync-buf|seq-write-1M-sync-buf|seq-read-1M-qd4-dio|seq-write-1M-qd4-dio|randread-4k-sync-buf|randwrite-4k-sync-buf|randread-4k-qd16-dio|randwrite-4k-qd16-dio)$'
WRITES=(seq-write-1M-sync-buf seq-write-1M-qd4-dio randwrite-4k-sync-buf randwrite-4k-qd16-dio)
READS='^(seq-read-1M-sync-buf|seq-read-1M-qd4-dio|randread-4k-sync-buf|randread-4k-qd16-dio)$'

OUT=$DIR/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" "$DIR/mnt"
MNT=$DIR/mnt
# Copies, so that a rebuild during the run changes nothing.
BIN=$OUT/bin
mkdir -p "$BIN"
cp "${SNAPFS:-$top/build/snapfs}" "${SNAPFSCTL:-$top/build/snapfsctl}" "$BIN/"
# shellcheck disable=SC2046 # pkg-config prints several words
gcc -O2 -Wall -o "$BIN/ceiling" "$BENCH/ceiling.c" $(pkg-config --cflags --libs fuse3) -lpthread
SNAPFS=$BIN/snapfs
SNAPFSCTL=$BIN/snapfsctl
{
	echo "# snapfs $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "# $(uname -r), $(nproc) CPUs, runs=$RUNS runtime=${RUNTIME}s size=$SIZE where=$WHERE"
} | tee "$OUT/info.txt"
: >"$OUT/raw.tsv"
: >"$OUT/rss.tsv"
: >"$OUT/create.tsv"

DAEMON=
cleanup() {
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
	[ -z "$DAEMON" ] || kill "$DAEMON" 2>/dev/null || true
	rm -rf /dev/shm/snapfs-bench
}
trap cleanup EXIT

wait_mount() {
	for _ in $(seq 500); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.02
	done
	echo "bench: mount failed" >&2
	exit 1
}
# start CONFIG COMMAND...: runs a daemon in the foreground of a subshell.
start() {
	CONFIG=$1
	shift
	"$@" 2>>"$OUT/daemon.log" &
	DAEMON=$!
	wait_mount
}
# stop: unmounts, records the daemon's peak RSS for CONFIG.
stop() {
	local hwm
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON/status")
	printf '%s\t%s\t%s\t%s\n' "$run" "$where" "$CONFIG" "$hwm" >>"$OUT/rss.tsv"
	fusermount3 -u "$MNT"
	local rc=0
	wait "$DAEMON" || rc=$?
	[ $rc = 0 ] || { echo "bench: daemon exited with $rc" >&2; exit 1; }
	DAEMON=
}
# suite LABEL FILE REGEX: one fio-suite pass, lines prefixed with run, where.
suite() {
	bash "$BENCH/fio-suite.sh" -t "$RUNTIME" -r 1 -l "$1" -j "$3" "$2" |
		grep -v '^#' | sed "s/^/$run\t$where\t/" | tee -a "$OUT/raw.tsv"  || true
}
snapfs_mount() { # CONFIG DURABILITY
	rm -rf "$STORE"
	start "$1" "$SNAPFS" -f -o store="$STORE",durability="$2" "$IMG" "$MNT"
}
# Writes every chunk of live.img once, so all are preserved.
pretouch() {
	fio --name=pretouch --filename="$MNT/live.img" --rw=write --bs=1M \
		--ioengine=io_uring --iodepth=4 --direct=1 --size="$SIZE" \
		--output=/dev/null
}
first_touch() { # LABEL
	local job u
	for job in "${WRITES[@]}"; do
		u=$("$SNAPFSCTL" create "$MNT")
		suite "$1" "$MNT/live.img" "^$job\$"
		"$SNAPFSCTL" delete "$MNT" "$u"
	done
}
writes_re() { local IFS='|'; echo "^(${WRITES[*]})\$"; }
# copy_floor DIR: the copy-floor lines (see above), cold cache.
copy_floor() {
	local job rw file direct=1 io=dio
	# O_DIRECT on tmpfs copies through a slow path (1.1 against 5.9 GB/s
	# buffered, 64 KiB writes at queue depth 16); the store does not use it.
	[ "$where" = tmpfs ] && direct=0 io=buf
	for job in randread-64k-qd16-$io write-64k-qd16-$io; do
		rw=randread file=$IMG
		[ "${job#write}" != "$job" ] && rw=write file=$1/floor.tmp
		sync
		echo 3 >/proc/sys/vm/drop_caches
		fio --name="$job" --filename="$file" --size="$SIZE" --rw=$rw \
			--bs=64k --ioengine=io_uring --iodepth=16 --direct=$direct \
			--runtime="$RUNTIME" --ramp_time=1 --time_based=1 \
			--output-format=json |
			jq -r --arg p "$(printf '%s\t%s\tcopy-floor\t%s' "$run" "$where" "$job")" '.jobs[0] |
				(.read.bw_bytes + .write.bw_bytes) as $bw |
				(.read.iops + .write.iops) as $iops |
				"\($p)\t\($bw / 1e6 * 10 | round / 10)\t\($iops | round)\t0"' |
			tee -a "$OUT/raw.tsv"
		rm -f "$1/floor.tmp"
	done
}

for run in $(seq "$RUNS"); do
	for where in $WHERE; do
		case $where in
		disk) W=$DIR/data ;;
		tmpfs) W=/dev/shm/snapfs-bench ;;
		*) echo "bench: unknown location $where" >&2; exit 2 ;;
		esac
		mkdir -p "$W"
		IMG=$W/bench.img
		STORE=$W/store
		if [ ! -f "$IMG" ] || [ "$(stat -c %s "$IMG")" != "$(numfmt --from=iec "$SIZE")" ]; then
			rm -f "$IMG"
			truncate -s "$SIZE" "$IMG"
			dd if=/dev/urandom of="$IMG" bs=4M count=$(($(stat -c %s "$IMG") / 4194304)) \
				conv=notrunc,fsync status=none
		fi
		echo "== run $run, $where" >&2

		suite raw "$IMG" "$CORE"
		copy_floor "$W"
		start ceiling-default "$BIN/ceiling" -f -o backing="$IMG" "$MNT"
		suite ceiling-default "$MNT/live.img" "$CORE"
		stop
		start ceiling-direct "$BIN/ceiling" -f -o backing="$IMG",direct_io,pdw,max_background=64 "$MNT"
		suite ceiling-direct "$MNT/live.img" "$CORE"
		stop

		for dur in full process; do
			snapfs_mount "live-$dur" $dur
			suite "live-$dur" "$MNT/live.img" "$CORE"
			stop
			snapfs_mount "1snap-$dur" $dur
			first_touch "1snap-first-$dur"
			if [ $dur = full ]; then
				u=$("$SNAPFSCTL" create "$MNT")
				suite snapimg-none "$MNT/snapshots/$u.img" "$READS"
				pretouch
				suite 1snap-rewrite-full "$MNT/live.img" "$(writes_re)"
				suite snapimg-all "$MNT/snapshots/$u.img" "$READS"
			fi
			stop
		done

		snapfs_mount 10snap-full full
		for _ in $(seq 9); do
			"$SNAPFSCTL" create "$MNT" >/dev/null
			dd if=/dev/urandom of="$MNT/live.img" bs=1M count=64 \
				seek=$((RANDOM % ($(stat -c %s "$IMG") / 1048576 - 64))) \
				conv=notrunc status=none
		done
		first_touch 10snap-first-full
		"$SNAPFSCTL" create "$MNT" >/dev/null
		pretouch
		suite 10snap-rewrite-full "$MNT/live.img" "$(writes_re)"
		stop
		rm -rf "$STORE"
	done
done
rm -rf /dev/shm/snapfs-bench

if [ "$COUNTS" = 1 ]; then
	# create latency, changed and bitmap reads against image size and
	# snapshot count; sparse images on disk, durability=full
	run=1
	where=disk
	for sz in 1G 1T; do
		IMG=$DIR/data/sparse-$sz.img
		STORE=$DIR/data/sparse-$sz.store
		rm -rf "$IMG" "$STORE"
		truncate -s $sz "$IMG"
		snapfs_mount "counts-$sz" full
		python3 "$top/contrib/bench-counts.py" "$MNT" "$SNAPFSCTL" "$sz" |
			tee -a "$OUT/create.tsv"
		stop
		rm -rf "$IMG" "$STORE"
	done
fi

python3 "$top/contrib/bench-report.py" "$OUT"
