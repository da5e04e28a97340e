#!/bin/bash
# Stores made by earlier releases still mount: the index is brought to
# this format at the first mount, with a log line and an event, and every
# snapshot reads the bytes it had.  The fixtures in data/ were made by
# those releases, each a small image with snapshots A, B and C (B
# deleted), the sha256 of A, C and live.img at its clean stop:
#   store-0.1.0.tar.gz  snapfs 0.1.0: format 1 (a row per copied chunk),
#                       64 KiB chunks, a 2 MiB image;
#   store-0.2.0.tar.gz  snapfs 0.2.0: format 2 (runs, no bookmarks), 4
#                       KiB chunks, an image of 2228224 bytes (its last
#                       chunk short), patterned writes and a zeroed range.
. "$TESTLIB"

# migrate FIXTURE FORMAT CHUNK_SIZE
migrate() {
	local fixture=$1 format=$2 cs=$3 dir=$WORK/$1
	IMG=$dir/img
	STORE=$dir/img.snapfs
	MNT=$dir/mnt
	mkdir -p "$dir"
	tar -xzf "$(dirname "$TESTLIB")/data/$fixture.tar.gz" -C "$dir"
	# The store knows its backing by device, inode and modification
	# time, which the extracted copy has new: make it the store's own.
	python3 - "$IMG" "$STORE/index.db" "$format" <<'PY'
import os, sqlite3, sys
st = os.stat(sys.argv[1])
ident = "file:%d:%d" % (st.st_dev, st.st_ino)
mtime = "%d.%09d %s" % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, ident)
db = sqlite3.connect(sys.argv[2])
assert str(db.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0]) == sys.argv[3]
db.execute("UPDATE meta SET value=? WHERE key='backing_id'", (ident,))
db.execute("UPDATE meta SET value=? WHERE key='backing_mtime'", (mtime,))
db.commit()
PY
	"$SNAPFSCTL" check "$STORE" >/dev/null 2>&1 ||
		fail "$fixture: the format $format store does not check"

	: >"$WORK/daemon.log"
	start_snapfs "$IMG" "$MNT"
	grep -q "migrating the index from format $format to 3" "$WORK/daemon.log" ||
		fail "$fixture: no log line for the migration: $(cat "$WORK/daemon.log")"
	[ "$(count_snapshots "$MNT")" = 2 ] ||
		fail "$fixture: snapshots: $(snapshot_uuids "$MNT")"
	sums_hold "$fixture, after the migration" "$dir/sums"
	"$SNAPFSCTL" status "$MNT" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["chunk_size"] == int(sys.argv[1]), s["chunk_size"]
assert s["bookmarks"] == 0, s["bookmarks"]
assert any(e["kind"] == "migrated" for e in s["events"]), s["events"]' "$cs" ||
		fail "$fixture: status does not show the migration, or the chunk size changed"
	# the migrated store goes on: a new snapshot, writes over old
	# copies, one snapshot kept as a bookmark
	U=$(snap "$MNT")
	SUM=$(sum "$MNT/snapshots/$U.img")
	dd if=/dev/urandom of="$MNT/live.img" bs=64K seek=2 count=8 conv=notrunc status=none
	grep -v live.img "$dir/sums" >"$dir/sums.old"
	mv "$dir/sums.old" "$dir/sums"
	sums_hold "$fixture, after new writes" "$dir/sums"
	[ "$(sum "$MNT/snapshots/$U.img")" = "$SUM" ] || fail "$fixture: the new snapshot changed"
	"$SNAPFSCTL" delete "$MNT" "$U" --keep-bookmark || fail "$fixture: a bookmark"
	stop_snapfs "$MNT"
	"$SNAPFSCTL" check "$STORE" >/dev/null 2>&1 ||
		fail "$fixture: the migrated store does not check"

	# migrated once: the next mount finds format 3
	start_snapfs "$IMG" "$MNT"
	[ "$(grep -c "migrating the index" "$WORK/daemon.log")" = 1 ] ||
		fail "$fixture: migrated twice"
	sums_hold "$fixture, after a remount" "$dir/sums"
	"$SNAPFSCTL" bookmarks "$MNT" | grep -q "^$U " || fail "$fixture: the bookmark is gone"
	stop_snapfs "$MNT"
}

sums_hold() { # WHEN SUMS: what the fixture recorded, read through MNT
	local sum name path
	while read -r sum name; do
		path=$MNT/snapshots/$name
		[ "$name" = live.img ] && path=$MNT/live.img
		[ "$(sum "$path")" = "$sum" ] || fail "$1: $name changed"
	done <"$2"
}

migrate store-0.1.0 1 65536
migrate store-0.2.0 2 4096
echo "migration: ok"
