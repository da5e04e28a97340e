#!/bin/bash
# mount -t fuse.snapfs and an fstab line work: mount.fuse3 starts `snapfs`
# from PATH with the options mount(8) passes (rw, nodev, x-*, ...).
. "$TESTLIB"
command -v mount.fuse3 >/dev/null || { echo "SKIP: no mount.fuse3"; exit 77; }

# mount(8) runs its helpers with a fixed PATH: make `snapfs` resolve to
# this build for the test's duration, unless it already does.
if [ "$(command -v snapfs || true)" != "$SNAPFS" ]; then
	if [ -e /usr/local/sbin/snapfs ]; then
		echo "SKIP: /usr/local/sbin/snapfs belongs to another install"
		exit 77
	fi
	ln -s "$SNAPFS" /usr/local/sbin/snapfs
	register_file /usr/local/sbin/snapfs
fi

IMG=$WORK/img
MNT=$WORK/mnt
mkdir -p "$MNT"
make_image "$IMG" 32M
register_mount "$MNT"

mount -t fuse.snapfs "$IMG" "$MNT" -o nodev,nosuid,store="$WORK/st",durability=process
mountpoint -q "$MNT" || fail "mount -t fuse.snapfs did not mount"
grep -q " $MNT fuse.snapfs .*nodev" /proc/mounts || fail "type or options: $(grep "$MNT" /proc/mounts)"
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=1 conv=notrunc,fsync status=none
U=$(snap "$MNT")
"$SNAPFSCTL" status "$MNT" | grep -q "durability:      process" || fail "option not applied"
umount "$MNT"
for _ in $(seq 100); do pgrep -f "snapfs $IMG" >/dev/null || break; sleep 0.05; done

# fstab, with the words systemd and mount(8) add.
printf '%s %s fuse.snapfs noauto,x-systemd.automount,_netdev,nofail,store=%s 0 0\n' \
	"$IMG" "$MNT" "$WORK/st" >"$WORK/fstab"
mount -T "$WORK/fstab" "$MNT"
[ -e "$MNT/snapshots/$U.img" ] || fail "fstab mount lost the snapshot"
"$SNAPFSCTL" status "$MNT" | grep -q "clean_shutdown:  yes" || fail "umount was not clean"
umount "$MNT"
echo "mount helper: ok"
