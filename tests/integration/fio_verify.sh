#!/bin/bash
# Data integrity under concurrency: fio with O_DIRECT at queue depth 16
# and verification, on live.img with a snapshot active (every first write
# to a chunk preserves it) and without; the snapshot must not change.
. "$TESTLIB"
command -v fio >/dev/null || { echo "SKIP: no fio"; exit 77; }

IMG=$WORK/img
MNT=$WORK/mnt
make_image "$IMG" 256M
start_snapfs "$IMG" "$MNT"
L=$MNT/live.img
dd if=/dev/urandom of="$L" bs=1M count=256 conv=notrunc,fsync status=none
U=$(snap "$MNT")
SUM=$(sum "$MNT/snapshots/$U.img")

run_fio() { # NAME BS RW
	fio --name="$1" --filename="$L" --size=256M --bs="$2" --rw="$3" \
		--direct=1 --ioengine=io_uring --iodepth=16 --numjobs=1 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--verify_backlog=64 --randrepeat=0 --verify_state_save=0 \
		--output="$WORK/fio.out" ||
		{ cat "$WORK/fio.out"; fail "fio $1"; }
	grep -q "err= 0" "$WORK/fio.out" || { cat "$WORK/fio.out"; fail "fio $1 errors"; }
}

run_fio first-touch-4k 4k randwrite
[ "$(sum "$MNT/snapshots/$U.img")" = "$SUM" ] || fail "snapshot changed under fio"
run_fio rewrite-64k 64k randwrite
U2=$(snap "$MNT")
SUM2=$(sum "$MNT/snapshots/$U2.img")
run_fio mixed-1m 1m randwrite
[ "$(sum "$MNT/snapshots/$U.img")" = "$SUM" ] || fail "first snapshot changed under fio"
[ "$(sum "$MNT/snapshots/$U2.img")" = "$SUM2" ] || fail "second snapshot changed under fio"
stop_snapfs "$MNT"
echo "fio verify at queue depth 16: ok"
