#!/bin/bash
# The module graph from the real #include lines: one line a module of
# src/ (the src/store*.c files are one module, "store", and the src/cow*.c
# files "cow"), then what it includes: other modules, the small shared
# headers of src/, and the one third-party library it owns.  README.md's "Source map" shows this
# output between its markers; `make check-source-map` fails when they
# differ, or when a module is missing from README's table.
#
#   contrib/source-map.sh [SRCDIR]          print the graph
#   contrib/source-map.sh --check [SRCDIR]  compare it with README.md
set -euo pipefail
export LC_ALL=C # one sort order wherever it runs

check=0
if [ "${1:-}" = --check ]; then
	check=1
	shift
fi
top=${1:-$(dirname "$0")/..}

module() { # FILE: its module name
	local m
	m=$(basename "$1")
	m=${m%.[ch]}
	case $m in store_int | store_*) m=store ;; cow_int | cow_*) m=cow ;; esac
	echo "$m"
}

graph() {
	local f m d
	for f in "$top"/src/*.c; do
		m=$(module "$f")
		sed -n 's/^#include "\(snapfs\/\)\{0,1\}\([a-z_0-9]*\)\.h".*/\2/p
			s/^#include <sqlite3\.h>.*/SQLite/p
			s/^#include <liburing\.h>.*/liburing/p
			s/^#include <fuse_lowlevel\.h>.*/libfuse/p' "$f" |
			while read -r d; do
				case $d in store_int) d=store ;; cow_int) d=cow ;; config) continue ;; esac
				[ "$d" = "$m" ] || printf '%s %s\n' "$m" "$d"
			done
		printf '%s\n' "$m" # a module that includes nothing of ours
	done | sort -u | {
		cur="" line=""
		flush() {
			if [ -n "$line" ]; then
				printf '%-10s ->%s\n' "$cur" "$line"
			elif [ -n "$cur" ]; then
				printf '%s\n' "$cur"
			fi
		}
		while read -r m d; do
			[ "$m" = "$cur" ] || { flush; cur=$m line=""; }
			[ -z "${d:-}" ] || line+=" $d"
		done
		flush
	}
}

if [ "$check" = 0 ]; then
	graph
	exit 0
fi
readme=$top/README.md
# the block between the markers, an indented code block (a fenced one
# would be taken for the README's first commands by tools that run them)
shown=$(sed -n '/^<!-- source-map -->$/,/^<!-- \/source-map -->$/p' "$readme" |
	sed -n 's/^    //p')
if [ "$shown" != "$(graph)" ]; then
	echo "source-map: README.md's graph is not the one the #include lines make:" >&2
	diff <(echo "$shown") <(graph) >&2 || true
	echo "source-map: update it with contrib/source-map.sh" >&2
	exit 1
fi
rc=0
for f in "$top"/src/*.c; do
	m=$(module "$f")
	grep -q "^| .*\`src/${m}[*.]" "$readme" ||
		{ echo "source-map: README.md's table has no row for src/$m" >&2; rc=1; }
done
exit "$rc"
