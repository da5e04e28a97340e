#!/bin/bash
# ext4 on live.img through a loop device: files changed after a snapshot
# keep their old contents in the snapshot, loop-mounted read-only, and
# e2fsck finds the snapshot's file system clean.  Then the same without a
# sync, using --freeze.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
FS=$WORK/fs
SNAPFS_MNT=$WORK/snapmnt
mkdir -p "$FS" "$SNAPFS_MNT"
make_image "$IMG" 128M
start_snapfs "$IMG" "$MNT"

mkfs.ext4 -q -F "$MNT/live.img"
LOOP=$(losetup -f --show "$MNT/live.img")
register_loop "$LOOP"
mount "$LOOP" "$FS"
register_mount "$FS"

write_files() { # DIR TAG
	local i
	mkdir -p "$1"
	for i in $(seq 1 20); do
		head -c $((RANDOM * 8 + 1)) /dev/urandom >"$1/file$i"
	done
	echo "$2" >"$1/tag"
}

# check_snapshot UUID SUMFILE MOUNTOPTS: loop-mount the snapshot read-only,
# compare every file with the sums, and fsck it.  A snapshot taken of a
# mounted ext4 without --freeze has a journal to replay, which a read-only
# device cannot take: such a one is mounted with noload, as with any
# block-level snapshot.
check_snapshot() {
	local img=$MNT/snapshots/$1.img sl opts=$3
	sl=$(losetup -r -f --show "$img")
	register_loop "$sl"
	e2fsck -n -f "$sl" >"$WORK/fsck" 2>&1 || {
		cat "$WORK/fsck"
		fail "e2fsck -n on snapshot $1"
	}
	mount -o "$opts" "$sl" "$SNAPFS_MNT"
	(cd "$SNAPFS_MNT" && sha256sum -c --quiet "$2") || fail "files differ in snapshot $1"
	umount "$SNAPFS_MNT"
	detach_loop "$sl"
	# and the plain mount -o ro,loop way, straight from the file
	mount -o "$opts,loop" "$img" "$SNAPFS_MNT"
	(cd "$SNAPFS_MNT" && sha256sum -c --quiet "$2") || fail "files differ (mount -o loop)"
	umount "$SNAPFS_MNT"
}

# 1. sync, then create.
write_files "$FS/a" first
sync
(cd "$FS" && find . -type f -not -path './lost+found/*' -print0 | xargs -0 sha256sum) >"$WORK/sums1"
U1=$(snap "$MNT")
write_files "$FS/a" changed
rm -f "$FS/a/file3" "$FS/a/file4"
write_files "$FS/b" new
sync
check_snapshot "$U1" "$WORK/sums1" ro,noload

# 2. no sync: --freeze flushes and holds the file system still.
write_files "$FS/c" frozen
(cd "$FS" && find . -type f -not -path './lost+found/*' -print0 | xargs -0 sha256sum) >"$WORK/sums2"
U2=$("$SNAPFSCTL" create "$MNT" --freeze "$FS")
# thawed afterwards: this write must not hang
timeout 10 sh -c "echo after >'$FS/after'" || fail "file system left frozen"
rm -rf "$FS/c"
sync
check_snapshot "$U2" "$WORK/sums2" ro
check_snapshot "$U1" "$WORK/sums1" ro,noload

# A freeze of something that is not a mounted file system fails clearly
# and takes no snapshot.
N=$(count_snapshots "$MNT")
if "$SNAPFSCTL" create "$MNT" --freeze "$WORK/nowhere" 2>"$WORK/err"; then
	fail "--freeze of a missing path succeeded"
fi
grep -q -- "--freeze" "$WORK/err" || fail "$(cat "$WORK/err")"
[ "$(count_snapshots "$MNT")" = "$N" ] || fail "snapshot taken anyway"

umount "$FS"
detach_loop "$LOOP"
e2fsck -n -f "$MNT/live.img" >/dev/null 2>&1 || fail "live file system damaged"
stop_snapfs "$MNT"
echo "ext4 snapshots: ok"
