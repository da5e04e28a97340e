#!/bin/bash
# The short crash torture of make check: 3 kills (tests/torture/torture.sh
# takes a count for long runs).
exec bash "$(dirname "$TESTLIB")/../torture/torture.sh" 3
