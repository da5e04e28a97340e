#!/bin/bash
# The tree as the contract describes it, the daemon's start and stop, and
# snapshot files used the way people use them.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
mkdir -p "$MNT"
make_image "$IMG" 48M
dd if=/dev/urandom of="$IMG" bs=1M seek=8 count=4 conv=notrunc status=none

# Without -f: exit 0 means mounted.
register_mount "$MNT"
"$SNAPFS" "$IMG" "$MNT" && ls "$MNT" >"$WORK/ls"
[ "$(tr '\n' ' ' <"$WORK/ls")" = "cbt live.img snapshots " ] ||
	fail "tree: $(cat "$WORK/ls")"
[ "$(stat -c '%a %s' "$MNT/live.img")" = "644 $((48 << 20))" ] ||
	fail "live.img: $(stat -c '%a %s' "$MNT/live.img")"
[ "$(stat -c %a "$MNT/snapshots")" = 755 ] || fail "snapshots/ mode"
[ "$(stat -c %a "$MNT/cbt")" = 755 ] || fail "cbt/ mode"
DAEMON=$(pgrep -f "snapfs $IMG $MNT" | head -1)
[ -n "$DAEMON" ] || fail "no detached daemon"
register_pid "$DAEMON"

# The holes of the sparse backing show through live.img.
[ "$(python3 -c "import os,sys; f=os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(f, 0, os.SEEK_DATA), os.lseek(f, 8<<20, os.SEEK_HOLE))" "$MNT/live.img")" = "$((8 << 20)) $((12 << 20))" ] ||
	fail "SEEK_DATA/SEEK_HOLE on live.img"

BEFORE=$(sum "$MNT/live.img")
T0=$(date +%s)
U=$(snap "$MNT")
T1=$(date +%s)
[[ "$U" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
	fail "uuid '$U'"
S=$MNT/snapshots/$U.img
[ "$(stat -c '%a %s' "$S")" = "444 $((48 << 20))" ] || fail "snapshot attrs"
M=$(stat -c %Y "$S")
if [ "$M" -lt "$T0" ] || [ "$M" -gt "$T1" ]; then
	fail "snapshot mtime $M not in [$T0, $T1]"
fi

dd if=/dev/urandom of="$MNT/live.img" bs=1M seek=4 count=8 conv=notrunc,fsync status=none
[ "$(sum "$S")" = "$BEFORE" ] || fail "snapshot changed after a write"
[ "$(sum "$MNT/live.img")" != "$BEFORE" ] || fail "live did not change"

# Writing a snapshot fails with EROFS or EACCES, even for root.
if dd if=/dev/zero of="$S" bs=4K count=1 conv=notrunc status=none 2>"$WORK/err"; then
	fail "a snapshot was written"
fi
grep -Eq "Read-only file system|Permission denied" "$WORK/err" || fail "$(cat "$WORK/err")"
if truncate -s 0 "$S" 2>/dev/null; then fail "a snapshot was truncated"; fi
[ "$(sum "$S")" = "$BEFORE" ] || fail "snapshot changed by a refused write"

# The snapshot's holes: a sparse copy is sparse and equal.
cp --sparse=always "$S" "$WORK/copy"
cmp "$S" "$WORK/copy" || fail "cp of the snapshot differs"
[ "$(du -k "$WORK/copy" | cut -f1)" -lt 20000 ] || fail "sparse copy is not sparse"
python3 - "$S" <<'PY' || fail "SEEK_DATA/SEEK_HOLE on the snapshot"
import os, sys
f = os.open(sys.argv[1], os.O_RDONLY)
# the snapshot had data only in 8..12 MiB; 4..8 MiB was preserved as zeros
d = os.lseek(f, 0, os.SEEK_DATA)
assert d >= 4 << 20 and d <= 8 << 20, d
h = os.lseek(f, 8 << 20, os.SEEK_HOLE)
assert h == 12 << 20, h
PY

# list and status, text and JSON.
"$SNAPFSCTL" list "$MNT" >"$WORK/list"
[ "$(head -1 "$WORK/list")" = "uuid created generation diff_bytes" ] || fail "list header"
read -r lu lt lg lb < <(sed -n 2p "$WORK/list")
[[ "$lu" = "$U" && "$lg" = 1 && "$lb" = $((4 << 20)) ]] ||
	fail "list line: $(sed -n 2p "$WORK/list")"
[[ "$lt" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || fail "time $lt"
"$SNAPFSCTL" list "$MNT" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert len(v) == 1 and v[0]["uuid"] == sys.argv[1], v
assert v[0]["generation"] == 1 and v[0]["size"] == 48 << 20, v
assert v[0]["diff_bytes"] == 4 << 20, v  # zeros take no space
' "$U" || fail "list --json"
"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["size"] == 48 << 20 and s["chunk_size"] == 4096, s
assert s["cbt_block_size"] == 65536 and s["generation"] == 2, s
assert s["snapshots"] == 1 and s["diff_bytes"] == 4 << 20, s
assert s["durability"] == "full" and s["clean_shutdown"] is True, s
assert s["backing"] == sys.argv[1], s
' "$IMG" || fail "status --json"

# rm deletes; a reader that had it open goes on reading the same bytes.
exec 3<"$S"
rm "$S"
[ ! -e "$S" ] || fail "snapshot still there after rm"
[ -z "$(ls "$MNT/snapshots")" ] || fail "snapshots/ not empty"
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=48 conv=notrunc,fsync status=none
[ "$(sha256sum <&3 | cut -d' ' -f1)" = "$BEFORE" ] || fail "open reader saw other bytes after rm"
exec 3<&-
# the kernel sends the release after close(2) returns: wait for it
for ((i = 0; i < 100; i++)); do
	used=$("$SNAPFSCTL" status "$MNT" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["diff_bytes"])')
	[ "$used" = 0 ] && break
	sleep 0.1
done
[ "$used" = 0 ] || fail "store not emptied once the reader closed ($used bytes)"

# SIGTERM ends it cleanly: exit 0, the store marked clean.
U2=$(snap "$MNT")
kill -TERM "$DAEMON"
for ((i = 0; i < 200; i++)); do
	mountpoint -q "$MNT" || break
	sleep 0.05
done
! mountpoint -q "$MNT" || fail "SIGTERM did not unmount"
for ((i = 0; i < 200; i++)); do
	kill -0 "$DAEMON" 2>/dev/null || break
	sleep 0.05
done
! kill -0 "$DAEMON" 2>/dev/null || fail "SIGTERM did not end the daemon"
start_snapfs "$IMG" "$MNT"
"$SNAPFSCTL" status "$MNT" | grep -q "clean_shutdown:  yes" || fail "SIGTERM stop not clean"
[ -e "$MNT/snapshots/$U2.img" ] || fail "snapshot lost across SIGTERM"

# umount(8) ends it cleanly too, with exit status 0.
umount "$MNT"
wait "$SNAPFS_PID" || fail "snapfs exit status $? after umount"
start_snapfs "$IMG" "$MNT"
"$SNAPFSCTL" status "$MNT" | grep -q "clean_shutdown:  yes" || fail "umount stop not clean"

# ro: live.img 0444, writes refused, create refused.
stop_snapfs "$MNT"
start_snapfs "$IMG" "$MNT" -o ro
[ "$(stat -c %a "$MNT/live.img")" = 444 ] || fail "ro live.img mode"
if dd if=/dev/zero of="$MNT/live.img" bs=4K count=1 conv=notrunc status=none 2>/dev/null; then
	fail "write to a ro live.img"
fi
if "$SNAPFSCTL" create "$MNT" 2>/dev/null; then fail "create on ro"; fi
stop_snapfs "$MNT"
echo "tree: ok"
