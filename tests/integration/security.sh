#!/bin/bash
# Security: allow_other brings default_permissions; the store is private
# (directory 0700, files 0600); a user who may not write live.img cannot
# control the mount; nobody, root included, writes a snapshot; a backing's
# name cannot smuggle mount options in.
. "$TESTLIB"
command -v setpriv >/dev/null || { echo "SKIP: no setpriv"; exit 77; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

IMG=$WORK/img
MNT=$WORK/mnt
chmod 755 "$WORK"
make_image "$IMG" 8M
start_snapfs "$IMG" "$MNT" -o allow_other
grep " $MNT " /proc/mounts | grep -q default_permissions ||
	fail "allow_other without default_permissions: $(grep " $MNT " /proc/mounts)"
U=$(snap "$MNT")
dd if=/dev/urandom of="$MNT/live.img" bs=64K count=2 conv=notrunc,fsync status=none

S=$IMG.snapfs
[ "$(stat -c %a "$S")" = 700 ] || fail "store directory mode $(stat -c %a "$S")"
for f in "$S"/index.db* "$S/data"; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f mode $(stat -c %a "$f")"
done

# another user reads what the modes allow, and nothing more
as_nobody cat "$MNT/snapshots/$U.img" >/dev/null || fail "nobody cannot read a 0444 snapshot"
if as_nobody dd if=/dev/zero of="$MNT/live.img" bs=4K count=1 conv=notrunc status=none 2>/dev/null; then
	fail "nobody wrote live.img"
fi
if as_nobody "$SNAPFSCTL" create "$MNT" 2>"$WORK/err"; then fail "nobody took a snapshot"; fi
if as_nobody "$SNAPFSCTL" delete "$MNT" "$U" 2>"$WORK/err"; then fail "nobody deleted a snapshot"; fi
[ -e "$MNT/snapshots/$U.img" ] || fail "snapshot gone"
if as_nobody rm -f "$MNT/snapshots/$U.img" 2>/dev/null; then
	[ -e "$MNT/snapshots/$U.img" ] || fail "nobody removed a snapshot"
fi
# root cannot write a snapshot either
if dd if=/dev/zero of="$MNT/snapshots/$U.img" bs=4K count=1 conv=notrunc status=none 2>/dev/null; then
	fail "root wrote a snapshot"
fi
if chmod 666 "$MNT/snapshots/$U.img" 2>/dev/null; then fail "chmod on a snapshot"; fi
stop_snapfs "$MNT"

# A comma in the backing's path is part of its name (fsname), not the start
# of another mount option: this one must not mount with allow_other.
ODD=$WORK/x,allow_other
make_image "$ODD" 8M
start_snapfs "$ODD" "$MNT"
opts=$(awk -v m="$MNT" '$2 == m { print $4 }' /proc/mounts)
case ",$opts," in
*,allow_other,*) fail "the backing's name added allow_other: $opts" ;;
esac
if as_nobody dd if=/dev/zero of="$MNT/live.img" bs=4K count=1 conv=notrunc status=none 2>/dev/null; then
	fail "nobody wrote live.img of $ODD"
fi
"$SNAPFSCTL" status "$MNT" | grep -q "^backing: *$ODD\$" ||
	fail "status names another backing: $("$SNAPFSCTL" status "$MNT" | head -1)"
stop_snapfs "$MNT"
echo "security: ok"
