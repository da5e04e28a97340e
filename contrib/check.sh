#!/bin/bash
# Installs what is needed, builds snapfs twice (plain with -Werror, and with
# AddressSanitizer + UndefinedBehaviorSanitizer and the fault points) and
# runs the whole test suite on each, then the concurrent tests under
# ThreadSanitizer and a few seconds of each fuzzer.  Ends with one line "N passed, N failed".  Run as root:
# the integration tests mount FUSE file systems and use loop devices.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

./contrib/deps.sh
./autogen.sh >/dev/null

# Formatting is part of the build's hygiene (.clang-format, kernel style).
if command -v clang-format >/dev/null; then
	clang-format --dry-run --Werror src/*.c include/snapfs/*.h \
		tests/unit/*.c tests/unit/*.h tests/fuzz/*.c
fi

passed=0
failed=0
status=0
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
tests/integration/many_snapshots.sh"
rc=0
# the consistency test runs its full minute here
(cd build-tsan && SECONDS_TO_RUN=60 make check TESTS="$(echo $TSAN_TESTS)") ||
	rc=$?
p=$(sed -n 's/^# PASS: *//p' build-tsan/test-suite.log | head -1)
f=$(sed -n 's/^# FAIL: *//p' build-tsan/test-suite.log | head -1)
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-0}))
if [ "$rc" != 0 ]; then
	status=1
	cat build-tsan/test-suite.log
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

echo "$passed passed, $failed failed"
exit "$status"
