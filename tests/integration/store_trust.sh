#!/bin/bash
# A store directory that snapfs did not make itself is refused as bad
# input (one line on stderr, exit 1, nothing changed): owned by another
# user, writable by others, or holding a symlink, a file of the wrong type
# or another user's file where a store file belongs.  Before, such a
# directory was adopted, and a planted cbt.map symlink made a root daemon
# truncate the file it pointed at.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
S=$IMG.snapfs
make_image "$IMG" 8M

ERR=$(mktemp /tmp/snapfs-err.XXXXXX)
register_file "$ERR"
mkdir -p "$MNT"

# state: every name under $WORK with its type, mode, size and owner, and
# every file's bytes
state() {
	(
		cd "$WORK" &&
			find . -printf '%p %y %m %s %U %l\n' | sort &&
			find . -type f -print0 | sort -z | xargs -0r sha256sum
	) | sha256sum
}

# refused DESCRIPTION PATTERN: the mount fails with one line on stderr
# matching PATTERN, and nothing under $WORK changed.
refused() {
	local what=$1 pattern=$2 before rc=0
	before=$(state)
	timeout 20 "$SNAPFS" "$IMG" "$MNT" 2>"$ERR" || rc=$?
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT"
		fail "$what: mounted"
	fi
	[ "$rc" != 0 ] || fail "$what: exit 0"
	grep -q -- "$pattern" "$ERR" || fail "$what: stderr: $(cat "$ERR")"
	[ "$(wc -l <"$ERR")" = 1 ] ||
		fail "$what: more than one line: $(cat "$ERR")"
	[ "$(state)" = "$before" ] || fail "$what: something changed"
}

# an empty directory another user made where the store goes
mkdir "$S"
chown 65534:65534 "$S"
refused "a directory of another user" "owned by uid 65534"
# one of ours that others may write
chown 0:0 "$S"
chmod 0777 "$S"
refused "a directory writable by others" "writable by others"
chmod 1777 "$S"
refused "a sticky directory writable by others" "writable by others"
rmdir "$S"
# a symlink where the store goes
mkdir "$WORK/elsewhere"
ln -s "$WORK/elsewhere" "$S"
refused "a symlink as the store" "symbolic link"
rm "$S"
rmdir "$WORK/elsewhere"

# a real store, then files planted in it
start_snapfs "$IMG" "$MNT"
snap "$MNT" >/dev/null
stop_snapfs "$MNT"
cp -a "$S" "$WORK/saved"
restore() { rm -rf "$S" && cp -a "$WORK/saved" "$S"; }

echo "precious" >"$WORK/victim"
rm "$S/cbt.map" && ln -s "$WORK/victim" "$S/cbt.map"
refused "cbt.map a symlink" "cbt.map.*symbolic link"
[ "$(cat "$WORK/victim")" = precious ] || fail "the symlink's target was written"
restore
for f in data index.db; do
	mv "$S/$f" "$WORK/moved" && ln -s "$WORK/moved" "$S/$f"
	refused "$f a symlink" "$f.*symbolic link"
	restore
	rm -f "$WORK/moved"
done
rm "$S/data" && mkfifo "$S/data"
refused "data a FIFO" "data.*not a regular file"
restore
rm -f "$S/control" && mkdir "$S/control"
refused "control a directory" "control.*not a socket"
restore
chown 65534 "$S/index.db"
refused "index.db of another user" "index.db.*owned by uid 65534"
restore
ln "$S/data" "$WORK/hardlink"
refused "data with a second link" "data.*links"
rm "$WORK/hardlink"

# a directory above the store that others may write (not sticky): another
# user could rename the store away and put theirs in its place
mkdir "$WORK/shared"
chmod 0777 "$WORK/shared"
make_image "$WORK/shared/img" 8M
IMG=$WORK/shared/img refused "a parent writable by others" "shared is writable by others"
[ ! -e "$WORK/shared/img.snapfs" ] || fail "a store was made under a parent writable by others"
chmod 1777 "$WORK/shared"
start_snapfs "$WORK/shared/img" "$MNT"
stop_snapfs "$MNT"

# store= through a symlinked directory: resolved once, the store is
# checked and opened where it really is
mkdir "$WORK/real" "$WORK/open"
chmod 0777 "$WORK/open"
ln -s "$WORK/real" "$WORK/via"
ln -s "$WORK/open" "$WORK/via-open"
start_snapfs "$IMG" "$MNT" -o store="$WORK/via/store/"
"$SNAPFSCTL" status "$MNT" | grep -q "^store: *$WORK/real/store\$" ||
	fail "store= through a symlink: $("$SNAPFSCTL" status "$MNT" | grep ^store)"
stop_snapfs "$MNT"
before=$(state)
rc=0
timeout 20 "$SNAPFS" -o store="$WORK/via-open/store" "$IMG" "$MNT" 2>"$ERR" || rc=$?
mountpoint -q "$MNT" && { fusermount3 -u "$MNT"; fail "a store under a symlink to an open directory: mounted"; }
[ "$rc" != 0 ] || fail "a store under a symlink to an open directory: exit 0"
grep -q "open is writable by others" "$ERR" ||
	fail "a store under a symlink to an open directory: $(cat "$ERR")"
[ "$(state)" = "$before" ] || fail "a store under a symlink to an open directory: something changed"

# and the store as made still mounts
start_snapfs "$IMG" "$MNT"
stop_snapfs "$MNT"
echo "store_trust: ok"
