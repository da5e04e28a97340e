#!/bin/bash
# Bookmarks as a backup script uses them: a full copy of snapshot A, A
# kept as a bookmark (its data freed: writes preserve nothing), an
# incremental copy of a later snapshot B since the bookmark, equal to B
# byte for byte; bookmarks listed (text and JSON), counted by status,
# kept across a restart and a kill -9, finished by a deletion a reader
# held open; refused where data is needed, and deleted by uuid.
. "$TESTLIB"
seed_random

IMG=$WORK/img
MNT=$WORK/mnt
DEST=$WORK/dest
make_image "$IMG" $((32 * 1024 * 1024))
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img

status_json() { "$SNAPFSCTL" status "$MNT" --json; }
diff_bytes() { status_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["diff_bytes"])'; }
bookmark_count() { status_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bookmarks"])'; }

random_writes "$L" 40 32
A=$(snap "$MNT")
"$SNAPFSCTL" backup "$MNT" "$A" "$DEST" --no-progress || fail "full backup of A"
random_writes "$L" 40 32
[ "$(diff_bytes)" -gt 0 ] || fail "writes after A preserved nothing"

# --- A becomes a bookmark: its file and its copies go
"$SNAPFSCTL" delete "$MNT" "$A" --keep-bookmark || fail "delete --keep-bookmark"
[ ! -e "$MNT/snapshots/$A.img" ] || fail "the bookmark's image is still in the tree"
[ "$(count_snapshots "$MNT")" = 0 ] || fail "snapshots left: $(snapshot_uuids "$MNT")"
[ "$(diff_bytes)" = 0 ] || fail "the bookmark holds $(diff_bytes) bytes"
"$SNAPFSCTL" list "$MNT" | grep -q "$A" && fail "list shows the bookmark"
"$SNAPFSCTL" bookmarks "$MNT" | sed -n 1p | grep -q "^uuid created generation$" ||
	fail "bookmarks header: $("$SNAPFSCTL" bookmarks "$MNT")"
"$SNAPFSCTL" bookmarks "$MNT" | grep -Eq "^$A [0-9T:-]+Z 1$" ||
	fail "bookmarks: $("$SNAPFSCTL" bookmarks "$MNT")"
"$SNAPFSCTL" bookmarks "$MNT" --json | python3 -c '
import json, sys
b = json.load(sys.stdin)
assert [x["uuid"] for x in b] == [sys.argv[1]], b
assert b[0]["generation"] == 1 and b[0]["created"].endswith("Z"), b' "$A" ||
	fail "bookmarks --json"
[ "$(bookmark_count)" = 1 ] || fail "status counts $(bookmark_count) bookmarks"
"$SNAPFSCTL" status "$MNT" --no-map | grep -q "^bookmarks: *1$" || fail "status text"

# --- with only a bookmark, writes preserve nothing
random_writes "$L" 40 32
[ "$(diff_bytes)" = 0 ] || fail "writes with only a bookmark preserved $(diff_bytes) bytes"

# --- B, and an incremental copy since the bookmark
B=$(snap "$MNT")
random_writes "$L" 20 32 # after B: not in the copy
"$SNAPFSCTL" changed "$MNT" --from "$A" --to "$B" >"$WORK/changed" ||
	fail "changed --from the bookmark"
[ -s "$WORK/changed" ] || fail "nothing changed since the bookmark"
"$SNAPFSCTL" backup "$MNT" "$B" "$DEST" --since "$A" --no-progress ||
	fail "backup --since the bookmark"
[ "$(sum "$DEST")" = "$(sum "$MNT/snapshots/$B.img")" ] ||
	fail "the incremental copy since the bookmark differs from B"

# --- what needs data refuses a bookmark, with one line
for args in "backup $MNT $A $WORK/x --no-progress" "changed $MNT --from $B --to $A" \
	"delete $MNT $A --keep-bookmark"; do
	rc=0
	# shellcheck disable=SC2086 # args is a list of words
	out=$("$SNAPFSCTL" $args 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 1 ] || fail "snapfsctl $args: exit $rc, not 1"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "snapfsctl $args: not one line: $out"
done
[ ! -e "$WORK/x" ] || fail "a backup of a bookmark made a file"

# --- a deletion held by a reader becomes a bookmark when it closes
C=$(snap "$MNT")
exec 7<"$MNT/snapshots/$C.img"
"$SNAPFSCTL" delete "$MNT" "$C" --keep-bookmark || fail "delete of an open snapshot"
"$SNAPFSCTL" bookmarks "$MNT" | grep -q "^$C " && fail "a bookmark before its reader closed"
exec 7<&-
for _ in $(seq 100); do
	"$SNAPFSCTL" bookmarks "$MNT" | grep -q "^$C " && break
	sleep 0.05
done
"$SNAPFSCTL" bookmarks "$MNT" | grep -q "^$C " || fail "C is no bookmark after its reader closed"

# --- kept across a restart and a kill -9
stop_snapfs "$MNT"
start_snapfs "$IMG" "$MNT"
[ "$("$SNAPFSCTL" bookmarks "$MNT" | tail -n +2 | cut -d' ' -f1 | tr '\n' ' ')" = "$A $C " ] ||
	fail "after a restart: $("$SNAPFSCTL" bookmarks "$MNT")"
D=$(snap "$MNT")
"$SNAPFSCTL" delete "$MNT" "$D" --keep-bookmark
kill9_snapfs "$MNT"
start_snapfs "$IMG" "$MNT"
[ "$(bookmark_count)" = 3 ] || fail "after kill -9: $("$SNAPFSCTL" bookmarks "$MNT")"
"$SNAPFSCTL" changed "$MNT" --from "$D" >/dev/null || fail "changed --from a bookmark after kill -9"

# --- a bookmark deleted by its uuid
"$SNAPFSCTL" delete "$MNT" "$C" || fail "delete of a bookmark"
[ "$(bookmark_count)" = 2 ] || fail "the bookmark was not deleted"
rc=0
"$SNAPFSCTL" delete "$MNT" "$C" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "a second delete of the bookmark: exit $rc"
stop_snapfs "$MNT"
"$SNAPFSCTL" check "$IMG.snapfs" >/dev/null || fail "the store does not check"
echo "bookmarks: ok"
