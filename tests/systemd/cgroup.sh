# shellcheck shell=sh disable=SC2154 # builddir, tmp, MEMBER: check-systemd.sh's
# Memory charged to the right cgroup, sourced by check-systemd.sh with the
# container booted and hakzerod.service running (it uses ct, check,
# main_pid, client, $MEMBER, $tmp and $builddir from there):
#
#   a client in a unit of its own with MemoryMax= writes pool slots: their
#   pages are charged to that unit, not to hakzerod.service (the client
#   faults its pool's pages in; the daemon only zeroes pages already there);
#   a client whose MemoryMax= is below what it writes is stopped by its own
#   limit (OOM-killed, or it fails) and the daemon goes on: same process,
#   no OOM kill in its cgroup, and the next client is served.
#
# Skipped, with the reason, where the container has no memory controller.

HOLD=/usr/local/libexec/hakzerod-tests/sd-hold
# 96 slots of 64 KiB: within that class's 10% of the default 64 MiB pool.
HOLD_BYTES=$((6 * 1024 * 1024))
HOLD_MAX=256M # the holding client's MemoryMax=: ample
OVER_MAX=4M   # below HOLD_BYTES: the client goes over it
# What the daemon writes itself for one client: its control segment (rings,
# counters), a few hundred KiB with the default classes.
DAEMON_SHMEM_SLACK=$((4 * 1024 * 1024))
HOLD_TIMEOUT=20 # seconds for the client to take and write its slots

cp "$builddir/tests/systemd/sd-hold" "$tmp/root$HOLD"

# The memory controller's files, unified (cgroup v2) or legacy (v1, where
# the container follows a host that has it): the tree, the usage, the file
# with the oom_kill count.
if ct test -f /sys/fs/cgroup/cgroup.controllers; then
	CG_MEM=/sys/fs/cgroup CG_USAGE=memory.current CG_OOM=memory.events
	ct grep -qw memory /sys/fs/cgroup/cgroup.controllers || CG_MEM=""
else
	CG_MEM=/sys/fs/cgroup/memory CG_USAGE=memory.usage_in_bytes CG_OOM=memory.oom_control
	ct test -f "$CG_MEM/memory.stat" || CG_MEM=""
fi

# Unit $1's directory in the memory controller's tree.
cgroup_of() {
	echo "$CG_MEM$(ct systemctl show --value -p ControlGroup "$1")"
}

# KEY's value in FILE of unit $1's cgroup (memory.stat, $CG_OOM).
cg_value() {
	ct cat "$(cgroup_of "$1")/$2" | awk -v k="$3" '$1 == k { print $2 }'
}

held() {
	[ "$(cg_value "$1" memory.stat shmem)" -ge "$HOLD_BYTES" ] 2>/dev/null &&
		ct journalctl --no-pager -o cat -u "$1" | grep -q '^holding'
}

charged_to_client() {
	unit=hak-cg-hold.service
	before=$(cg_value hakzerod.service memory.stat shmem)
	ct systemd-run --quiet --collect --unit="$unit" -p User="$MEMBER" \
		-p MemoryMax="$HOLD_MAX" -p RuntimeMaxSec=$((HOLD_TIMEOUT * 3)) \
		"$HOLD" "$HOLD_BYTES" || return 1
	ok=""
	for _ in $(seq $((HOLD_TIMEOUT * 10))); do
		held "$unit" && { ok=1; break; }
		[ "$(ct systemctl is-active "$unit")" = active ] || break
		sleep 0.1
	done
	client_shmem=$(cg_value "$unit" memory.stat shmem)
	client_usage=$(ct cat "$(cgroup_of "$unit")/$CG_USAGE")
	after=$(cg_value hakzerod.service memory.stat shmem)
	ct journalctl --no-pager -o cat -u "$unit" | tail -n 3
	ct systemctl stop "$unit"
	echo "$unit: shmem $client_shmem, $CG_USAGE $client_usage (holds $HOLD_BYTES of pool slots)"
	echo "hakzerod.service: shmem $before before, $after while the client held them"
	[ -n "$ok" ] && [ "${after:-0}" -ge 0 ] &&
		[ $((after - before)) -lt "$DAEMON_SHMEM_SLACK" ]
}

# The client cannot hold HOLD_BYTES under OVER_MAX unless its pages were
# charged elsewhere: that would end in a timeout, not a clean stop.
over_limit() {
	unit=hak-cg-over.service
	pid=$(main_pid)
	restarts=$(ct systemctl show --value -p NRestarts hakzerod.service)
	ooms=$(cg_value hakzerod.service "$CG_OOM" oom_kill)
	out=$(ct systemd-run --wait --collect --unit="$unit" -p User="$MEMBER" \
		-p MemoryMax="$OVER_MAX" -p MemorySwapMax=0 -p RuntimeMaxSec="$HOLD_TIMEOUT" \
		"$HOLD" "$HOLD_BYTES" 2>&1)
	echo "$out" | grep -E 'result|status|Main processes'
	result=$(echo "$out" | sed -n 's/^Finished with result: //p')
	echo "hakzerod.service: main pid $pid before, $(main_pid) after;" \
		"NRestarts $restarts, $(ct systemctl show --value -p NRestarts hakzerod.service);" \
		"oom_kill $ooms, $(cg_value hakzerod.service "$CG_OOM" oom_kill)"
	case "$result" in oom-kill | exit-code) ;; *) return 1 ;; esac
	[ "$(main_pid)" = "$pid" ] &&
		[ "$(ct systemctl show --value -p NRestarts hakzerod.service)" = "$restarts" ] &&
		[ "$(cg_value hakzerod.service "$CG_OOM" oom_kill)" = "$ooms" ] &&
		[ "$(ct systemctl is-active hakzerod.service)" = active ]
}

ct systemctl start hakzerod.service
if [ -z "$CG_MEM" ]; then
	say "SKIP  cgroup checks: no memory controller in the container"
elif ! ct test -f "$(cgroup_of hakzerod.service)/memory.stat"; then
	say "SKIP  cgroup checks: hakzerod.service has no memory cgroup of its own"
else
	check "a client's pool pages are charged to its unit, not to hakzerod.service" charged_to_client
	check "a client over its MemoryMax= stops cleanly, the daemon goes on" over_limit
	check "$MEMBER served after that" client "$MEMBER"
fi
