#!/bin/bash
# The power-loss replay of make check: 15 crash states (a build with
# --enable-fault-injection; tests/torture/powerloss.sh takes a count).
exec bash "$(dirname "$TESTLIB")/../torture/powerloss.sh" 15
