#!/bin/bash
# A store made by snapfs 0.1.0 still mounts: its index (format 1, a row
# per copied chunk) is migrated to runs at the first mount, with a log
# line and an event, and every snapshot reads the bytes it had.  The
# fixture data/store-0.1.0.tar.gz was made by snapfs 0.1.0: a 2 MiB
# image, snapshots A, B and C (B deleted) with 64 KiB chunks, and the
# sha256 of A, C and live.img at its clean stop.
. "$TESTLIB"

tar -xzf "$(dirname "$TESTLIB")/data/store-0.1.0.tar.gz" -C "$WORK"
IMG=$WORK/img
STORE=$WORK/img.snapfs
MNT=$WORK/mnt
# The store knows its backing by device, inode and modification time,
# which the extracted copy has new: make it the store's own again.
python3 - "$IMG" "$STORE/index.db" <<'PY'
import os, sqlite3, sys
st = os.stat(sys.argv[1])
ident = "file:%d:%d" % (st.st_dev, st.st_ino)
mtime = "%d.%09d %s" % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, ident)
db = sqlite3.connect(sys.argv[2])
assert db.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0] in (1, "1")
db.execute("UPDATE meta SET value=? WHERE key='backing_id'", (ident,))
db.execute("UPDATE meta SET value=? WHERE key='backing_mtime'", (mtime,))
db.commit()
PY
"$SNAPFSCTL" check "$STORE" >/dev/null 2>&1 || fail "the format 1 store does not check"

sums_hold() { # what the fixture recorded, read through MNT
	local sum name path
	while read -r sum name; do
		path=$MNT/snapshots/$name
		[ "$name" = live.img ] && path=$MNT/live.img
		[ "$(sum "$path")" = "$sum" ] || fail "$1: $name changed"
	done <"$WORK/sums"
}

start_snapfs "$IMG" "$MNT"
grep -q "migrating the index from format 1 to 2" "$WORK/daemon.log" ||
	fail "no log line for the migration: $(cat "$WORK/daemon.log")"
[ "$(count_snapshots "$MNT")" = 2 ] || fail "snapshots: $(snapshot_uuids "$MNT")"
sums_hold "after the migration"
"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["chunk_size"] == 65536, s["chunk_size"]
assert any(e["kind"] == "migrated" for e in s["events"]), s["events"]' ||
	fail "status does not show the migration, or the chunk size changed"
# the migrated store goes on: a new snapshot, writes over old copies
U=$(snap "$MNT")
SUM=$(sum "$MNT/snapshots/$U.img")
dd if=/dev/urandom of="$MNT/live.img" bs=64K seek=2 count=8 conv=notrunc status=none
grep -v live.img "$WORK/sums" >"$WORK/sums.old"
mv "$WORK/sums.old" "$WORK/sums"
sums_hold "after new writes"
[ "$(sum "$MNT/snapshots/$U.img")" = "$SUM" ] || fail "the new snapshot changed"
stop_snapfs "$MNT"
"$SNAPFSCTL" check "$STORE" >/dev/null 2>&1 || fail "the migrated store does not check"

# migrated once: the next mount finds format 2
start_snapfs "$IMG" "$MNT"
[ "$(grep -c "migrating the index" "$WORK/daemon.log")" = 1 ] ||
	fail "migrated twice"
sums_hold "after a remount"
stop_snapfs "$MNT"
echo "migration: ok"
