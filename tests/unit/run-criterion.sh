#!/bin/sh
# Runs one Criterion test binary for automake's tap-driver: the TAP report
# on stdout, one line per test.  (The report goes through the flag, not
# CRITERION_OUTPUTS, which under AddressSanitizer leaks inside Criterion.)
exec "$1" --tap=/dev/stdout
