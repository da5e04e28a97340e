#!/bin/bash
# Group snapshots: `snapfsctl create M1 M2` takes one snapshot of each
# mount at one instant.  Two writers, each alternating its writes between
# the two images (one write at a time, O_DIRECT), and a group every 200
# ms: in every group each writer's writes, read from both snapshots, must
# be one prefix, and no snapshot may change afterwards.  Then: the uuids
# come in the order of the mount points; a bad mount point in a group
# fails on one line and leaves nothing on the good one; a take that fails
# after another daemon took (fault builds); a client killed while it holds
# every mount, or stopped past --timeout, leaves nothing and writes go on;
# a daemon killed while it holds drops its snapshot at the next mount and
# the client deletes the one the other kept; a daemon stopped while it
# holds stops at once and keeps nothing; --freeze of two ext4 file
# systems, and a freeze that fails.  SECONDS_TO_RUN (default 10) for a
# longer load.
. "${TESTLIB:?TESTLIB must name tests/integration/lib.sh}"
CUT="python3 $(dirname "$TESTLIB")/cut.py"
RUN=${SECONDS_TO_RUN:-10}

A=$WORK/a
B=$WORK/b
MA=$WORK/ma
MB=$WORK/mb
make_image "$A" 8M
make_image "$B" 8M
start_snapfs "$A" "$MA" -o chunk_size=16K
PA=$SNAPFS_PID
start_snapfs "$B" "$MB" -o chunk_size=16K
PB=$SNAPFS_PID

# wait_stopped PID: waits until PID is stopped (by SIGSTOP).
wait_stopped() {
	local i
	for ((i = 0; i < 500; i++)); do
		[ "$(ps -o stat= -p "$1" | cut -c1)" = T ] && return 0
		kill -0 "$1" 2>/dev/null || fail "process $1 ended instead of stopping"
		sleep 0.02
	done
	fail "process $1 did not stop"
}

# ms_since T0: milliseconds since T0 (from date +%s%N).
ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

# one_line_failure FILE RC: the command failed with status 1 and said why
# on one line.
one_line_failure() {
	[ "$2" = 1 ] || fail "exit status $2, not 1: $(cat "$1")"
	[ "$(wc -l <"$1")" = 1 ] || fail "not one line: $(cat "$1")"
}

# --- one instant under load
$CUT write2 "$MA/live.img" "$MB/live.img" 1 0 1024 2>/dev/null &
W1=$!
register_pid $W1
$CUT write2 "$MB/live.img" "$MA/live.img" 2 512 1024 2>/dev/null &
W2=$!
register_pid $W2
GA=()
GB=()
declare -A SUMS=()
t0=$(date +%s%N)
end=$((SECONDS + RUN))
# RUN seconds, and 10 groups at least (a loaded machine takes longer)
while ((SECONDS < end || ${#GA[@]} < 10)); do
	((SECONDS < end + 2 * RUN)) || fail "only ${#GA[@]} groups in $((3 * RUN)) s"
	out=$("$SNAPFSCTL" create "$MA" "$MB") || fail "group create failed"
	[ "$(wc -l <<<"$out")" = 2 ] || fail "group create printed: $out"
	ua=$(sed -n 1p <<<"$out")
	ub=$(sed -n 2p <<<"$out")
	# the uuids in the order of the mount points
	SUMS[$ua]=$(sum "$MA/snapshots/$ua.img")
	SUMS[$ub]=$(sum "$MB/snapshots/$ub.img")
	GA+=("$ua")
	GB+=("$ub")
	sleep 0.2
done
kill "$W1" "$W2"
wait "$W1" "$W2" 2>/dev/null || true
note "${#GA[@]} groups in $(ms_since "$t0") ms of writing"
n=0
for ((i = 0; i < ${#GA[@]}; i++)); do
	SA=$MA/snapshots/${GA[i]}.img
	SB=$MB/snapshots/${GB[i]}.img
	$CUT check2 "$SA" "$SB" 1 0 1024 ||
		fail "group $i (${GA[i]} ${GB[i]}): writer 1 not one prefix across both"
	$CUT check2 "$SB" "$SA" 2 512 1024 ||
		fail "group $i (${GA[i]} ${GB[i]}): writer 2 not one prefix across both"
	[ "$(sum "$SA")" = "${SUMS[${GA[i]}]}" ] || fail "snapshot ${GA[i]} changed"
	[ "$(sum "$SB")" = "${SUMS[${GB[i]}]}" ] || fail "snapshot ${GB[i]} changed"
	n=$((n + 1))
done
[ "${SUMS[${GA[0]}]}" != "${SUMS[${GA[n - 1]}]}" ] || fail "the writers wrote nothing"
note "each one instant of both writers across both images"

# --- the uuids come in the order of the mount points
out=$("$SNAPFSCTL" create "$MB" "$MA")
if [ ! -e "$MB/snapshots/$(sed -n 1p <<<"$out").img" ] ||
	[ ! -e "$MA/snapshots/$(sed -n 2p <<<"$out").img" ]; then
	fail "create MB MA printed $out"
fi

# --- a bad mount point in a group: one line, exit 1, nothing taken
LA=$(snapshot_uuids "$MA" | sort)
LB=$(snapshot_uuids "$MB" | sort)
mkdir -p "$WORK/plain" "$WORK/fake"
: >"$WORK/fake/live.img"
C=$WORK/c
MC=$WORK/mc
make_image "$C" 8M
start_snapfs "$C" "$MC" -o ro
PC=$SNAPFS_PID
for bad in "$WORK/plain" "$WORK/fake" "$MC"; do
	rc=0
	"$SNAPFSCTL" create "$MA" "$bad" "$MB" >"$WORK/out" 2>"$WORK/err" || rc=$?
	one_line_failure "$WORK/err" "$rc"
	grep -q "$bad" "$WORK/err" || fail "the message does not name $bad: $(cat "$WORK/err")"
	[ ! -s "$WORK/out" ] || fail "a failed group printed $(cat "$WORK/out")"
	[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "a group with $bad left a snapshot on $MA"
	[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "a group with $bad left a snapshot on $MB"
done
[ "$(count_snapshots "$MC")" = 0 ] || fail "a snapshot of a read-only mount"
rc=0
"$SNAPFSCTL" create "$MA" "$MB" "$MA/" 2>"$WORK/err" || rc=$?
[ "$rc" = 2 ] || fail "one mount named twice: exit $rc"
SNAPFS_PID=$PC stop_snapfs "$MC"

# --- a take that fails after the other daemon took: both abort
if "$SNAPFS" --version | grep -q "fault injection"; then
	D=$WORK/d
	MD=$WORK/md
	make_image "$D" 8M
	SNAPFS_FAULT=index.snapshot:1:EIO start_snapfs "$D" "$MD"
	PD=$SNAPFS_PID
	rc=0
	"$SNAPFSCTL" create "$MA" "$MD" 2>"$WORK/err" || rc=$?
	one_line_failure "$WORK/err" "$rc"
	grep -q "$MD: take" "$WORK/err" || fail "not the take of $MD: $(cat "$WORK/err")"
	[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "an aborted group left a snapshot on $MA"
	[ "$(count_snapshots "$MD")" = 0 ] || fail "a failed take left a snapshot"
	"$SNAPFSCTL" status "$MA" | grep -q "group: snapshot .* dropped: the client aborted the group" ||
		fail "no group event on $MA: $("$SNAPFSCTL" status "$MA" | tail -3)"
	SNAPFS_PID=$PD stop_snapfs "$MD"
else
	note "not a fault build: a failing take is not tried"
fi

# --- a client killed while it holds both mounts
SNAPFSCTL_TEST_STOP_AFTER_TAKE=1 "$SNAPFSCTL" create "$MA" "$MB" >/dev/null 2>&1 &
CL=$!
register_pid $CL
wait_stopped $CL
# every write waits meanwhile
dd if=/dev/urandom of="$MA/live.img" bs=4K seek=1500 count=1 oflag=direct \
	conv=notrunc status=none &
DD=$!
register_pid $DD
sleep 0.3
kill -0 $DD 2>/dev/null || fail "a write went through while a group held the mount"
t0=$(date +%s%N)
{ kill -9 $CL && wait $CL; } 2>/dev/null || true
wait $DD || fail "the held write failed"
t=$(ms_since "$t0")
((t < 5000)) || fail "writes held $t ms after the client died (the timeout is 10 s)"
[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "a killed client left a snapshot on $MA"
[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "a killed client left a snapshot on $MB"
for m in "$MA" "$MB"; do
	"$SNAPFSCTL" status "$m" | grep -q "group: snapshot .* dropped: the client went away before commit" ||
		fail "no group event on $m"
done
note "writes went on $t ms after the holding client was killed"

# --- a client silent past --timeout: the daemons drop the group by themselves
SNAPFSCTL_TEST_STOP_AFTER_TAKE=1 "$SNAPFSCTL" create "$MA" "$MB" --timeout 1 \
	>"$WORK/out" 2>"$WORK/err" &
CL=$!
register_pid $CL
wait_stopped $CL
t0=$(date +%s%N)
# a request waits behind the hold: it is answered when the hold ends
LA2=$(snapshot_uuids "$MA" | sort)
"$SNAPFSCTL" list "$MA" >/dev/null
t=$(ms_since "$t0")
((t < 3000)) || fail "the 1 s hold lasted $t ms"
timeout 5 dd if=/dev/urandom of="$MB/live.img" bs=4K seek=1500 count=1 \
	oflag=direct conv=notrunc status=none || fail "writes held past the timeout"
[ "$LA2" = "$LA" ] || fail "a timed-out group left a snapshot on $MA"
[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "a timed-out group left a snapshot on $MB"
"$SNAPFSCTL" status "$MB" | grep -q "group: snapshot .* dropped: no commit within 1000 ms" ||
	fail "no timeout event on $MB"
kill -CONT $CL
rc=0
wait $CL || rc=$?
one_line_failure "$WORK/err" "$rc"
[ ! -s "$WORK/out" ] || fail "a timed-out group printed $(cat "$WORK/out")"
[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "a late commit kept a snapshot on $MA"

# --- a daemon killed while it holds: the other's snapshot is deleted by
# the client, and its own is dropped at its next mount
SNAPFSCTL_TEST_STOP_AFTER_TAKE=1 "$SNAPFSCTL" create "$MA" "$MB" >"$WORK/out" 2>"$WORK/err" &
CL=$!
register_pid $CL
wait_stopped $CL
SNAPFS_PID=$PB kill9_snapfs "$MB"
kill -CONT $CL
rc=0
wait $CL || rc=$?
[ "$rc" = 1 ] || fail "a group whose daemon died: exit $rc"
[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "the surviving daemon kept its snapshot"
start_snapfs "$B" "$MB" -o chunk_size=16K
PB=$SNAPFS_PID
[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "the killed daemon's held snapshot came back"

# --- a daemon stopped (SIGTERM) while it holds stops at once, cleanly,
# and leaves nothing; the other drops its snapshot when told
SNAPFSCTL_TEST_STOP_AFTER_TAKE=1 "$SNAPFSCTL" create "$MA" "$MB" >"$WORK/out" 2>"$WORK/err" &
CL=$!
register_pid $CL
wait_stopped $CL
t0=$(date +%s%N)
kill -TERM "$PA"
rc=0
wait "$PA" || rc=$?
[ "$rc" = 0 ] || fail "a daemon stopped while it held exited with $rc"
t=$(ms_since "$t0")
((t < 5000)) || fail "a daemon stopped while it held took $t ms"
# the client still has live.img open, so the mount outlived the daemon
fusermount3 -u -z "$MA" 2>/dev/null || true
kill -CONT $CL
rc=0
wait $CL || rc=$?
one_line_failure "$WORK/err" "$rc"
start_snapfs "$A" "$MA" -o chunk_size=16K
PA=$SNAPFS_PID
[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "the stopped daemon kept its held snapshot"
[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "the other daemon kept its snapshot"

# --- --freeze of two file systems, one on each image
FSA=$WORK/fsa
FSB=$WORK/fsb
SM=$WORK/sm
mkdir -p "$FSA" "$FSB" "$SM"
mkfs.ext4 -q -F "$MA/live.img"
mkfs.ext4 -q -F "$MB/live.img"
LOA=$(losetup -f --show "$MA/live.img")
register_loop "$LOA"
mount "$LOA" "$FSA"
register_mount "$FSA"
LOB=$(losetup -f --show "$MB/live.img")
register_loop "$LOB"
mount "$LOB" "$FSB"
register_mount "$FSB"
for fs in "$FSA" "$FSB"; do
	for i in 1 2 3 4 5; do
		head -c $((RANDOM * 8 + 1)) /dev/urandom >"$fs/file$i"
	done
	(cd "$fs" && sha256sum file*) >"$fs.sums"
done
# no sync: the freeze writes each file system through before the instant
out=$("$SNAPFSCTL" create "$MA" "$MB" --freeze "$FSA" --freeze "$FSB")
timeout 10 sh -c "echo after >'$FSA/after' && echo after >'$FSB/after'" ||
	fail "a file system left frozen"
i=0
for pair in "$MA $FSA" "$MB $FSB"; do
	read -r m fs <<<"$pair"
	i=$((i + 1))
	u=$(sed -n "${i}p" <<<"$out")
	sl=$(losetup -r -f --show "$m/snapshots/$u.img")
	register_loop "$sl"
	e2fsck -n -f "$sl" >"$WORK/fsck" 2>&1 || {
		cat "$WORK/fsck"
		fail "e2fsck -n on the snapshot of $fs"
	}
	# frozen, its journal is clean: it mounts without noload
	mount -o ro "$sl" "$SM" || fail "the snapshot of $fs does not mount (not frozen?)"
	(cd "$SM" && sha256sum -c --quiet "$fs.sums") || fail "files differ in the snapshot of $fs"
	umount "$SM"
	detach_loop "$sl"
done

# a freeze that fails: what was frozen is thawed, and nothing is taken
LA=$(snapshot_uuids "$MA" | sort)
LB=$(snapshot_uuids "$MB" | sort)
for bad in "$WORK/nowhere" /proc; do
	rc=0
	"$SNAPFSCTL" create "$MA" "$MB" --freeze "$FSA" --freeze "$bad" 2>"$WORK/err" || rc=$?
	one_line_failure "$WORK/err" "$rc"
	grep -q -- "--freeze $bad" "$WORK/err" || fail "$(cat "$WORK/err")"
	timeout 10 sh -c "echo again >'$FSA/after'" || fail "$FSA left frozen after --freeze $bad failed"
	[ "$(snapshot_uuids "$MA" | sort)" = "$LA" ] || fail "--freeze $bad failed but $MA has a new snapshot"
	[ "$(snapshot_uuids "$MB" | sort)" = "$LB" ] || fail "--freeze $bad failed but $MB has a new snapshot"
done

umount "$FSA" "$FSB"
detach_loop "$LOA"
detach_loop "$LOB"
SNAPFS_PID=$PA stop_snapfs "$MA"
SNAPFS_PID=$PB stop_snapfs "$MB"
grep -q "finishing the deletion" "$WORK/daemon.log" ||
	fail "the restarted daemon did not drop the held snapshot"
echo "group snapshots: $n groups under load, all or nothing, ok"
