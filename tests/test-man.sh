#!/bin/sh
# Every manual page renders without a warning (mandoc -Tlint, groff -ww).
set -u
dir="${top_srcdir:-.}/man"
command -v mandoc >/dev/null || { echo "SKIP: mandoc not installed (apt-get install mandoc)"; exit 77; }
fail=0
n=0
for page in "$dir"/*.[1-8]; do
	n=$((n + 1))
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: $page"
		echo "$out"
		fail=1
	fi
	if command -v groff >/dev/null; then
		out=$(groff -man -ww -z "$page" 2>&1)
		[ -z "$out" ] || { echo "FAIL: $page (groff)"; echo "$out"; fail=1; }
	fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no manual pages found in $dir"; exit 1; }
echo "$n pages checked"
exit $fail
