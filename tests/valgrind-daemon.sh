#!/bin/sh
# hakzerod under valgrind memcheck through a real workload: libhakclient
# processes (tests/hak-client) allocate, fill, check, free and fork in
# parallel, hakctl asks every admin question, a client is killed while
# holding its pool, hostile peers (tests/hak-hostile, when there) attack the
# socket and the rings, then SIGTERM.  Fails on any memcheck error or leak
# (definite, indirect or possible) in the daemon, a daemon that does not
# stop cleanly, or a libhakclient client that fails.
#
# $HAKZEROD, $HAKCTL, $HAK_CLIENT and (optional) $HAK_HOSTILE name the
# binaries (`make check-valgrind` sets them).  Exit 0 pass, 1 fail, 77 skip.
set -u

# memcheck runs the daemon many times slower: leave it time to start and stop.
START_TIMEOUT_S=60
STOP_TIMEOUT_S=60

skip() {
	echo "valgrind-daemon: SKIP: $*"
	exit 77
}

command -v valgrind >/dev/null 2>&1 || skip "no valgrind"
case "${SAN_CFLAGS:-}" in
*sanitize*) skip "a sanitizer build: valgrind cannot run it" ;;
esac
for v in HAKZEROD HAKCTL HAK_CLIENT; do
	eval "bin=\${$v:-}"
	[ -x "$bin" ] || skip "\$$v does not name a program"
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/hakvg.XXXXXX") || exit 1
sock=$dir/s.sock
vglog=$dir/valgrind.log
daemon_pid=

cleanup() {
	[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

fail() {
	echo "valgrind-daemon: FAIL: $*" >&2
	for f in "$vglog" "$dir"/client-*.log; do
		[ -s "$f" ] && { echo "---- $f" >&2; tail -n 60 "$f" >&2; }
	done
	exit 1
}

# Rounds of each churning client: a few seconds under memcheck.
CHURN_ROUNDS=50
# Attacks from tests/hostile.c that reach the most daemon code.
HOSTILE_ATTACKS="garbage malformed sizes fds after-welcome ring seals"

# Small pools so that clients run dry, refill, return and trim quickly;
# memset: no start-up measurement of the zeroing methods.
cat >"$dir/hakzerod.conf" <<CONF
socket $sock
pool_size 4M
pool_size_max 8M
zero_method memset
zero_threads 2
trim_idle 200ms
log_level info
CONF

valgrind --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible \
	--log-file="$vglog" \
	"$HAKZEROD" --foreground --config "$dir/hakzerod.conf" 2>"$dir/daemon.log" &
daemon_pid=$!

hakctl() {
	"$HAKCTL" --socket "$sock" "$@" >>"$dir/hakctl.log" 2>&1
}

i=0
until hakctl status; do
	kill -0 "$daemon_pid" 2>/dev/null || fail "hakzerod exited at start-up"
	i=$((i + 1))
	[ "$i" -le $((START_TIMEOUT_S * 10)) ] || fail "hakzerod did not answer in ${START_TIMEOUT_S}s"
	sleep 0.1
done

# Runs one hak-client scenario in the background; its log is kept.
client() {
	name=$1
	shift
	"$HAK_CLIENT" "$@" --socket "$sock" >"$dir/client-$name.log" 2>&1 &
}

pids=
client churn-zero churn --pattern 0x11 --rounds $CHURN_ROUNDS --mode zero
pids="$pids $!"
client churn-mixed churn --pattern 0x22 --rounds $CHURN_ROUNDS --mode mixed
pids="$pids $!"
client threads threads --pattern 0x33 --threads 4 --rounds 10
pids="$pids $!"
client fork fork --pattern 0x44 --rounds 1
pids="$pids $!"
# One client dies holding its pool: the daemon must reclaim all of it.  Its
# stdin stays open (fd 3) so that it holds until killed; an explicit
# redirection, or the shell would give the background job /dev/null.
mkfifo "$dir/hold.in"
exec 3<>"$dir/hold.in"
"$HAK_CLIENT" hold --socket "$sock" --pattern 0x55 --pages 12 \
	<"$dir/hold.in" >"$dir/client-killed.log" 2>&1 &
killed=$!
hakctl clients
hakctl --json stats
for p in $pids; do
	wait "$p" || fail "client $p failed"
done
i=0
until grep -q '^held' "$dir/client-killed.log"; do
	i=$((i + 1))
	[ "$i" -le $((START_TIMEOUT_S * 10)) ] || fail "the holding client did not get its pages"
	sleep 0.1
done
grep -q '^connect rc=0 connected=1' "$dir/client-killed.log" ||
	fail "the holding client did not connect"
kill -KILL "$killed"
wait "$killed" 2>/dev/null
exec 3>&-

# Whether each attack gets the outcome it should is test-hostile's to
# judge; here they only drive the daemon's error paths under memcheck.
if [ -x "${HAK_HOSTILE:-}" ]; then
	for a in $HOSTILE_ATTACKS; do
		"$HAK_HOSTILE" "$a" --socket "$sock" >"$dir/hostile-$a.log" 2>&1 ||
			echo "valgrind-daemon: note: hak-hostile $a: $(tail -n 1 "$dir/hostile-$a.log")"
	done
fi
hakctl trim || fail "hakctl trim"
hakctl status || fail "hakctl status"
hakctl stats || fail "hakctl stats"

kill -TERM "$daemon_pid"
i=0
while kill -0 "$daemon_pid" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -le $((STOP_TIMEOUT_S * 10)) ] || fail "hakzerod did not stop in ${STOP_TIMEOUT_S}s"
	sleep 0.1
done
wait "$daemon_pid"
rc=$?
daemon_pid=
[ "$rc" -eq 99 ] && fail "memcheck found errors or leaks"
[ "$rc" -eq 0 ] || fail "hakzerod exited with status $rc"
grep -q "ERROR SUMMARY: 0 errors" "$vglog" || fail "memcheck reported errors"
echo "valgrind-daemon: memcheck clean ($(grep -o 'total heap usage.*' "$vglog"))"
exit 0
