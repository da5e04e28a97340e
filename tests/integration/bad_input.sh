#!/bin/bash
# Bad input from the contract's list: one clear line on stderr, a non-zero
# exit, nothing mounted, and the backing and the store byte-identical.
. "$TESTLIB"

IMG=$WORK/img
OTHER=$WORK/other
MNT=$WORK/mnt
mkdir -p "$MNT"
make_image "$IMG" 64M
make_image "$OTHER" 64M

# A store with one preserved chunk, cleanly unmounted.
start_snapfs "$IMG" "$MNT"
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=2 conv=notrunc,fsync status=none
snap "$MNT" >/dev/null
dd if=/dev/urandom of="$MNT/live.img" bs=1M count=1 conv=notrunc,fsync status=none
stop_snapfs "$MNT"
STORE=$IMG.snapfs
[ -f "$STORE/index.db" ] || fail "no store made at $STORE"

# expect_refused WHAT PATTERN -- snapfs args...: runs snapfs in the
# foreground and checks the rules above.
expect_refused() {
	local what=$1 pattern=$2 before_img before_store after_img after_store
	shift 3
	before_img=$(sum "$IMG")
	before_store=$(tree_sum "$STORE")
	local rc=0
	timeout 20 "$SNAPFS" -f "$@" 2>"$WORK/err" >/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "$what: exit status 0"
	[ "$rc" != 124 ] || fail "$what: snapfs kept running"
	[ "$(wc -l <"$WORK/err")" = 1 ] ||
		fail "$what: expected one line, got: $(cat "$WORK/err")"
	grep -q -- "$pattern" "$WORK/err" ||
		fail "$what: '$(cat "$WORK/err")' does not say '$pattern'"
	! mountpoint -q "$MNT" || fail "$what: mounted anyway"
	after_img=$(sum "$IMG")
	after_store=$(tree_sum "$STORE")
	[ "$before_img" = "$after_img" ] || fail "$what: backing changed"
	[ "$before_store" = "$after_store" ] || fail "$what: store changed"
	note "ok: $what: $(cat "$WORK/err")"
}

expect_refused "missing backing" "No such file" -- "$WORK/nothing" "$MNT"
mkdir "$WORK/adir"
expect_refused "directory as backing" "is a directory" -- "$WORK/adir" "$MNT"
expect_refused "unknown option" "unknown option 'frobnicate'" -- \
	-o frobnicate "$IMG" "$MNT"
expect_refused "malformed chunk_size" "chunk_size=3K" -- \
	-o chunk_size=3K "$IMG" "$MNT"
expect_refused "malformed diff_max" "diff_max=lots" -- \
	-o diff_max=lots "$IMG" "$MNT"
expect_refused "bad on_full" "on_full=explode" -- \
	-o on_full=explode "$IMG" "$MNT"
expect_refused "bad log_level" "log_level=loud" -- \
	-o log_level=loud "$IMG" "$MNT"
expect_refused "chunk_size differs from the store" "chunk_size is 4096" -- \
	-o chunk_size=128K "$IMG" "$MNT"
expect_refused "cbt_block_size differs from the store" \
	"cbt_block_size is 65536" -- -o cbt_block_size=4K "$IMG" "$MNT"
expect_refused "store of another image of the same size" "another image" -- \
	-o store="$STORE" "$OTHER" "$MNT"
expect_refused "missing mount point" "mount point" -- \
	"$IMG" "$WORK/no-such-dir"

# A backing whose size changed since the store was made.
cp -p --sparse=always "$IMG" "$WORK/img.saved"
truncate -s 96M "$IMG"
expect_refused "backing size changed" "size changed" -- "$IMG" "$MNT"
cp -p --sparse=always "$WORK/img.saved" "$IMG"
# cp kept the inode and -p the modification time: the store still knows
# this image, unchanged.
start_snapfs "$IMG" "$MNT"
stop_snapfs "$MNT"

# A backing in use by another daemon.
start_snapfs "$IMG" "$MNT"
FIRST=$SNAPFS_PID
mkdir -p "$WORK/mnt2"
register_mount "$WORK/mnt2"
rc=0
"$SNAPFS" -f -o store="$WORK/store2" "$IMG" "$WORK/mnt2" 2>"$WORK/err" || rc=$?
[ "$rc" != 0 ] || fail "second daemon on the backing: exit 0"
grep -q "in use by another snapfs daemon" "$WORK/err" ||
	fail "second daemon on the backing: $(cat "$WORK/err")"
[ ! -e "$WORK/store2" ] || fail "second daemon made a store"
# A store in use by another daemon.
rc=0
"$SNAPFS" -f -o store="$STORE" "$OTHER" "$WORK/mnt2" 2>"$WORK/err" || rc=$?
[ "$rc" != 0 ] || fail "second daemon on the store: exit 0"
grep -q "in use by another snapfs daemon" "$WORK/err" ||
	fail "second daemon on the store: $(cat "$WORK/err")"
SNAPFS_PID=$FIRST
stop_snapfs "$MNT"

# A damaged index.
cp -a "$STORE" "$WORK/store.saved"
printf 'garbage, not SQLite' | dd of="$STORE/index.db" conv=notrunc status=none
expect_refused "damaged index" "index damaged" -- "$IMG" "$MNT"
rm -rf "$STORE"
cp -a "$WORK/store.saved" "$STORE"

# A damaged (truncated) data file.
truncate -s 0 "$STORE/data"
expect_refused "damaged data file" "data file damaged" -- "$IMG" "$MNT"
rm -rf "$STORE"
cp -a "$WORK/store.saved" "$STORE"

# Restored, it mounts again and the snapshot is whole.
start_snapfs "$IMG" "$MNT"
[ "$(count_snapshots "$MNT")" = 1 ] || fail "snapshot lost"
stop_snapfs "$MNT"

# snapfsctl: bad usage exits 2, failures exit 1, one line each.
rc=0
"$SNAPFSCTL" frobnicate "$MNT" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "snapfsctl unknown command: exit $rc"
rc=0
"$SNAPFSCTL" list "$WORK" 2>"$WORK/err" || rc=$?
[ "$rc" = 1 ] || fail "snapfsctl on a plain directory: exit $rc"
grep -q "not a snapfs mount point" "$WORK/err" || fail "$(cat "$WORK/err")"
echo "bad input: all refused cleanly"
