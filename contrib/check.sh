#!/bin/bash
# Installs what is needed, builds snapfs twice (plain with -Werror, and with
# AddressSanitizer + UndefinedBehaviorSanitizer and the fault points) and
# runs the whole test suite on each, then the concurrent tests under
# ThreadSanitizer, a few seconds of each fuzzer, make distcheck, and the
# Debian package: built, installed, tested as installed, removed.  Ends with one line "N passed, N failed".  Run as root:
# the integration tests mount FUSE file systems and use loop devices.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

./contrib/deps.sh
./autogen.sh >/dev/null

passed=0
failed=0
status=0
# The logs of the tests that failed, printed again at the very end, where
# a reader of a long run's output (or of its last lines only) finds them.
failed_logs=()
note_failures() { # BUILD-DIR
	local t
	while read -r t; do
		failed_logs+=("$1/${t%.sh}.log")
	done < <(sed -n 's/^\(FAIL\|ERROR\): \(tests\/[^ ]*\).*/\2/p' "$1/test-suite.log" | sort -u)
}
run_build() { # DIR CONFIGURE-FLAGS...
	local dir=$1 rc=0
	shift
	mkdir -p "$dir"
	(cd "$dir" && "$top/configure" -q "$@" && make -j"$(nproc)" >/dev/null)
	(cd "$dir" && make -j"$(nproc)" check) || rc=$?
	local log=$dir/test-suite.log
	local p f
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0}))
	if [ "$rc" != 0 ]; then
		status=1
		cat "$log"
		note_failures "$dir"
	fi
}

run_build build --enable-werror
# LeakSanitizer runs too; Criterion's own runner is left out of it.
ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run_build build-san --enable-werror --enable-sanitizers \
	--enable-fault-injection

# ThreadSanitizer on the daemon under the concurrent tests (Criterion's
# runner cannot start under TSan, so the unit tests are left out); a race
# report makes the daemon exit non-zero, which the tests check.
mkdir -p build-tsan
(cd build-tsan && "$top/configure" -q CFLAGS="-g -O1 -fsanitize=thread" \
	LDFLAGS="-fsanitize=thread" && make -j"$(nproc)" >/dev/null)
TSAN_TESTS="tests/integration/consistency.sh tests/integration/fio_verify.sh
tests/integration/torture_short.sh tests/integration/store_full.sh
tests/integration/many_snapshots.sh tests/integration/group.sh"
rc=0
# the consistency and group tests run their full minute here.  detect_deadlocks=0:
# a batch of 4 KiB chunks holds up to 512 stripe locks (taken in
# ascending order, cow.c), and TSan's deadlock detector stops the
# process at 64 held locks; races are still reported.
(cd build-tsan && SECONDS_TO_RUN=60 TSAN_OPTIONS=detect_deadlocks=0 \
	make check TESTS="${TSAN_TESTS//$'\n'/ }") ||
	rc=$?
p=$(sed -n 's/^# PASS: *//p' build-tsan/test-suite.log | head -1)
f=$(sed -n 's/^# FAIL: *//p' build-tsan/test-suite.log | head -1)
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-0}))
if [ "$rc" != 0 ]; then
	status=1
	cat build-tsan/test-suite.log
	note_failures build-tsan
fi

# A few seconds of each libFuzzer target (options, control requests,
# damaged stores); longer runs: make -C build fuzz-run FUZZ_SECONDS=3600
if command -v clang >/dev/null; then
	if make -C build fuzz-run FUZZ_SECONDS=5; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		status=1
	fi
fi

# The release as an administrator gets it: make distcheck (the tarball
# builds, installs and uninstalls cleanly out of tree; the tests ran
# above), then the Debian package built from that tarball, installed,
# tested as installed (tests/package/installed.sh) and removed.
stage() { # NAME COMMAND...: one counted step
	local name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		echo "FAIL: $name" >&2
		failed=$((failed + 1))
		status=1
	fi
}
# The man pages are checked in the .deb, not after installing it: minimal
# images tell dpkg not to unpack /usr/share/man.
deb_has_man() { # DEB
	local list m
	list=$(dpkg-deb -c "$1") || return 1
	for m in man8/snapfs.8 man8/snapfsctl.8 man5/snapfs-cbt.5; do
		grep -q "/usr/share/man/$m.gz" <<<"$list" ||
			{ echo "no man page $m in $1" >&2; return 1; }
	done
}
package() {
	local tmp deb
	tmp=$(mktemp -d /tmp/snapfs-pkg.XXXXXX)
	tar -xzf build/snapfs-*.tar.gz -C "$tmp" &&
		(cd "$tmp"/snapfs-*/ && dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1 ||
			{ tail -40 "$tmp/build.log"; exit 1; }) &&
		deb=$(ls "$tmp"/snapfs_*.deb) &&
		deb_has_man "$deb" &&
		apt-get install -y -q "$deb" >/dev/null &&
		bash tests/package/installed.sh &&
		apt-get remove -y -q --purge snapfs >/dev/null &&
		! command -v snapfs >/dev/null &&
		[ ! -e /usr/sbin/mount.fuse.snapfs ] &&
		[ ! -e /usr/lib/systemd/system/snapfs@.service ]
	local rc=$?
	dpkg -s snapfs >/dev/null 2>&1 && apt-get remove -y -q --purge snapfs >/dev/null
	rm -rf "$tmp"
	return "$rc"
}
# Hygiene: formatting (.clang-format, kernel style), each library's header
# only in its module, README's source map as the code has it, shellcheck
# on the scripts.
stage format make -C build -s format-check
stage check-includes make -C build check-includes
stage check-source-map make -C build -s check-source-map
stage shellcheck make -C build -s shellcheck
stage distcheck make -C build distcheck TESTS= >/dev/null
stage package package

for log in "${failed_logs[@]}"; do
	echo "==== the end of $log"
	tail -n 40 "$log"
done
echo "$passed passed, $failed failed"
exit "$status"
