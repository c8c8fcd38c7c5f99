#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The apps section of DOCDIR/benchmarks.md (`make bench` and `make
# bench-apps`): starts a hakzerod of this build on its embedded defaults on
# a socket in a fresh temporary directory, runs `hakbench apps` against it,
# stops it, and writes the tables and a chart (gnuplot) between its own two
# marker comments; the rest of the page is kept as it is.
#
# Usage: report-apps.sh BUILDDIR DOCDIR [--quick] [other options, ignored]
set -eu

builddir=$1
docdir=$2
shift 2
hakzerod=$builddir/hakzerod
hakbench=$builddir/hakbench
quick=
for a in "$@"; do
	[ "$a" = --quick ] && quick=--quick
done

die() {
	echo "make bench: apps: $*" >&2
	exit 1
}

[ -x "$hakzerod" ] && [ -x "$hakbench" ] || die "build hakzerod and hakbench first"
mkdir -p "$docdir" || die "cannot create $docdir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakbench-apps.XXXXXX")
# shellcheck source=bench/report-daemon.sh
. "$(dirname "$0")/report-daemon.sh"

started=$(date -u '+%Y-%m-%d %H:%M UTC')
t0=$(date +%s)
rc=0
# shellcheck disable=SC2086
"$hakbench" apps --socket "$tmp/s.sock" --json-file "$tmp/apps.json" $quick >"$tmp/tables.md" || rc=$?
t1=$(date +%s)
# 1: some runs failed, and their rows say so; anything else is an error.
[ $rc -le 1 ] || die "hakbench apps failed ($rc)"

# ---- the chart: median ratio to stock jemalloc, a cluster per figure ----

awk '
function field(k,   m) {
	if (match($0, "\"" k "\":\"?[^,\"}]*")) {
		m = substr($0, RSTART, RLENGTH)
		sub("\"" k "\":\"?", "", m)
		return m
	}
	return ""
}
/"scenario":"apps"/ && /"setup":/ {
	s = field("setup"); w = field("workload") (field("figure") == "" ? "" : " " field("figure"))
	if (s == "jemalloc") next
	if (!(s in seen)) { seen[s] = 1; setups[++ns] = s }
	if (!(w in wseen)) { wseen[w] = 1; works[++nw] = w }
	v[w, s] = field("ratio")
}
END {
	printf "figure"
	for (j = 1; j <= ns; j++) { t = setups[j]; gsub(/ /, "_", t); printf " %s", t }
	printf "\n"
	for (i = 1; i <= nw; i++) {
		t = works[i]; gsub(/ /, "_", t); printf "%s", t
		for (j = 1; j <= ns; j++) {
			x = v[works[i], setups[j]]
			printf " %s", (x == "" || x == "null" ? "NaN" : x)
		}
		printf "\n"
	}
}' "$tmp/apps.json" >"$tmp/apps.dat"
ncol=$(head -n 1 "$tmp/apps.dat" | wc -w)
if command -v gnuplot >/dev/null 2>&1; then
	gnuplot <<-EOF || die "gnuplot failed"
		set terminal pngcairo size 1400,600 font ",10" noenhanced
		set output "$docdir/benchmarks-apps.png"
		set title "Unchanged programs: median ratio to stock jemalloc (log scale; higher is better; 1 = jemalloc)"
		set style data histogram
		set style histogram clustered gap 1
		set style fill solid 0.85 border -1
		set logscale y
		set grid ytics
		set xtics rotate by -30 font ",9"
		set key below horizontal font ",9"
		set ylabel "ratio to stock jemalloc"
		plot for [i=2:$ncol] "$tmp/apps.dat" using i:xtic(1) title columnheader(i)
	EOF
	chart='![median ratio to stock jemalloc per program and setup](benchmarks-apps.png)'
else
	echo "make bench: apps: gnuplot is not installed: no chart" >&2
	chart='(No chart: gnuplot was not installed.)'
fi

# ---- the section ----

begin='<!-- make bench apps: begin (generated; edits inside are overwritten) -->'
end='<!-- make bench apps: end -->'
{
	echo "$begin"
	cat <<-EOF
		# Benchmarks: unchanged programs against the allocators a user could pick

		Written by \`make bench\` (or \`make bench-apps\`, this section alone) on
		$started.  It starts the \`hakzerod\` of the build on its embedded defaults
		on a socket in a fresh temporary directory and runs

		\`\`\`sh
		hakbench apps --socket SOCKET --json-file apps.json $quick
		\`\`\`

		which took $((t1 - t0)) s on $(nproc) CPUs ($(uname -sr)).  It needs
		\`redis-server\`, \`redis-tools\`, \`python3-numpy\`, \`libtcmalloc-minimal4\`,
		\`libmimalloc2.0\` and \`gnuplot\` (\`./quickstart.sh bench\` installs
		them); a row whose program or allocator is missing says "skipped".
		The machine may be shared: compare within a round (the ratios), and read
		the A/A control's range as the noise floor.

		$chart
	EOF
	cat "$tmp/tables.md"
	echo
	echo "$end"
} >"$tmp/generated.md"

page=$docdir/benchmarks.md
if [ -f "$page" ] && grep -qF "$begin" "$page"; then
	awk -v b="$begin" -v e="$end" -v gen="$tmp/generated.md" '
		$0 == b { while ((getline l < gen) > 0) print l; skip = 1; next }
		$0 == e { skip = 0; next }
		!skip' "$page" >"$tmp/page.md"
elif [ -f "$page" ]; then
	{ cat "$page"; echo; cat "$tmp/generated.md"; } >"$tmp/page.md"
else
	cp "$tmp/generated.md" "$tmp/page.md"
fi
cp "$tmp/page.md" "$page.tmp" && mv "$page.tmp" "$page"
echo "make bench: wrote the apps section of $docdir/benchmarks.md ($((t1 - t0)) s)"
exit $rc
