#!/bin/bash
# The installed package, as an administrator meets it: the programs on
# PATH, `mount -t fuse.snapfs` through the installed helper, man pages,
# bash completion, the systemd units (started under a running systemd,
# else checked with systemd-analyze verify) and the nightly script.
# Run by contrib/check.sh after `apt install ./snapfs_*.deb`, as root.
SNAPFS=$(command -v snapfs || true)
SNAPFSCTL=$(command -v snapfsctl || true)
[ "$SNAPFS" = /usr/bin/snapfs ] || { echo "FAIL: snapfs is '$SNAPFS', not /usr/bin/snapfs" >&2; exit 1; }
[ "$SNAPFSCTL" = /usr/bin/snapfsctl ] || { echo "FAIL: snapfsctl is '$SNAPFSCTL'" >&2; exit 1; }
export SNAPFS SNAPFSCTL
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

snapfs --version | grep -q "^snapfs 0" || fail "snapfs --version"
snapfsctl --version | grep -q "^snapfsctl 0" || fail "snapfsctl --version"
snapfsctl status --help | grep -q "usage: snapfsctl status" || fail "snapfsctl status --help"
# (the man pages are checked in the .deb by contrib/check.sh)
[ -x /usr/sbin/snapfs-nightly ] || fail "no snapfs-nightly"
snapfs-nightly --version | grep -q "^snapfs-nightly 0" || fail "snapfs-nightly --version"
snapfs-nightly --help | grep -q "^snapfs-nightly MOUNTPOINT DEST" || fail "snapfs-nightly --help"

# mount -t fuse.snapfs with the installed helper, and a clean stop
IMG=$WORK/img
MNT=$WORK/mnt
mkdir -p "$MNT"
make_image "$IMG" 64M
register_mount "$MNT"
mount -t fuse.snapfs "$IMG" "$MNT" -o store="$WORK/store",nodev
mountpoint -q "$MNT" || fail "mount -t fuse.snapfs"
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=4 conv=notrunc,fsync status=none
U1=$(snapfsctl create "$MNT")

# bash completion: commands, mount points, snapshot uuids
complete_words() { # WORDS...: what completing the last word offers
	bash -c '
		. /usr/share/bash-completion/bash_completion
		. /usr/share/bash-completion/completions/snapfsctl
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_snapfsctl snapfsctl "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
		printf "%s\n" "${COMPREPLY[@]}"' complete "$@"
}
[ "$(complete_words snapfsctl sta)" = status ] || fail "command completion: $(complete_words snapfsctl sta)"
complete_words snapfsctl list "" | grep -qx "$MNT" || fail "mount point completion"
complete_words snapfsctl delete "$MNT" "" | grep -qx "$U1" || fail "uuid completion: $(complete_words snapfsctl delete "$MNT" "")"
complete_words snapfsctl delete "$MNT" "--k" | grep -qx -- --keep-bookmark || fail "--keep-bookmark completion"
complete_words snapfsctl changed "$MNT" --f | grep -qx -- --from || fail "option completion"
complete_words snapfsctl create "$MNT" "" | grep -qx "$MNT" || fail "create: no second mount point offered"
complete_words snapfsctl create "$MNT" --t | grep -qx -- --timeout || fail "create: --timeout completion"

# the nightly script: full copy, then incremental, keeping 2
DEST=$WORK/backup/nightly.img
out=$(snapfs-nightly "$MNT" "$DEST" 2)
echo "$out" | grep -q "^full backup" || fail "first nightly run: $out"
for i in 1 2; do
	dd if=/dev/urandom of="$MNT/live.img" bs=64K seek=$((i * 100)) count=3 conv=notrunc,fsync status=none
	out=$(snapfs-nightly "$MNT" "$DEST" 2)
	echo "$out" | grep -q "^incremental backup" || fail "nightly run $i: $out"
done
cmp "$DEST" "$MNT/live.img" || fail "the backup differs from live.img at its snapshot"
# each run's snapshot became a bookmark, KEEP of them kept; U1 untouched
[ "$(snapfsctl list "$MNT" | tail -n +2 | cut -d' ' -f1)" = "$U1" ] || fail "nightly left snapshots: $(snapfsctl list "$MNT")"
[ "$(snapfsctl bookmarks "$MNT" | tail -n +2 | wc -l)" = 2 ] || fail "nightly kept bookmarks: $(snapfsctl bookmarks "$MNT")"
# a bookmark is offered where one may stand: the older end
BM=$(snapfsctl bookmarks "$MNT" | tail -n +2 | head -n 1 | cut -d' ' -f1)
complete_words snapfsctl backup "$MNT" "$U1" "$DEST" --since "" | grep -qx "$BM" ||
	fail "bookmark completion after --since"
umount "$MNT"
for i in $(seq 100); do pgrep -f "snapfs $IMG" >/dev/null || break; sleep 0.05; done

# systemd units
UNITS="snapfs@pkgtest.service snapfs-backup@pkgtest.service snapfs-backup@pkgtest.timer"
if [ -d /run/systemd/system ]; then
	mkdir -p /etc/snapfs
	register_file /etc/snapfs/pkgtest.conf
	cat >/etc/snapfs/pkgtest.conf <<CONF
BACKING=$IMG
MOUNTPOINT=$MNT
SNAPFS_OPTIONS=-o store=$WORK/store
BACKUP_DIR=$WORK/backup
KEEP=3
CONF
	systemctl daemon-reload
	systemctl start snapfs@pkgtest.service || fail "systemctl start snapfs@pkgtest"
	mountpoint -q "$MNT" || fail "snapfs@pkgtest did not mount"
	systemctl start snapfs-backup@pkgtest.service || fail "snapfs-backup@pkgtest"
	[ -f "$WORK/backup/pkgtest.img.snapfs-backup" ] || fail "no nightly backup"
	systemctl stop snapfs@pkgtest.service
	mountpoint -q "$MNT" && fail "snapfs@pkgtest still mounted after stop"
	snapfs -f -o store="$WORK/store" "$IMG" "$MNT" &
	register_pid $!
	for i in $(seq 250); do mountpoint -q "$MNT" && break; sleep 0.02; done
	snapfsctl status "$MNT" | grep -q "clean_shutdown:  yes" || fail "systemctl stop was not a clean stop"
	fusermount3 -u "$MNT"
	echo "systemd: units started and stopped under a running systemd"
else
	for u in $UNITS; do
		out=$(systemd-analyze verify "$u" 2>&1) || fail "systemd-analyze verify $u: $out"
		[ -z "$out" ] || fail "systemd-analyze verify $u: $out"
	done
	echo "systemd: no systemd running here (PID 1 is $(ps -p 1 -o comm=)); units checked with systemd-analyze verify"
fi
echo "installed package: ok"
