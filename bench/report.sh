#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `make bench`: starts a hakzerod of this build on its embedded defaults on a
# socket in a fresh temporary directory, runs `hakbench all` against it,
# stops it, and writes its part of DOCDIR/benchmarks.md (the machine, the
# command, every table, the targets checked by targets.py against the
# run's JSON lines) and the charts it embeds, drawn with gnuplot.  Its
# part lies between two marker comments; the rest of the page (the
# hand-written jemalloc workload results) is kept as it is.
#
# Usage: report.sh BUILDDIR DOCDIR [extra hakbench options]
set -eu

builddir=$1
docdir=$2
shift 2
hakzerod=$builddir/hakzerod
hakbench=$builddir/hakbench
srcdir=$(dirname "$0")

die() {
	echo "make bench: $*" >&2
	exit 1
}

[ -x "$hakzerod" ] && [ -x "$hakbench" ] || die "build hakzerod and hakbench first"
command -v python3 >/dev/null || die "python3 is needed to check the targets"
mkdir -p "$docdir" || die "cannot create $docdir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakbench.XXXXXX")
# shellcheck source=bench/report-daemon.sh
. "$(dirname "$0")/report-daemon.sh"

# ---- the run ----

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
"$hakbench" all --socket "$tmp/s.sock" --daemon-pid "$daemon" --stall-daemon \
	--json-file "$tmp/results.json" "$@" >"$tmp/tables.md" || die "hakbench failed"
t1=$(date +%s)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
zero_method=$(sed -n 's/.*zeroing with \(.*\)/\1/p' "$tmp/daemon.log" | tail -n 1)
python3 "$srcdir/targets.py" "$tmp/results.json" >"$tmp/targets.md" ||
	die "bench/targets.py failed"

# ---- charts ----

# One data file per (figure, regime), from the page rows of one thread:
# a row per class, a column per method (the gnuplot histogram's layout).
page_data() { # key regime -> stdout
	awk -v key="$1" -v regime="$2" '
	function field(k,   m) {
		if (match($0, "\"" k "\":\"?[^,\"}]*")) {
			m = substr($0, RSTART, RLENGTH)
			sub("\"" k "\":\"?", "", m)
			return m
		}
		return ""
	}
	/"scenario":"page"/ && field("regime") == regime && field("threads") == "1" {
		m = field("method"); c = field("class_bytes")
		if (!(m in seen)) { seen[m] = 1; methods[++nm] = m }
		if (!(c in cseen)) { cseen[c] = 1; classes[++nc] = c }
		v[c, m] = field(key)
	}
	END {
		printf "class"
		for (j = 1; j <= nm; j++) printf " %s", methods[j]
		printf "\n"
		for (i = 1; i <= nc; i++) {
			c = classes[i]
			printf "%s", (c + 0 >= 1048576 ? c / 1048576 "MiB" : c / 1024 "KiB")
			for (j = 1; j <= nm; j++) printf " %s", ((c, methods[j]) in v && v[c, methods[j]] != "null" ? v[c, methods[j]] : "NaN")
			printf "\n"
		}
	}' "$tmp/results.json"
}

chart() { # key title file
	page_data "$1" burst >"$tmp/burst.dat"
	page_data "$1" sustained >"$tmp/sustained.dat"
	ncol=$(head -n 1 "$tmp/burst.dat" | wc -w)
	gnuplot <<-EOF || die "gnuplot failed"
		set terminal pngcairo size 1200,560 font ",10" noenhanced
		set output "$docdir/$3"
		set multiplot layout 1,2 title "$2 (1 thread; log scale; lower is better)"
		set style data histogram
		set style histogram clustered gap 1
		set style fill solid 0.85 border -1
		set logscale y
		set yrange [1:*]
		set grid ytics
		set key below horizontal font ",9"
		set ylabel "ns per 4 KiB page"
		set title "burst: ready pool, one byte written per page"
		plot for [i=2:$ncol] "$tmp/burst.dat" using i:xtic(1) title columnheader(i)
		set title "sustained: back to back, every byte written"
		plot for [i=2:$ncol] "$tmp/sustained.dat" using i:xtic(1) title columnheader(i)
		unset multiplot
	EOF
}

chart ns_per_page "Time of the allocating thread per page, by method and class" benchmarks-ns.png
chart cpu_ns_per_page "Whole-system CPU per page (allocating threads + hakzerod)" benchmarks-cpu.png

# ---- the page ----

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
l3=$(cat /sys/devices/system/cpu/cpu0/cache/index3/size 2>/dev/null || echo "?")
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo "?")
virt=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor:[[:space:]]*//p')
[ -n "$virt" ] || virt=$(systemd-detect-virt 2>/dev/null || echo "none found")

begin='<!-- make bench: begin (generated; edits inside are overwritten) -->'
end='<!-- make bench: end -->'
{
	echo "$begin"
	cat <<-EOF
		# Benchmarks: the hakbench suite

		Written by \`make bench\` on $started; run it again to refresh this part
		of the page (up to the end marker; the rest is kept).  Every figure is a
		ratio or a median measured in this one run, next to the methods it is
		compared with: on a busy or virtual machine compare within a table, not
		between runs.

		## How to reproduce

		From a configured build directory (out of tree, as in the README):

		\`\`\`sh
		make bench                        # this page: docs/benchmarks.md in the source tree
		make bench BENCH_DOCDIR=/some/dir # elsewhere
		\`\`\`

		It builds what it needs, starts the \`hakzerod\` of the build on its
		embedded defaults (\`--config /dev/null\`; zero_method auto: zeroing with
		**${zero_method:-?}** this time) on a socket in a fresh temporary
		directory, runs

		\`\`\`sh
		hakbench all --socket SOCKET --daemon-pid PID --stall-daemon --json-file results.json
		\`\`\`

		and stops the daemon.  No root needed; \`--stall-daemon\` lets hakbench stop
		(SIGSTOP) its own daemon for the stalled regime and the dry latency case.
		This run took $((t1 - t0)) s.  The profile section needs \`perf\`; the charts
		need \`gnuplot\`; the targets, \`python3\`.

		## Machine

		| | |
		|---|---|
		| CPU | $cpu, $(nproc) online CPUs, L3 $l3 |
		| memory | $mem |
		| kernel | $(uname -sr) ($(uname -m)) |
		| hypervisor | $virt |
		| transparent huge pages | $thp |
		| load average before / after | $load_before / $load_after |

		## Charts

		![ns per page by method and class](benchmarks-ns.png)

		![whole-system CPU per page by method and class](benchmarks-cpu.png)

	EOF
	cat "$tmp/tables.md"
	cat <<-EOF
		## Targets

		The ratios of the tables above against the suite's targets, with, for
		each one missed, the reason measured while the suite was built and
		what would reach it (bench/targets.py).

	EOF
	cat "$tmp/targets.md"
	echo "$end"
} >"$tmp/generated.md"

# The page: the generated part replaces the one between the markers, or
# goes first when there is none yet; what is outside is kept.
page=$docdir/benchmarks.md
if [ -f "$page" ] && grep -qF "$begin" "$page"; then
	awk -v b="$begin" -v e="$end" -v gen="$tmp/generated.md" '
		$0 == b { while ((getline l < gen) > 0) print l; skip = 1; next }
		$0 == e { skip = 0; next }
		!skip' "$page" >"$tmp/page.md"
elif [ -f "$page" ]; then
	{ cat "$tmp/generated.md"; echo; cat "$page"; } >"$tmp/page.md"
else
	cp "$tmp/generated.md" "$tmp/page.md"
fi
cp "$tmp/page.md" "$page.tmp" && mv "$page.tmp" "$page"
echo "make bench: wrote $docdir/benchmarks.md and its charts ($((t1 - t0)) s)"

# Its own section, against a daemon of its own: unchanged programs.
sh "$(dirname "$0")/report-apps.sh" "$builddir" "$docdir" "$@"
