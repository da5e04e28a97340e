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
#   bookmark-full        live.img with only a bookmark (a snapshot taken
#                        and deleted with --keep-bookmark), the write jobs:
#                        what a nightly backup leaves between its runs
#   1snap-first-{full,process}  a snapshot taken right before each write
#                        job: every chunk the job touches is a first touch
#   1snap-rewrite-full   the same snapshot after every chunk was preserved
#   10snap-first-full    as 1snap-first with 9 older snapshots
#   10snap-rewrite-full  as 1snap-rewrite with 9 older snapshots
#   qemu-live            the peer: qemu-storage-daemon exporting the same
#                        image over FUSE (raw format node, no filter)
#   qemu-first           the same with a copy-before-write filter on top
#                        and a fresh qcow2 target (64 KiB clusters, beside
#                        the image), inserted by a new daemon right before
#                        each write job, as a fleecing backup does: every
#                        cluster the job touches is a first touch
#                        qemu 7.2's FUSE export (Debian 12) serves requests
#                        on one thread and reads the next one only while a
#                        request waits in a nested poll, into the buffer
#                        of the write still in flight: at a queue depth
#                        above 1 writes land with another write's data
#                        (data_check; fixed upstream in 2025 by "fuse:
#                        Copy write buffer content before polling")
#   snapimg-none         reads of a snapshot image none of whose chunks is
#                        preserved (served from the backing)
#   snapimg-all          the same image once every chunk is preserved
#                        (served from the diff store), by 1 MiB writes in
#                        order: runs of copies in consecutive slots
#   snapimg-4k           a new snapshot's image once every 4 KiB block is
#                        preserved by a 4 KiB write of its own, in random
#                        order: a copy (and an index row) per block
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
# Write configurations also run two jobs of this script's own (DISTINCT),
# each touching every chunk at most once, so that on first touch every
# write is a first touch however fast the job runs:
#   distinct-4k-qd16-dio     4 KiB O_DIRECT writes at queue depth 16, one
#                            into each of up to 16384 different 64 KiB
#                            chunks of the image's first half (at most
#                            2 GiB), in random order: an iolog made once per
#                            bench run with a fixed seed, replayed by fio
#   distinct-seq-1M-qd4-dio  one sequential pass of 1 MiB O_DIRECT writes at
#                            queue depth 4 from offset 0, ending after SEC
#                            seconds or at the image's end
# The daemon's peak RSS (VmHWM) is taken at the end of each mount.
#
# Output in DIR/RUN-ID/: raw.tsv (every fio line), rss.tsv, create.tsv,
# qemu-copied.tsv (bytes in each copy-before-write target), check.tsv
# (whether live-full and qemu-live keep what a writer wrote), summary.csv
# (medians, ratios to the ceiling, targets) and chart.png; the tables
# are printed.  Run as root on an otherwise idle machine.
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
	*) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (drop_caches, mounts)" >&2; exit 2; }
{ [ -f "$BENCH/ceiling.c" ] && [ -f "$BENCH/fio-suite.sh" ]; } ||
	{ echo "bench: no ceiling.c and fio-suite.sh in $BENCH (set BENCH=)" >&2; exit 2; }
for t in fio jq gnuplot qemu-storage-daemon qemu-img; do
	command -v $t >/dev/null || { echo "bench: $t missing (contrib/deps.sh installs it)" >&2; exit 2; }
done

CORE='^(seq-read-1M-sync-buf|seq-write-1M-sync-buf|seq-read-1M-qd4-dio|seq-write-1M-qd4-dio|randread-4k-sync-buf|randwrite-4k-sync-buf|randread-4k-qd16-dio|randwrite-4k-qd16-dio)$'
WRITES=(seq-write-1M-sync-buf seq-write-1M-qd4-dio randwrite-4k-sync-buf randwrite-4k-qd16-dio)
READS='^(seq-read-1M-sync-buf|seq-read-1M-qd4-dio|randread-4k-sync-buf|randread-4k-qd16-dio)$'
# This script's own write jobs (see above; distinct() runs them).
DISTINCT=(distinct-4k-qd16-dio distinct-seq-1M-qd4-dio)

OUT=$DIR/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" "$DIR/mnt"
MNT=$DIR/mnt
# qemu-storage-daemon mounts its FUSE export on a regular file.
QMNT=$DIR/qemu-export
# The copy-before-write target while one exists (removed on exit).
QTARGET=
BYTES=$(numfmt --from=iec "$SIZE")
# The writes of distinct-4k-qd16-dio, in fio's iolog version 2: a header
# line, then "FILE add|open|close" and "FILE write OFFSET LENGTH" lines;
# replay_redirect sends them to the file under test.  A fixed seed: every
# configuration and round replays the same writes in the same order.
IOLOG=$OUT/distinct-4k.iolog
python3 - "$BYTES" "$IOLOG" <<'PY'
import random
import sys

size, path = int(sys.argv[1]), sys.argv[2]
chunk, block = 65536, 4096
nchunks = min(2 << 30, size // 2) // chunk
rng = random.Random(20261203)
with open(path, "w") as f:
    f.write("fio version 2 iolog\nimg add\nimg open\n")
    for c in rng.sample(range(nchunks), min(16384, nchunks)):
        off = c * chunk + rng.randrange(chunk // block) * block
        f.write(f"img write {off} {block}\n")
    f.write("img close\n")
PY
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
	echo "# peer: $(qemu-storage-daemon --version | head -n 1)"
} | tee "$OUT/info.txt"
: >"$OUT/raw.tsv"
: >"$OUT/rss.tsv"
: >"$OUT/create.tsv"
: >"$OUT/qemu-copied.tsv"
: >"$OUT/check.tsv"

DAEMON=
MP=
cleanup() {
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
	if [ -n "$DAEMON" ]; then
		# qemu-storage-daemon unmounts its export as it ends on SIGTERM
		kill "$DAEMON" 2>/dev/null || true
		for _ in $(seq 250); do
			case $(ps -o stat= -p "$DAEMON" 2>/dev/null) in
			'' | Z*) break ;;
			esac
			sleep 0.02
		done
		kill -KILL "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	fi
	umount "$QMNT" 2>/dev/null || umount -l "$QMNT" 2>/dev/null || true
	rm -f "$QMNT" ${QTARGET:+"$QTARGET"}
	rm -rf /dev/shm/snapfs-bench
}
trap cleanup EXIT

wait_mount() {
	for _ in $(seq 500); do
		mountpoint -q "$MP" && return 0
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.02
	done
	echo "bench: mount on $MP failed" >&2
	exit 1
}
# start CONFIG MOUNTPOINT COMMAND...: runs a daemon in the foreground of
# a subshell, waits for its mount.
start() {
	CONFIG=$1
	MP=$2
	shift 2
	"$@" 2>>"$OUT/daemon.log" &
	DAEMON=$!
	wait_mount
}
# stop: unmounts, records the daemon's peak RSS for CONFIG.
stop() {
	local hwm rc=0
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON/status" 2>/dev/null) || true
	printf '%s\t%s\t%s\t%s\n' "$run" "$where" "$CONFIG" "$hwm" >>"$OUT/rss.tsv"
	if [ "$MP" = "$QMNT" ]; then
		# qemu-storage-daemon ends on SIGTERM, flushing and unmounting
		kill "$DAEMON" 2>/dev/null || true
	else
		fusermount3 -u "$MP"
	fi
	wait "$DAEMON" || rc=$?
	[ $rc = 0 ] || { echo "bench: $CONFIG daemon exited with $rc" >&2; exit 1; }
	DAEMON=
	! mountpoint -q "$MP" || { echo "bench: $MP still mounted after $CONFIG" >&2; exit 1; }
}
# suite LABEL FILE REGEX: one fio-suite pass, lines prefixed with run, where.
suite() {
	bash "$BENCH/fio-suite.sh" -t "$RUNTIME" -r 1 -l "$1" -j "$3" "$2" |
		grep -v '^#' | sed "s/^/$run\t$where\t/" | tee -a "$OUT/raw.tsv"  || true
}
# distinct LABEL FILE JOB: one of DISTINCT on FILE, cold cache, the line
# as suite's.  No ramp and no time_based looping: no chunk is written
# twice in one job.
distinct() {
	local args line json=$OUT/distinct.json
	case $3 in
	distinct-4k-qd16-dio)
		args=(--read_iolog="$IOLOG" --replay_redirect="$2" --iodepth=16) ;;
	distinct-seq-1M-qd4-dio)
		args=(--filename="$2" --size="$BYTES" --rw=write --bs=1M --iodepth=4
			--runtime="$RUNTIME") ;;
	*) echo "bench: unknown job $3" >&2; exit 2 ;;
	esac
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if timeout -k 10 600 fio --name="$3" "${args[@]}" --ioengine=io_uring \
		--direct=1 --end_fsync=1 --fallocate=none --invalidate=1 \
		--output-format=json --output="$json" >/dev/null 2>"$json.err" &&
		line=$(jq -er '.jobs[0] | select(.error == 0) | .write |
			[(.bw_bytes / 1e6 * 10 | round / 10), (.iops | round),
			 ((.clat_ns.percentile["99.000000"] // 0) / 1000 | round)] |
			@tsv' "$json"); then
		printf '%s\t%s\t%s\t%-24s\t%s\n' "$run" "$where" "$1" "$3" "$line"
	else
		printf '%s\t%s\t%s\t%-24s\tERR\n' "$run" "$where" "$1" "$3"
		head -c 300 "$json.err" | tr '\n' ' ' >&2
		echo >&2
	fi | tee -a "$OUT/raw.tsv"
	rm -f "$json" "$json.err"
}
# data_check LABEL FILE: does FILE keep what a queue-depth-16 O_DIRECT
# writer wrote?  16384 random 4 KiB writes over the first 64 MiB, read
# back and checked (fio's crc32c verify); a line in check.tsv: run,
# where, config, "ok" or the count of bad blocks.  Throughput means
# little for a server that loses writes (qemu 7.2's FUSE export does at
# a queue depth above 1, see qemu-first above).
data_check() {
	local res=ok err=$OUT/check.err
	if ! timeout -k 10 300 fio --name=check --filename="$2" --size=64M \
		--rw=randwrite --bs=4k --ioengine=io_uring --iodepth=16 --direct=1 \
		--verify=crc32c --do_verify=1 --verify_fatal=0 --verify_state_save=0 \
		--output=/dev/null 2>"$err"; then
		res="$(grep -c '^verify: bad' "$err" || true) bad"
	fi
	printf '%s\t%s\t%s\t%s\n' "$run" "$where" "$1" "$res" >>"$OUT/check.tsv"
	rm -f "$err"
}
distincts() { # LABEL FILE: every job of DISTINCT
	local job
	for job in "${DISTINCT[@]}"; do
		distinct "$1" "$2" "$job"
	done
}
core() { # LABEL FILE: the CORE jobs and DISTINCT's
	suite "$1" "$2" "$CORE"
	distincts "$1" "$2"
}
write_job() { # LABEL FILE JOB: one job of WRITES or DISTINCT
	case $3 in
	distinct-*) distinct "$1" "$2" "$3" ;;
	*) suite "$1" "$2" "^$3\$" ;;
	esac
}
snapfs_mount() { # CONFIG DURABILITY
	rm -rf "$STORE"
	start "$1" "$MNT" "$SNAPFS" -f -o store="$STORE",durability="$2" "$IMG" "$MNT"
}
# Writes every chunk of live.img once, so all are preserved: 1 MiB
# writes in order, or (4k) 4 KiB writes in random order, each block once.
pretouch() {
	local rw=write bs=1M qd=4
	[ "${1:-}" = 4k ] && rw=randwrite bs=4k qd=16
	fio --name=pretouch --filename="$MNT/live.img" --rw=$rw --bs=$bs \
		--ioengine=io_uring --iodepth=$qd --direct=1 --size="$SIZE" \
		--output=/dev/null
}
first_touch() { # LABEL
	local job u
	for job in "${WRITES[@]}" "${DISTINCT[@]}"; do
		u=$("$SNAPFSCTL" create "$MNT")
		write_job "$1" "$MNT/live.img" "$job"
		"$SNAPFSCTL" delete "$MNT" "$u"
	done
}
# qsd CONFIG [TARGET]: qemu-storage-daemon exporting IMG over FUSE at
# QMNT, writable; with TARGET (a qcow2 image) through a copy-before-write
# filter, which copies each cluster to TARGET before its first overwrite.
qsd() {
	local direct=on node=fmt0 args
	# cache.direct: the image goes through the page cache (off), as
	# snapfs (backing.c) and the ceiling reach it, so that qemu-live and
	# live-* differ in the FUSE server alone; the target is written as
	# snapfs's store writes its copies (store.c, open_direct_writer):
	# O_DIRECT on disk, where it is the faster way to write data seldom
	# read again, through the page cache on tmpfs, where O_DIRECT is
	# only an emulated copy.  Commas in paths are doubled for qemu.
	[ "$where" = tmpfs ] && direct=off
	args=(--blockdev "driver=file,node-name=file0,filename=${IMG//,/,,},cache.direct=off"
		--blockdev "driver=raw,node-name=fmt0,file=file0")
	if [ $# -gt 1 ]; then
		args+=(--blockdev "driver=file,node-name=tfile0,filename=${2//,/,,},cache.direct=$direct"
			--blockdev "driver=qcow2,node-name=tgt0,file=tfile0"
			--blockdev "driver=copy-before-write,node-name=cbw0,file=fmt0,target=tgt0")
		node=cbw0
	fi
	: >"$QMNT"
	start "$1" "$QMNT" qemu-storage-daemon "${args[@]}" \
		--export "type=fuse,id=exp0,node-name=$node,mountpoint=${QMNT//,/,,},writable=on"
}
# qemu_first: qemu's first touch.  The snapshot instant is the filter's
# insertion, so each write job gets a new daemon with a fresh target (as
# first_touch takes a fresh snapshot); the bytes it copied go to
# qemu-copied.tsv (run, where, job, bytes).
qemu_first() {
	local job
	QTARGET=$W/qemu-target.qcow2
	for job in "${WRITES[@]}" "${DISTINCT[@]}"; do
		rm -f "$QTARGET"
		qemu-img create -q -f qcow2 -o cluster_size=65536 "$QTARGET" "$BYTES"
		qsd qemu-first "$QTARGET"
		write_job qemu-first "$QMNT" "$job"
		stop
		printf '%s\t%s\t%s\t%s\n' "$run" "$where" "$job" "$(qemu-img map --output=json "$QTARGET" |
			jq '[.[] | select(.data) | .length] | add // 0')" >>"$OUT/qemu-copied.tsv"
	done
	rm -f "$QTARGET"
	QTARGET=
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

		core raw "$IMG"
		copy_floor "$W"
		start ceiling-default "$MNT" "$BIN/ceiling" -f -o backing="$IMG" "$MNT"
		core ceiling-default "$MNT/live.img"
		stop
		start ceiling-direct "$MNT" "$BIN/ceiling" -f -o backing="$IMG",direct_io,pdw,max_background=64 "$MNT"
		core ceiling-direct "$MNT/live.img"
		stop

		for dur in full process; do
			snapfs_mount "live-$dur" $dur
			core "live-$dur" "$MNT/live.img"
			[ $dur = process ] || data_check "live-$dur" "$MNT/live.img"
			stop
			if [ $dur = full ]; then
				snapfs_mount bookmark-full full
				u=$("$SNAPFSCTL" create "$MNT")
				"$SNAPFSCTL" delete "$MNT" "$u" --keep-bookmark
				suite bookmark-full "$MNT/live.img" "$(writes_re)"
				distincts bookmark-full "$MNT/live.img"
				stop
			fi
			snapfs_mount "1snap-$dur" $dur
			first_touch "1snap-first-$dur"
			if [ $dur = full ]; then
				u=$("$SNAPFSCTL" create "$MNT")
				suite snapimg-none "$MNT/snapshots/$u.img" "$READS"
				pretouch
				suite 1snap-rewrite-full "$MNT/live.img" "$(writes_re)"
				distincts 1snap-rewrite-full "$MNT/live.img"
				suite snapimg-all "$MNT/snapshots/$u.img" "$READS"
				u=$("$SNAPFSCTL" create "$MNT")
				pretouch 4k
				suite snapimg-4k "$MNT/snapshots/$u.img" "$READS"
			fi
			stop
		done

		# the peer, between the snapfs configurations
		qsd qemu-live
		core qemu-live "$QMNT"
		data_check qemu-live "$QMNT"
		stop
		qemu_first

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
		distincts 10snap-rewrite-full "$MNT/live.img"
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
