# shellcheck shell=bash
# Helpers shared by the integration tests.  Source it first thing:
#
#   . "$TESTLIB"
#
# It makes a scratch directory ($WORK), skips the test (exit 77) where
# FUSE or root is missing, and installs an EXIT trap that unmounts every
# mount, detaches every loop device and kills every process the test
# registered, even when the test fails half way.
set -euo pipefail

: "${SNAPFS:?SNAPFS must name the snapfs binary}"
: "${SNAPFSCTL:?SNAPFSCTL must name the snapfsctl binary}"

if [ ! -c /dev/fuse ]; then
	echo "SKIP: no /dev/fuse"
	exit 77
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (loop devices, mount)"
	exit 77
fi

WORK=$(mktemp -d /tmp/snapfs-it.XXXXXX)
_MOUNTS=()
_LOOPS=()
_PIDS=()
_FILES=()

# in_mounts DIR: whether DIR is a mount point, read from the mount table:
# mountpoint(1) stats DIR, which fails on a FUSE mount whose daemon died
# (ENOTCONN), and such a mount must be cleared all the same.
in_mounts() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts
}

_cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#_MOUNTS[@]} - 1; i >= 0; i--)); do
		if in_mounts "${_MOUNTS[i]}"; then
			fsfreeze -u "${_MOUNTS[i]}" 2>/dev/null
			umount "${_MOUNTS[i]}" 2>/dev/null ||
				umount -l "${_MOUNTS[i]}" 2>/dev/null
		fi
	done
	for ((i = ${#_LOOPS[@]} - 1; i >= 0; i--)); do
		losetup -d "${_LOOPS[i]}" 2>/dev/null
	done
	for ((i = ${#_MOUNTS[@]} - 1; i >= 0; i--)); do
		if in_mounts "${_MOUNTS[i]}"; then
			fusermount3 -u -z "${_MOUNTS[i]}" 2>/dev/null
		fi
	done
	for pid in "${_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	for f in "${_FILES[@]}"; do
		rm -f "$f"
	done
	wait 2>/dev/null
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
	exit "$rc"
}
trap _cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "# $*"
}

# register_mount DIR / register_loop DEV / register_pid PID / register_file F
register_mount() { _MOUNTS+=("$1"); }
register_loop() { _LOOPS+=("$1"); }
register_pid() { _PIDS+=("$1"); }
register_file() { _FILES+=("$1"); }

# detach_loop DEV: detaches a registered loop device and forgets it, so
# that the exit trap cannot detach the same device once another test (in
# a parallel run) has taken it.
detach_loop() {
	local keep=() d
	losetup -d "$1"
	for d in "${_LOOPS[@]}"; do
		[ "$d" = "$1" ] || keep+=("$d")
	done
	_LOOPS=("${keep[@]}")
}

# seed_random: seeds $RANDOM from $SEED (a new one when unset) and prints
# it, so that a failing run can be repeated with SEED=.
seed_random() {
	SEED=${SEED:-$RANDOM}
	RANDOM=$SEED
	note "seed $SEED${1:+, $1}"
}

# make_image PATH SIZE: a sparse image file.
make_image() {
	truncate -s "$2" "$1"
}

# start_snapfs BACKING MNT [snapfs options...]: runs `snapfs -f` in the
# background and waits until MNT is mounted; fails at once if the daemon
# dies first.  Sets SNAPFS_PID.
start_snapfs() {
	local backing=$1 mnt=$2 i
	shift 2
	mkdir -p "$mnt"
	register_mount "$mnt"
	"$SNAPFS" -f "$@" "$backing" "$mnt" 2>>"$WORK/daemon.log" &
	SNAPFS_PID=$!
	register_pid "$SNAPFS_PID"
	for ((i = 0; i < 500; i++)); do
		if mountpoint -q "$mnt"; then
			wait_live "$mnt"
			return 0
		fi
		if ! kill -0 "$SNAPFS_PID" 2>/dev/null; then
			cat "$WORK/daemon.log" >&2
			fail "snapfs exited before mounting $mnt"
		fi
		sleep 0.02
	done
	fail "snapfs did not mount $mnt in 10 s"
}

# wait_live MNT: waits until MNT's live.img opens (a mount that finishes
# an interrupted revert keeps it closed, EBUSY, until done).
wait_live() {
	local i
	for ((i = 0; i < 3000; i++)); do
		if : <"$1/live.img" 2>/dev/null; then
			return 0
		fi
		sleep 0.02
	done
	fail "$1/live.img did not open in 60 s"
}

# stop_snapfs MNT: unmounts and checks that the daemon exited with 0.
stop_snapfs() {
	local mnt=$1 rc=0
	fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
	wait "$SNAPFS_PID" || rc=$?
	if [ "$rc" != 0 ]; then
		tail -n 60 "$WORK/daemon.log" >&2
		fail "snapfs exited with $rc after unmount"
	fi
}

# kill9_snapfs MNT: kills the daemon and clears the dead mount.
kill9_snapfs() {
	local mnt=$1
	kill -9 "$SNAPFS_PID" 2>/dev/null || true
	wait "$SNAPFS_PID" 2>/dev/null || true
	fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
}

# snap MNT: takes a snapshot, prints its uuid.
snap() {
	"$SNAPFSCTL" create "$1"
}

# sum FILE: sha256 of a file.
sum() {
	sha256sum "$1" | cut -d' ' -f1
}

# count_snapshots MNT: how many snapshot images MNT shows.
count_snapshots() {
	find "$1/snapshots" -mindepth 1 -maxdepth 1 -name '*.img' | wc -l
}

# snapshot_uuids MNT: the uuids of MNT's snapshots, one a line.
snapshot_uuids() {
	find "$1/snapshots" -mindepth 1 -maxdepth 1 -name '*.img' -printf '%f\n' |
		sed 's/\.img$//'
}

# generations MNT: the generation numbers of MNT's bitmaps, in order.
generations() {
	find "$1/cbt" -mindepth 1 -maxdepth 1 -name '*.bitmap' -printf '%f\n' |
		sed 's/\.bitmap$//' | sort -n
}

# tree_sum DIR: one hash of every file's bytes, name, mode and size under
# DIR, to prove that nothing changed.
tree_sum() {
	(
		cd "$1" &&
			find . -type f -printf '%p %m %s\n' | sort &&
			find . -type f -print0 | sort -z | xargs -0r sha256sum
	) | sha256sum | cut -d' ' -f1
}

# random_writes FILE COUNT SIZE_MIB: COUNT writes of 4 KiB..256 KiB of
# random bytes at random offsets.
random_writes() {
	local f=$1 n=$2 mib=$3 i off len
	for ((i = 0; i < n; i++)); do
		len=$(((RANDOM % 64 + 1) * 4))
		off=$((RANDOM % (mib * 256 - 64)))
		dd if=/dev/urandom of="$f" bs=4K seek="$off" count=$((len / 4)) \
			conv=notrunc status=none
	done
}
