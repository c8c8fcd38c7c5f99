# shellcheck shell=sh
# shellcheck disable=SC2154 # hakzerod, tmp: set by the script that sources this
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced by report.sh and report-apps.sh: a hakzerod of this build on its
# embedded defaults, on a socket in $tmp, killed (and continued first, in
# case a run left it stopped) with $tmp removed when the script exits.
# Needs $hakzerod, $tmp and die() set.

# How long the daemon may take to bind its socket: it measures its zeroing
# first, seconds on a loaded machine.
REPORT_DAEMON_WAIT_S=30

daemon=
report_cleanup() {
	if [ -n "$daemon" ]; then
		kill -CONT "$daemon" 2>/dev/null || true
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap report_cleanup EXIT
trap 'exit 1' INT TERM

"$hakzerod" --foreground --config /dev/null --socket "$tmp/s.sock" >/dev/null 2>"$tmp/daemon.log" &
daemon=$!
i=0
while [ ! -S "$tmp/s.sock" ]; do
	i=$((i + 1))
	[ $i -le $((REPORT_DAEMON_WAIT_S * 20)) ] && kill -0 "$daemon" 2>/dev/null || {
		cat "$tmp/daemon.log" >&2
		die "hakzerod did not start"
	}
	sleep 0.05
done
