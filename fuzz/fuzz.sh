#!/bin/sh
# Runs one libFuzzer harness for a while; `make fuzz` calls it per harness.
#
#   fuzz.sh NAME SECONDS SRCDIR      (from the top of a --enable-fuzz build)
#
# New inputs go to fuzz/work/NAME in the build tree; the committed seeds
# (SRCDIR/fuzz/corpus/NAME) and regressions are only read.  A crash, leak,
# timeout or broken invariant leaves the input in fuzz/crashes/ and fails,
# saying what to do with it.
set -u
name=$1
secs=$2
srcdir=$3
bin=fuzz/fuzz-$name
work=fuzz/work/$name
log=fuzz/fuzz-$name.log
# Inputs up to twice a protocol datagram: long enough to be truncated.
max_len=8192
# Per input; the harnesses give up on their own after 10 s of waiting.
timeout=30

mkdir -p "$work" fuzz/crashes
set -- -max_total_time="$secs" -timeout="$timeout" -max_len="$max_len" \
	-print_final_stats=1 -artifact_prefix="fuzz/crashes/$name-"
if [ -f "$srcdir/fuzz/$name.dict" ]; then
	set -- "$@" -dict="$srcdir/fuzz/$name.dict"
fi
set -- "$@" "$work" "$srcdir/fuzz/corpus/$name"
if [ -d "$srcdir/fuzz/regressions/$name" ]; then
	set -- "$@" "$srcdir/fuzz/regressions/$name"
fi

if "$bin" "$@" >"$log" 2>&1; then
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	done=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+')
	echo "fuzz-$name: ${secs}s, $runs runs ($rate/s), $done"
	exit 0
fi
tail -n 40 "$log" >&2
echo "fuzz-$name: FAILED (whole log: $log)" >&2
for f in fuzz/crashes/"$name"-*; do
	[ -e "$f" ] || continue
	echo "fuzz-$name: input: $f -- fix the bug, then add the input to" \
		"fuzz/regressions/$name/ so that make check keeps it fixed" >&2
done
exit 1
