#!/bin/sh
# hakzerod under a real systemd: boots Debian 12 with systemd as PID 1 in a
# systemd-nspawn container, installs this build into it and checks the units:
#
#   systemd-analyze verify (both units), systemd-analyze security <= 2.5;
#   hakzerod.socket: the socket's owner and mode, a member of group hakzerod
#   connects and that starts hakzerod.service (socket activation), a
#   non-member is refused; the daemon runs as its own user with
#   CAP_IPC_LOCK only, no new privileges and a seccomp filter; `hakctl status`
#   answers; `systemctl reload` keeps the same process; its log lines are in
#   the journal; a crash is restarted (Restart=on-failure); `systemctl stop`
#   stops it cleanly and the socket starts it again on the next connection;
#   then the checks of the files in MORE_CHECKS (operator.sh: what an
#   operator trips on; cgroup.sh: a client's pool
#   pages are charged to its own unit, a client over its MemoryMax=);
#   then the Debian packages in place of `make install` (packages.sh).
#
# Run by `make check-systemd` (not by `make check`).  Needs root,
# systemd-nspawn, nsenter and overlayfs; the first run also needs debootstrap
# and the Debian mirror named in the apt sources: it caches a minimal
# Debian tree (a few minutes, about 400 MB) in $HAK_SYSTEMD_CACHE.  Exit status 0 pass,
# 1 fail, 77 skip (with the reason), as for the tests of `make check`;
# HAK_SYSTEMD_REQUIRE=1 turns a skip into a failure.
#
# Environment: abs_top_builddir (the build to install; default: the current
# directory), sysconfdir (the build's), MAKE, HAK_SYSTEMD_CACHE, TMPDIR,
# HAK_DEBS (the .deb files for packages.sh).
# shellcheck disable=SC2317 # the check functions are called through check()
set -u

SUITE=bookworm
# liburing2 and libsystemd0 for the daemon and the library, procps for the
# /bin/kill of ExecReload=; for the packages (packages.sh): libjemalloc2
# and the -dev packages' dependencies, and a compiler and pkg-config to
# build a client with them.
INCLUDE=systemd,systemd-sysv,dbus,liburing2,libsystemd0,procps,libjemalloc2,liburing-dev,libjemalloc-dev,gcc,libc6-dev,pkgconf
CACHE_ROOT=${HAK_SYSTEMD_CACHE_ROOT:-/var/cache/hakzerod-tests}
# One tree per package list: runs of trees with different lists (branches)
# do not rebuild each other's cache.
CACHE=${HAK_SYSTEMD_CACHE:-$CACHE_ROOT/$SUITE-systemd-$(echo "$INCLUDE" | cksum | cut -d' ' -f1)}
STAMP=.hakzerod-test-stamp
MAX_EXPOSURE_TENTHS=25 # systemd-analyze security: at most 2.5
BOOT_TIMEOUT=60        # seconds until the container's systemd is up
CMD_TIMEOUT=30         # seconds for each command run inside
START_TIMEOUT=10       # seconds for hakzerod to become active
WATCHDOG_SEC=2         # a short WatchdogSec= for the watchdog check
SOCK=/run/hakzerod/hakzerod.sock
MEMBER=haktest-member   # a user in group hakzerod
OUTSIDER=haktest-other  # a user not in it
CAPS_IPC_LOCK=0000000000004000 # /proc/PID/status mask of CAP_IPC_LOCK alone
CLIENT=/usr/local/libexec/hakzerod-tests/sd-client
# One slot of each default class, jemalloc's 2 MiB + 4 KiB included.
CLIENT_SIZES="4096 65536 2097152 2101248"
CT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

builddir=${abs_top_builddir:-$(pwd)}
here=$(cd "$(dirname "$0")" && pwd)
# Further checks, each in a file next to this script (see their headers).
MORE_CHECKS="operator.sh cgroup.sh"
sysconfdir=${sysconfdir:-/etc}
MAKE=${MAKE:-make}
tmp=""
nspawn_pid=""
ct_pid=""
overlay_mounted=""
nspawn_tmpfs=""
failures=0

say() { echo "check-systemd: $*"; }

skip() {
	say "SKIP: $*"
	[ "${HAK_SYSTEMD_REQUIRE:-0}" = 1 ] && exit 1
	exit 77
}

fail_now() {
	say "FAIL: $*"
	exit 1
}

# Runs even when the script fails half way: stop the container, unmount
# what was mounted, remove the scratch directory.
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null # nspawn halts the container
		for _ in $(seq 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$nspawn_pid" 2>/dev/null
		wait "$nspawn_pid" 2>/dev/null
	fi
	[ -n "$overlay_mounted" ] && umount "$tmp/root" 2>/dev/null
	[ -n "$nspawn_tmpfs" ] && umount /run/systemd/nspawn 2>/dev/null &&
		rmdir /run/systemd/nspawn 2>/dev/null
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ----------------------------------------------------------------- prerequisites
[ "$(id -u)" -eq 0 ] || skip "needs root (systemd-nspawn, mounts)"
for tool in systemd-nspawn nsenter flock mountpoint; do
	command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install systemd-container util-linux)"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
	skip "no overlayfs in this kernel"
for prog in hakzerod tests/systemd/sd-client tests/systemd/sd-hold; do
	[ -x "$builddir/$prog" ] || fail_now "$builddir/$prog not built (make check-systemd builds it)"
done

# ----------------------------------------------------------------- the cached tree
# The first Debian mirror for $SUITE in the apt sources (deb822 or one-line).
apt_mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v suite="$SUITE" '
			function flush() {
				if (deb && hit && on && uri != "") { print uri; done = 1; exit }
				deb = 0; hit = 0; on = 1; uri = ""
			}
			BEGIN { on = 1 }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
			tolower($1) == "enabled:" { on = (tolower($2) != "no") }
			END { if (!done) flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
	done
}

build_cache() {
	command -v debootstrap >/dev/null ||
		skip "no cached tree in $CACHE and debootstrap not installed (apt-get install debootstrap)"
	mirror=$(apt_mirror | head -n 1)
	[ -n "$mirror" ] || skip "no Debian mirror for $SUITE in the apt sources"
	say "building $CACHE from $mirror (once; a few minutes)"
	new="$CACHE.new.$$"
	rm -rf "$new"
	if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$new" "$mirror" \
		>"$CACHE_ROOT/debootstrap.log" 2>&1; then
		tail -n 20 "$CACHE_ROOT/debootstrap.log"
		rm -rf "$new"
		skip "debootstrap from $mirror failed (log: $CACHE_ROOT/debootstrap.log)"
	fi
	rm -rf "$new/var/cache/apt/archives/"*.deb
	echo "$SUITE $INCLUDE" >"$new/$STAMP"
	rm -rf "$CACHE"
	mv "$new" "$CACHE"
}

mkdir -p "$CACHE_ROOT"
# One run at a time: they share the cache and /run/systemd/nspawn.
exec 9>"$CACHE_ROOT/.lock"
flock -w 600 9 || skip "another check-systemd run holds $CACHE_ROOT/.lock"
[ "$(cat "$CACHE/$STAMP" 2>/dev/null)" = "$SUITE $INCLUDE" ] || build_cache

# ----------------------------------------------------------------- the container
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/hakzerod-systemd.XXXXXX") || fail_now "mktemp"
say "installing $builddir into the container"
"$MAKE" -s -C "$builddir" install DESTDIR="$tmp/stage" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail_now "make install DESTDIR=... failed"; }

# The cached tree stays untouched: the container writes into an overlay.
mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
mount -t overlay overlay -o "lowerdir=$CACHE,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root" ||
	skip "cannot mount an overlayfs on $tmp"
overlay_mounted=1
# Keep the tree's merged-/usr symlinks (/lib -> usr/lib) when the build
# installs into /lib/systemd/system.
(cd "$tmp/stage" && tar -cf - .) | tar -C "$tmp/root" -xf - --keep-directory-symlink ||
	fail_now "copying the installed files into the container"
mkdir -p "$tmp/root${CLIENT%/*}"
cp "$builddir/tests/systemd/sd-client" "$tmp/root$CLIENT"
chroot "$tmp/root" /sbin/ldconfig
# Test users, created with the package's own sysusers.d file.
mkdir -p "$tmp/root/etc/sysusers.d"
cat >"$tmp/root/etc/sysusers.d/hakzerod-test.conf" <<EOF
u $MEMBER - "hakzerod test client"
m $MEMBER hakzerod
u $OUTSIDER - "hakzerod test outsider"
EOF

# nspawn keeps state under /run/systemd/nspawn, which must be a tmpfs; /run
# is not one on every machine that runs this.
if ! mountpoint -q /run/systemd/nspawn; then
	mkdir -p /run/systemd/nspawn
	mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn || skip "cannot mount a tmpfs on /run/systemd/nspawn"
	nspawn_tmpfs=1
fi

say "booting systemd in the container"
boot_start=$(date +%s.%N)
# No host bus on every machine: --register=no --keep-unit.  The console goes
# to a file; stdin must not be a terminal nspawn would take over.  A host's
# systemd has CAP_IPC_LOCK, nspawn's does not by default (its seccomp filter
# then also forbids mlock*, and the unit's AmbientCapabilities= would be
# silently dropped): grant it.
systemd-nspawn -D "$tmp/root" --boot --register=no --keep-unit --console=pipe \
	--private-network --capability=CAP_IPC_LOCK \
	--machine="hakzerod-test-$$" </dev/null >"$tmp/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is nspawn's child running systemd.
for _ in $(seq $((BOOT_TIMEOUT * 10))); do
	for p in $(pgrep -P "$nspawn_pid"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && ct_pid=$p
	done
	[ -n "$ct_pid" ] && break
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$ct_pid" ]; then
	tail -n 30 "$tmp/console.log"
	skip "systemd-nspawn could not boot a container here (console log above)"
fi

# Runs a command inside the container, in a clean environment.
ct() {
	timeout "$CMD_TIMEOUT" nsenter -t "$ct_pid" -a \
		env -i PATH="$CT_PATH" LANG=C.UTF-8 SYSTEMD_COLORS=0 SYSTEMD_PAGER= "$@"
}

# systemctl fails until PID 1 listens on its private socket; then --wait
# returns when the boot is over.
state=""
for _ in $(seq $((BOOT_TIMEOUT * 5))); do
	state=$(ct systemctl is-system-running --wait 2>/dev/null)
	case "$state" in running | degraded | maintenance | stopping | offline) break ;; esac
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.2
done
boot_end=$(date +%s.%N)
case "$state" in
running) ;;
degraded) ct systemctl --failed --no-legend --no-pager ;;
*)
	tail -n 30 "$tmp/console.log"
	skip "the container's systemd did not come up (state: ${state:-none})"
	;;
esac
say "container up ($state) in $(echo "$boot_end $boot_start" | awk '{ printf "%.1f", $1 - $2 }') s"

# ----------------------------------------------------------------- the checks
# check NAME COMMAND...: runs COMMAND, shows its output, counts a failure.
check() {
	name=$1
	shift
	if out=$("$@" 2>&1); then
		say "ok    $name"
		[ -n "$out" ] && echo "$out" | sed 's/^/      | /'
		return 0
	fi
	say "FAIL  $name"
	[ -n "$out" ] && echo "$out" | sed 's/^/      | /'
	failures=$((failures + 1))
	return 1
}

unit_dir=$(ct systemd-analyze unit-paths | while read -r d; do
	[ -f "$tmp/root$d/hakzerod.service" ] && { echo "$d"; break; }
done)
[ -n "$unit_dir" ] || fail_now "hakzerod.service not installed in a unit directory the container's systemd reads"

# verify: like tests/test-units.sh, any message counts as a failure.
verify_units() {
	out=$(ct systemd-analyze verify --man=no --recursive-errors=no \
		"$unit_dir/hakzerod.service" "$unit_dir/hakzerod.socket" 2>&1) || { echo "$out"; return 1; }
	[ -z "$out" ] || { echo "$out"; return 1; }
	echo "$unit_dir/hakzerod.service, $unit_dir/hakzerod.socket: no message"
}

security() {
	out=$(ct systemd-analyze security --no-pager --threshold="$MAX_EXPOSURE_TENTHS" hakzerod.service 2>&1)
	rc=$?
	echo "$out" | grep -E '✗|Overall exposure'
	return "$rc"
}

enabled() {
	ct systemctl enable hakzerod.service || return 1
	state=$(ct systemctl is-enabled hakzerod.socket)
	echo "hakzerod.socket: $state"
	[ "$state" = enabled ]
}

socket_perms() {
	out=$(ct stat -c '%A %U:%G' "$SOCK") || return 1
	echo "$out $SOCK"
	[ "$out" = "srw-rw---- root:hakzerod" ]
}

socket_active() {
	state=$(ct systemctl is-active hakzerod.socket)
	echo "hakzerod.socket: $state"
	[ "$state" = active ]
}

# Runs the libhakclient client as user $1.
client() {
	# shellcheck disable=SC2086 # a list of sizes
	ct setpriv --reuid="$1" --regid="$1" --init-groups "$CLIENT" $CLIENT_SIZES
}

refused() {
	if out=$(client "$1" 2>&1); then
		echo "$out (should have been refused)"
		return 1
	fi
	echo "$out" | grep 'Permission denied' || { echo "$out"; return 1; }
}

is_active() {
	want=$1
	for _ in $(seq $((START_TIMEOUT * 10))); do
		state=$(ct systemctl is-active hakzerod.service)
		[ "$state" = "$want" ] && { echo "hakzerod.service: $state"; return 0; }
		sleep 0.1
	done
	echo "hakzerod.service: $state, wanted $want"
	ct systemctl status --no-pager --lines=20 hakzerod.service
	return 1
}

main_pid() {
	ct systemctl show --value -p MainPID hakzerod.service
}

# The daemon runs as hakzerod, with CAP_IPC_LOCK as its only capability,
# NoNewPrivileges and a seccomp filter, as the unit says.
sandboxed() {
	pid=$(main_pid)
	[ "${pid:-0}" -gt 0 ] || { echo "no main pid"; return 1; }
	st=$(ct cat "/proc/$pid/status") || return 1
	echo "$st" | grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):'
	user=$(ct stat -c %U "/proc/$pid")
	echo "user: $user"
	[ "$user" = hakzerod ] &&
		echo "$st" | grep -Eq "^CapEff:[[:space:]]+$CAPS_IPC_LOCK\$" &&
		echo "$st" | grep -Eq "^CapBnd:[[:space:]]+$CAPS_IPC_LOCK\$" &&
		echo "$st" | grep -Eq '^NoNewPrivs:[[:space:]]+1$' &&
		echo "$st" | grep -Eq '^Seccomp:[[:space:]]+2$'
}

reload() {
	before=$(main_pid)
	ct systemctl reload hakzerod.service || return 1
	sleep 0.5
	after=$(main_pid)
	echo "main pid $before before, $after after; $(ct systemctl is-active hakzerod.service)"
	[ "$before" = "$after" ] && [ "$(ct systemctl is-active hakzerod.service)" = active ]
}

journal() {
	out=$(ct journalctl -b --no-pager -o short-monotonic -u hakzerod.service)
	echo "$out" | tail -n 20
	# Lines from the daemon itself, not only systemd's "Started ...".
	echo "$out" | grep -q 'hakzerod\[[0-9]*\]:'
}

# ExecReload= checks the file first: a broken one fails the reload and the
# daemon goes on with the configuration it has.
bad_reload() {
	conf="$sysconfdir/hakzerod/hakzerod.conf"
	before=$(main_pid)
	ct mkdir -p "${conf%/*}" && ct sh -c "echo 'no_such_directive 1' >$conf" || return 1
	if ct systemctl reload hakzerod.service; then
		echo "reload with a broken $conf succeeded"
		ct rm -f "$conf"
		return 1
	fi
	ct rm -f "$conf"
	after=$(main_pid)
	echo "main pid $before before, $after after; $(ct systemctl is-active hakzerod.service)"
	[ "$before" = "$after" ] && [ "$(ct systemctl is-active hakzerod.service)" = active ]
}

restarted_after_crash() {
	before=$(main_pid)
	ct systemctl kill --signal=SIGKILL hakzerod.service || return 1
	for _ in $(seq $((START_TIMEOUT * 10))); do
		after=$(main_pid)
		[ "${after:-0}" -gt 0 ] && [ "$after" != "$before" ] &&
			[ "$(ct systemctl is-active hakzerod.service)" = active ] && break
		sleep 0.1
	done
	echo "main pid $before killed, now ${after:-none}; NRestarts=$(ct systemctl show --value -p NRestarts hakzerod.service)"
	[ "${after:-0}" -gt 0 ] && [ "$after" != "$before" ]
}

# With a short WatchdogSec= (a runtime drop-in), the daemon must keep
# pinging: without WATCHDOG=1 systemd would kill and restart it.
watchdog() {
	dropin=/run/systemd/system/hakzerod.service.d
	ct mkdir -p "$dropin" &&
		ct sh -c "printf '[Service]\nWatchdogSec=${WATCHDOG_SEC}s\n' >$dropin/watchdog.conf" &&
		ct systemctl daemon-reload && ct systemctl restart hakzerod.service || return 1
	before=$(main_pid)
	sleep $((WATCHDOG_SEC * 3))
	after=$(main_pid)
	ct rm -r "$dropin" && ct systemctl daemon-reload
	echo "WatchdogSec=${WATCHDOG_SEC}s: main pid $before, $((WATCHDOG_SEC * 3)) s later $after"
	[ "${before:-0}" -gt 0 ] && [ "$before" = "$after" ]
}

stopped_cleanly() {
	ct systemctl stop hakzerod.service || return 1
	show=$(ct systemctl show -p ActiveState -p Result -p ExecMainCode -p ExecMainStatus hakzerod.service)
	echo "$show" | tr '\n' ' '
	echo
	echo "$show" | grep -qx 'ActiveState=inactive' && echo "$show" | grep -qx 'Result=success'
}

t0=$(date +%s.%N)
ct systemd-sysusers >/dev/null 2>&1
check "systemd-sysusers: user and group hakzerod" ct getent passwd hakzerod
check "systemd-analyze verify hakzerod.service hakzerod.socket" verify_units
check "systemd-analyze security hakzerod.service: exposure <= $MAX_EXPOSURE_TENTHS/10" security
check "systemctl enable hakzerod.service enables the socket (Also=)" enabled
check "systemctl start hakzerod.socket" ct systemctl start hakzerod.socket
check "socket $SOCK is root:hakzerod 0660" socket_perms
check "hakzerod.service not started before a client comes" is_active inactive
check "$OUTSIDER (not in group hakzerod) cannot connect" refused "$OUTSIDER"
check "$MEMBER connects, gets zeroed slots from a pool" client "$MEMBER"
check "the connection started hakzerod.service (socket activation)" is_active active
check "the daemon is sandboxed as the unit says" sandboxed
check "$MEMBER again (the daemon running)" client "$MEMBER"
check "hakctl status answers" ct hakctl status
check "systemctl reload hakzerod (same process)" reload
check "hakctl status answers after the reload" ct hakctl status
check "systemctl reload with a broken config fails, the daemon goes on" bad_reload
check "Restart=on-failure restarts a killed daemon" restarted_after_crash
check "the daemon feeds the watchdog" watchdog
check "journalctl -u hakzerod shows the daemon's lines" journal
check "systemctl stop hakzerod stops it cleanly" stopped_cleanly
check "the socket stays active" socket_active
check "the next connection starts it again" ct hakctl status
check "hakzerod.service active again" is_active active
# More checks, a file each next to this script, sourced with the functions
# and variables above at hand and the daemon running.
for more in $MORE_CHECKS; do
	# shellcheck source=/dev/null
	. "$here/$more"
done
check "systemctl stop hakzerod.service hakzerod.socket" ct systemctl stop hakzerod.service hakzerod.socket
# The Debian packages, in the same container (tests/systemd/packages.sh).
# shellcheck source=tests/systemd/packages.sh
. "$(dirname "$0")/packages.sh"
t1=$(date +%s.%N)
say "checks took $(echo "$t1 $t0" | awk '{ printf "%.1f", $1 - $2 }') s," \
	"$(echo "$t1 $boot_start" | awk '{ printf "%.1f", $1 - $2 }') s since the boot began"

if [ "$failures" -gt 0 ]; then
	say "$failures check(s) failed"
	exit 1
fi
say "all checks passed"
exit 0
