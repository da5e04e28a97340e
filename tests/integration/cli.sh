#!/bin/bash
# snapfsctl and snapfs as an administrator meets them: --help for each
# command, --version, usage errors on one line; the status map of the
# open generation; changed --summary; -o log_level (a bad one is in
# bad_input.sh); and, detached, the daemon's messages in syslog naming the
# mount point.
. "$TESTLIB"

IMG=$WORK/img
MNT=$WORK/mnt
K=65536
make_image "$IMG" $((64 * 1024 * 1024)) # 1024 blocks
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img

# --- help, version, usage errors
"$SNAPFSCTL" --help | grep -q "^  changed " || fail "snapfsctl --help lists no commands"
for c in create list delete bookmarks status changed backup check; do
	"$SNAPFSCTL" $c --help | grep -q "^usage: snapfsctl $c" || fail "snapfsctl $c --help"
done
"$SNAPFSCTL" --version | grep -q "^snapfsctl [0-9]" || fail "snapfsctl --version"
"$SNAPFS" --help | grep -q "log_level=" || fail "snapfs --help has no log_level"
"$SNAPFS" --version | grep -q "^snapfs [0-9]" || fail "snapfs --version"
for args in "frobnicate $MNT" "status" "status $MNT --bogus" "changed $MNT --from nope"; do
	rc=0
	# shellcheck disable=SC2086 # args is a list of words
	out=$("$SNAPFSCTL" $args 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] || fail "snapfsctl $args: exit $rc, not 2"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "snapfsctl $args: not one line: $out"
done

# --- the map: the first quarter written whole, one block at 3/4
dd if=/dev/urandom of="$L" bs=1M count=16 conv=notrunc status=none
dd if=/dev/urandom of="$L" bs=4K seek=$((768 * 16)) count=1 conv=notrunc status=none
map=$("$SNAPFSCTL" status "$MNT" --map | grep '^\[')
want="[$(printf '@%.0s' $(seq 16))$(printf ' %.0s' $(seq 32)).$(printf ' %.0s' $(seq 15))]"
[ "$map" = "$want" ] || fail "map: '$map', want '$want'"
"$SNAPFSCTL" status "$MNT" --map | grep -q "16.1 MiB in 2 extents" ||
	fail "map totals: $("$SNAPFSCTL" status "$MNT" --map | grep changed)"
out=$("$SNAPFSCTL" status "$MNT")
! grep -q '^\[' <<<"$out" || fail "a map although stdout is not a terminal"
# on a terminal (script(1) gives it one, 80 columns) the map is drawn by
# default, as wide as the terminal less its brackets
map=$(COLUMNS=80 script -qec "stty cols 80; $SNAPFSCTL status $MNT" /dev/null | tr -d '\r' | grep '^\[')
[ "${#map}" = 80 ] || fail "no terminal-wide map on a terminal: '$map'"
out=$("$SNAPFSCTL" status "$MNT" --map --no-map)
! grep -q '^\[' <<<"$out" || fail "--no-map drew a map"
# half a slice changed shades it in between
dd if=/dev/urandom of="$L" bs=$K seek=$((32 * 16)) count=8 conv=notrunc status=none
map=$("$SNAPFSCTL" status "$MNT" --map | grep '^\[')
c=${map:33:1}
[[ $c != " " && $c != "@" && $c != "." ]] || fail "a half-changed slice shows '$c'"

# --- changed --summary
U=$(snap "$MNT") # closes generation 1
dd if=/dev/urandom of="$L" bs=$K seek=100 count=2 conv=notrunc status=none
dd if=/dev/urandom of="$L" bs=$K seek=900 count=1 conv=notrunc status=none
"$SNAPFSCTL" changed "$MNT" --summary --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
g = {x["generation"]: x for x in s["generations"]}
K = 65536
assert sorted(g) == [1, 2], g
assert g[1]["bytes"] == (256 + 1 + 8) * K and g[1]["extents"] == 3 and not g[1]["open"], g[1]
assert g[2]["bytes"] == 3 * K and g[2]["extents"] == 2 and g[2]["open"], g[2]
assert abs(g[2]["share"] - 3 / 1024) < 1e-6, g[2]
u = s["union"]  # blocks 100 and 101 lie inside 0..255
assert u["bytes"] == (256 + 8 + 1 + 1) * K and u["extents"] == 4, u' ||
	fail "changed --summary --json"
out=$("$SNAPFSCTL" changed "$MNT" --summary --from "$U")
[ "$(echo "$out" | awk '$1 == 2 {print $2, $3, $5}')" = "196608 2 open" ] ||
	fail "summary since $U: $out"
echo "$out" | grep -q "^ *1 " && fail "summary since $U shows generation 1"
echo "$out" | grep -q "^ *union *196608 *2 " || fail "summary union: $out"
stop_snapfs "$MNT"

# --- log_level
n=$(wc -l <"$WORK/daemon.log")
start_snapfs "$IMG" "$MNT" -o log_level=warn
stop_snapfs "$MNT"
tail -n +$((n + 1)) "$WORK/daemon.log" | grep -q "mounted on\|clean shutdown" &&
	fail "log_level=warn still logs info"

# --- detached: messages in syslog, each naming the mount point
if [ -e /dev/log ]; then
	note "a syslog daemon owns /dev/log here: syslog lines not checked"
else
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(10)
out = open(sys.argv[1], "w")
while True:
    try:
        out.write(s.recv(4096).decode(errors="replace") + "\n")
        out.flush()
    except socket.timeout:
        break' "$WORK/syslog" &
	register_pid $!
	register_file /dev/log
	for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.05; done
	"$SNAPFS" -o store="$IMG.snapfs" "$IMG" "$MNT" || fail "detached start"
	register_mount "$MNT"
	snap "$MNT" >/dev/null
	fusermount3 -u "$MNT"
	for _ in $(seq 100); do grep -q "clean shutdown" "$WORK/syslog" 2>/dev/null && break; sleep 0.05; done
	grep -q "snapfs\[[0-9]*\]: $MNT: main: .* mounted on $MNT" "$WORK/syslog" ||
		fail "no 'mounted' line naming $MNT in syslog: $(cat "$WORK/syslog")"
	grep -q "snapfs\[[0-9]*\]: $MNT: snapshot: created" "$WORK/syslog" ||
		fail "no snapshot line in syslog"
fi
echo "cli: ok"
