#!/bin/sh
# shellcheck disable=SC2015,SC2317 # ok() always succeeds; cleanup runs from the trap
# What an operator meets first, without systemd:
#
#   a config error exits 78 (EX_CONFIG, the unit's RestartPreventExitStatus=)
#   and is logged at err, "file:line: message";
#   a second daemon on a busy socket says so before it measures anything;
#   hakctl's hints follow the error (a permission problem is not "is
#   hakzerod running?"), and under --json errors are JSON.
set -u

for prog in "${HAKZEROD:?HAKZEROD not set (run through make check)}" "${HAKCTL:?}"; do
	[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
done
EXIT_CONFIG=78
START_TENTHS=300 # how long the first daemon may take to listen (it measures its zeroing first)

tmp=$(mktemp -d) || exit 1
daemon_pid=""
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }

# ---- a config error
printf 'pool_size 64M\nno_such_directive 1\n' >"$tmp/bad.conf"
"$HAKZEROD" --config "$tmp/bad.conf" --socket "$tmp/never.sock" 2>"$tmp/err"
rc=$?
[ "$rc" -eq "$EXIT_CONFIG" ] && ok "a config error exits $EXIT_CONFIG" ||
	bad "a config error exited $rc, not $EXIT_CONFIG"
grep -q "error: $tmp/bad.conf:2: unknown directive 'no_such_directive'" "$tmp/err" &&
	ok "it is logged at err as file:line" ||
	{ cat "$tmp/err"; bad "no 'error: FILE:2: unknown directive' line"; }
"$HAKZEROD" --check-config --config "$tmp/bad.conf" 2>/dev/null
rc=$?
[ "$rc" -eq "$EXIT_CONFIG" ] && ok "--check-config exits $EXIT_CONFIG" ||
	bad "--check-config exited $rc, not $EXIT_CONFIG"

# ---- a busy socket
printf 'log_level info\npool_size 4M\n' >"$tmp/ok.conf"
"$HAKZEROD" --config "$tmp/ok.conf" --socket "$tmp/s.sock" 2>"$tmp/first.log" &
daemon_pid=$!
for _ in $(seq "$START_TENTHS"); do
	"$HAKCTL" --socket "$tmp/s.sock" status >/dev/null 2>&1 && break
	sleep 0.1
done
"$HAKCTL" --socket "$tmp/s.sock" status >/dev/null || { cat "$tmp/first.log"; bad "the first daemon does not answer"; exit 1; }
"$HAKZEROD" --verbose --config "$tmp/ok.conf" --socket "$tmp/s.sock" 2>"$tmp/second.log"
rc=$?
[ "$rc" -ne 0 ] && grep -q 'another hakzerod is running there' "$tmp/second.log" &&
	ok "a second daemon on the busy socket fails, saying why" ||
	{ cat "$tmp/second.log"; bad "a second daemon exited $rc without saying the socket is busy"; }
# The zeroing measurement logs "zeroing ..." lines: none may come first.
if grep -q 'zeroing' "$tmp/second.log"; then
	cat "$tmp/second.log"
	bad "the second daemon measured zeroing before finding the socket busy"
else
	ok "... before the zeroing measurement"
fi

# ---- hakctl's hints
out=$("$HAKCTL" --socket "$tmp/none.sock" status 2>&1)
echo "$out" | grep -q 'is hakzerod running' && ok "no socket: 'is hakzerod running?'" ||
	bad "no socket, no hint: $out"
out=$("$HAKCTL" --json --socket "$tmp/none.sock" status 2>/dev/null)
rc=$?
echo "$out" | grep -Eq '^\{"error":"cannot connect to [^"]*","errno":2\}$' && [ "$rc" -eq 1 ] &&
	ok "--json: the error is JSON on stdout" || bad "--json error (exit $rc): $out"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$tmp"
	chmod 0660 "$tmp/s.sock"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$HAKCTL" --socket "$tmp/s.sock" status 2>&1)
	if echo "$out" | grep -q 'is hakzerod running'; then
		bad "a permission error is blamed on a stopped daemon: $out"
	elif echo "$out" | grep -q 'permission denied on .*only root and the members of group'; then
		ok "EACCES: the hint names the socket's group"
	else
		bad "EACCES without a hint: $out"
	fi
else
	echo "skip: EACCES hint (needs root and setpriv)"
fi

exit "$fail"
