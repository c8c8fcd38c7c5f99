# shellcheck shell=sh disable=SC2154 # sysconfdir and the rest: set by check-systemd.sh
# What an operator trips on, checked under the booted systemd.  Sourced by
# check-systemd.sh with the daemon active: uses its ct, check, is_active,
# main_pid, $MEMBER, $OUTSIDER and $sysconfdir.
#
#   zero_method auto measures end to end under the unit's filter, keeps
#   its choice in the state directory and takes it back on a restart;
#   LimitNOFILE= is the unit's;
#   a member of group hakzerod reads status, stats and clients, but not
#   trim; an outsider's hint is about permission, not a stopped daemon;
#   a config error exits 78, is not restarted, is in `journalctl -p
#   warning` as file:line, and the socket survives a bad restart and
#   clients knocking on it; fixed, the next client starts the daemon.

OP_NOFILE=16384 # the unit's LimitNOFILE=
OP_KNOCKS=8     # connections to a broken daemon: more than systemd's default start burst (5)
OP_CONF="$sysconfdir/hakzerod/hakzerod.conf"
OP_STATE=/var/lib/hakzerod/zero-method

# The lines of this run of the daemon.
op_journal_since_start() {
	ct journalctl -b --no-pager -o cat -u hakzerod.service _PID="$(main_pid)"
}

# The first start measures end to end in the background (or an earlier
# start did): give it some seconds.
op_zero_measured() {
	ct systemctl restart hakzerod.service || return 1
	for _ in $(seq $((START_TIMEOUT * 10))); do
		out=$(op_journal_since_start | grep 'zeroing')
		echo "$out" | grep -q 'cheapest end to end' && ct test -f "$OP_STATE" && break
		sleep 0.1
	done
	ct cat "$OP_STATE"
	echo "$out"
	echo "$out" | grep -q 'cheapest end to end'
}

op_zero_kept() {
	ct systemctl restart hakzerod.service || return 1
	out=$(op_journal_since_start | grep 'zeroing')
	echo "$out"
	echo "$out" | grep -q 'cheapest end to end, kept from an earlier start'
}

op_nofile() {
	out=$(ct grep 'Max open files' "/proc/$(main_pid)/limits") || return 1
	echo "$out"
	echo "$out" | grep -Eq "Max open files +$OP_NOFILE +$OP_NOFILE "
}

op_as() {
	user=$1
	shift
	ct setpriv --reuid="$user" --regid="$user" --init-groups "$@"
}

op_member_reads() {
	op_as "$MEMBER" hakctl status && op_as "$MEMBER" hakctl stats >/dev/null &&
		op_as "$MEMBER" hakctl --json clients >/dev/null
}

op_member_no_trim() {
	if out=$(op_as "$MEMBER" hakctl trim 2>&1); then
		echo "$out (should have been refused)"
		return 1
	fi
	echo "$out"
	echo "$out" | grep -q 'permission denied: trim needs root'
}

op_outsider_hint() {
	if out=$(op_as "$OUTSIDER" hakctl status 2>&1); then
		echo "$out (should have been refused)"
		return 1
	fi
	echo "$out"
	! echo "$out" | grep -q 'is hakzerod running' &&
		echo "$out" | grep -q 'only root and the members of group hakzerod'
}

op_bad_restart() {
	ct mkdir -p "${OP_CONF%/*}" && ct sh -c "echo 'no_such_directive 1' >$OP_CONF" || return 1
	restarts=$(ct systemctl show --value -p NRestarts hakzerod.service)
	if ct systemctl restart hakzerod.service 2>/dev/null; then
		echo "restart with a broken $OP_CONF succeeded"
		return 1
	fi
	sleep 3 # RestartSec=1s: long enough for a restart to show
	show=$(ct systemctl show -p ActiveState -p Result -p ExecMainStatus -p NRestarts hakzerod.service)
	echo "$show" | tr '\n' ' '
	echo
	echo "$show" | grep -qx 'ExecMainStatus=78' &&
		echo "$show" | grep -qx 'ActiveState=failed' &&
		echo "$show" | grep -qx "NRestarts=$restarts"
}

op_error_at_warning() {
	out=$(ct journalctl -b --no-pager -o cat -p warning -u hakzerod.service)
	echo "$out" | tail -n 5
	echo "$out" | grep -q "$OP_CONF:1: unknown directive 'no_such_directive'"
}

op_socket_survives() {
	for _ in $(seq "$OP_KNOCKS"); do
		ct hakctl status >/dev/null 2>&1 && { echo "a broken daemon answered"; return 1; }
	done
	show=$(ct systemctl show -p ActiveState -p Result hakzerod.socket)
	echo "after $OP_KNOCKS connections: $(echo "$show" | tr '\n' ' ')"
	echo "$show" | grep -qx 'ActiveState=active' && echo "$show" | grep -qx 'Result=success'
}

op_fixed() {
	ct rm -f "$OP_CONF" && ct hakctl status >/dev/null && is_active active
}

check "zero_method auto measures end to end under the unit, keeps it in $OP_STATE" op_zero_measured
check "a restart takes the kept zero_method choice" op_zero_kept
check "LimitNOFILE=$OP_NOFILE" op_nofile
check "$MEMBER (group hakzerod) reads status, stats and clients" op_member_reads
check "$MEMBER may not trim" op_member_no_trim
check "$OUTSIDER's hint is about permission" op_outsider_hint
check "a config error: exit 78, not restarted" op_bad_restart
check "journalctl -p warning shows the config error as file:line" op_error_at_warning
check "the socket survives the bad restart and $OP_KNOCKS clients" op_socket_survives
check "the config fixed, the next client starts the daemon" op_fixed
