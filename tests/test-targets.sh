#!/bin/sh
# bench/targets.py, the report's targets check: from a run's JSON lines it
# computes each ratio, its verdict, and the notes for the ones missed.
# Each case below is one a broken script would get wrong: a ratio turned
# the wrong way, a limit compared the wrong way, a zero taken for "not
# measured", a scenario that did not run still reported.
set -u
script="${top_srcdir:-.}/bench/targets.py"
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-targets.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# hak: 10 ns/page, mmap 1000 (100x: met), retain-memset 15 (1.5x: missed);
# CPU 20 against 2000 (0.01: met) and 15 (1.33: missed); no faults (met);
# 2 threads at 1.9x the pages/s of 1 (met).  Latency: p99.9 381 ns (met).
cat >"$tmp/run.json" <<'JSON'
{"scenario":"page","method":"hak","class_bytes":4096,"regime":"burst","threads":1,"ns_per_page":10.0,"pages_per_s":100000000,"faults_per_page":0.0000,"cpu_ns_per_page":20.0}
{"scenario":"page","method":"mmap","class_bytes":4096,"regime":"burst","threads":1,"ns_per_page":1000.0,"pages_per_s":1000000,"faults_per_page":1.0,"cpu_ns_per_page":2000.0}
{"scenario":"page","method":"retain-memset","class_bytes":4096,"regime":"burst","threads":1,"ns_per_page":15.0,"pages_per_s":66000000,"faults_per_page":0.0,"cpu_ns_per_page":15.0}
{"scenario":"page","method":"hak","class_bytes":4096,"regime":"burst","threads":2,"ns_per_page":10.0,"pages_per_s":190000000,"faults_per_page":0.0,"cpu_ns_per_page":20.0}
{"scenario":"latency","phase":"ready","method":"hak","class_bytes":4096,"p999_ns":381.0,"alloc_ready":100}
JSON
python3 "$script" "$tmp/run.json" >"$tmp/out.md" || { echo "FAIL: targets.py exited $?"; exit 1; }

fail=0
# expect PATTERN: a line of the output matches the extended regex.
expect() {
	grep -Eq -- "$1" "$tmp/out.md" || { echo "FAIL: no line matches: $1"; fail=1; }
}
refuse() {
	! grep -Eq -- "$1" "$tmp/out.md" || { echo "FAIL: a line matches: $1"; fail=1; }
}
expect '^\| burst, 4 KiB: hak faster than mmap per page \(x\) +\| +100 \| +>= 50 \| yes'
expect '^\| burst, 4 KiB: hak faster than retain-memset per page \(x\) +\| +1\.5 \| +>= 2 \| \*\*NO\*\*'
expect '^\| burst, 4 KiB: hak page faults per page +\| +0 \| <= 0\.01 \| yes'
expect '^\| burst, 4 KiB: whole-system CPU per page, hak over mmap +\| +0\.01 \| +<= 0\.2 \| yes'
expect '^\| burst, 4 KiB: whole-system CPU per page, hak over retain-memset +\| +1\.33 \| +<= 1\.2 \| \*\*NO\*\*'
expect '^\| burst, 4 KiB: hak pages/s, 2 threads over 1 +\| +1\.9 \| +>= 1\.6 \| yes'
expect '^\| sustained, 4 KiB: hak pages/s over mmap +\| +- \| +>= 15 \| not measured'
expect '^\| 4 KiB, pool ready: hak p99\.9 allocation latency \(ns\) +\| +381 \| <= 1e\+03 \| yes'
expect '^- \*\*Missed: burst, 4 KiB: hak faster than retain-memset per page \(x\)\*\* \(1\.5 against >= 2\)\.  Why: '
refuse '^- \*\*Missed: burst, 4 KiB: hak faster than mmap'
refuse '^### targets: zero'
[ "$(grep -c '^- \*\*Missed' "$tmp/out.md")" = 2 ] || { echo "FAIL: not exactly 2 missed"; fail=1; }

[ $fail = 0 ] || { cat "$tmp/out.md"; exit 1; }
echo "PASS: targets.py verdicts"
