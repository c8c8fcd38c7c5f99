# shellcheck shell=sh
# The Debian packages of this tree under the container's systemd; sourced
# by check-systemd.sh after its own checks, in the same container (its
# functions ct, check and say, its variables tmp, MEMBER, SOCK, ...).
#
#   the files of `make install` are taken out and user hakzerod deleted,
#   then `apt-get install ./*.deb`; `systemctl start hakzerod` needs no
#   other step; a member of group hakzerod builds a small client with
#   `pkg-config --cflags --libs libhakclient` and gets pages from the
#   daemon; an upgrade to the same packages with a higher version restarts
#   the daemon while a client holds pages, which it keeps, and the client
#   reconnects; `apt-get purge` leaves nothing of ours but user and group
#   hakzerod (Debian keeps system users).
#
# The packages come from $HAK_DEBS (default: $abs_top_builddir/deb, where
# `./quickstart.sh check` builds them).  None there: the checks are
# skipped, saying so, unless HAK_DEBS was given.
# shellcheck disable=SC2317 # the check functions are called through check()
# shellcheck disable=SC2154 # tmp, ct_pid, ...: set by check-systemd.sh
# shellcheck disable=SC2016 # $(...) and ${Version} expand inside the container

# `hakctl status` by a member of group hakzerod: 1 counts it as a check
# (the socket's group may read status, stats and clients); 0 runs it and
# shows the answer only.
PKG_MEMBER_STATUS=1

PKG_DEBS=${HAK_DEBS:-$builddir/deb}
PKG_DIR=/var/tmp/pkgtest       # in the container: debs, sources, programs
PKG_UPGRADE_PAGES=256          # pages pkg-upgrade holds through the upgrade
PKG_UPGRADE_TIMEOUT=120        # seconds for the whole upgrade check
PKG_APT_TIMEOUT=120            # seconds for one apt-get run inside
PKG_BUMP=+pkgtest1             # added to the version of the upgrade packages
# Paths of ours the purge check looks for.
PKG_OURS='hakzerod|hakclient|hakjemalloc|hakctl|hakbench'

# ct with PKG_APT_TIMEOUT instead of CMD_TIMEOUT.
ct_long() {
	saved=$CMD_TIMEOUT
	CMD_TIMEOUT=$PKG_APT_TIMEOUT
	ct "$@"
	rc=$?
	CMD_TIMEOUT=$saved
	return $rc
}

pkg_names() {
	for d in "$PKG_DEBS"/*.deb; do
		dpkg-deb -f "$d" Package
	done
}

# Every path in the container's tree (not /proc, /sys, /dev, /run: the
# container's own mounts) that looks like ours, minus our test files.
pkg_ours() {
	(cd "$tmp/root" && find . -xdev -print) | sed 's|^\.||' |
		grep -E "$PKG_OURS" | grep -vE "^($PKG_DIR|${CLIENT%/*}|/etc/sysusers.d/hakzerod-test.conf|/$STAMP\$)" | sort
}

# Takes out what `make install` put in the container and the user it made,
# so that only the packages provide them.
pkg_unstage() {
	ct systemctl disable hakzerod.service hakzerod.socket >/dev/null 2>&1
	(cd "$tmp/stage" && find . ! -type d) | sed 's|^\.||' | while read -r f; do
		rm -f "$tmp/root$f"
	done
	(cd "$tmp/stage" && find . -depth -type d) | sed 's|^\.||' | while read -r d; do
		[ -n "$d" ] && rmdir "$tmp/root$d" 2>/dev/null
	done
	# The daemon's state (StateDirectory=, its cached zero method) is no
	# file of make install's, but it would outlive the user deleted here.
	rm -rf "$tmp/root/var/lib/hakzerod"
	ct userdel hakzerod && { ct groupdel hakzerod 2>/dev/null; true; } &&
		ct systemctl daemon-reload && ct ldconfig || return 1
	left=$(pkg_ours)
	echo "left of make install: ${left:-nothing}"
	[ -z "$left" ] && ! ct getent group hakzerod
}

# apt-get install with absolute paths: given ./*.deb after a cd, apt 2.6
# stopped here with "Internal Error, Pathname to install is not absolute".
pkg_install() {
	ct mkdir -p "$PKG_DIR/debs" "$PKG_DIR/upgrade" || return 1
	cp "$PKG_DEBS"/*.deb "$tmp/root$PKG_DIR/debs/" || return 1
	ct_long sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PKG_DIR/debs/*.deb" \
		>"$tmp/apt-install.log" 2>&1 || { tail -n 30 "$tmp/apt-install.log"; return 1; }
	# shellcheck disable=SC2046 # a list of names
	ct dpkg-query -W $(pkg_names)
}

pkg_socket_enabled() {
	state=$(ct systemctl is-enabled hakzerod.socket)
	active=$(ct systemctl is-active hakzerod.socket)
	echo "hakzerod.socket: $state, $active"
	[ "$state" = enabled ] && [ "$active" = active ]
}

# The member's group came back with the new group hakzerod (the test's
# sysusers.d file says `m $MEMBER hakzerod`).
pkg_member() {
	ct systemd-sysusers >/dev/null || return 1
	ct id "$MEMBER"
	ct id -nG "$MEMBER" | grep -qw hakzerod
}

# Runs a shell command as the member, in $PKG_DIR/work.
as_member() {
	ct setpriv --reuid="$MEMBER" --regid="$MEMBER" --init-groups \
		sh -c "cd $PKG_DIR/work && $1"
}

pkg_build_client() {
	ct install -d -o "$MEMBER" "$PKG_DIR/work" || return 1
	cp "$srcdir_systemd/pkg-client.c" "$srcdir_systemd/pkg-upgrade.c" "$tmp/root$PKG_DIR/work/" ||
		return 1
	as_member 'echo "pkg-config: $(pkg-config --cflags --libs libhakclient)" &&
		cc -Wall -Werror -o pkg-client pkg-client.c $(pkg-config --cflags --libs libhakclient) &&
		cc -Wall -Werror -o pkg-upgrade pkg-upgrade.c $(pkg-config --cflags --libs libhakclient)'
}

pkg_member_status() {
	out=$(as_member 'hakctl status' 2>&1)
	rc=$?
	echo "$out"
	return $rc
}

# The same packages with version V$PKG_BUMP (and their exact dependencies
# on each other): what a rebuild with a new changelog entry gives dpkg.
pkg_bump() {
	mkdir -p "$tmp/bump" || return 1
	for d in "$PKG_DEBS"/*.deb; do
		x="$tmp/bump/$(basename "$d" .deb)"
		dpkg-deb -R "$d" "$x" || return 1
		v=$(dpkg-deb -f "$d" Version)
		sed -i -e "s/^Version: .*/Version: $v$PKG_BUMP/" -e "s/(= $v)/(= $v$PKG_BUMP)/g" "$x/DEBIAN/control"
		dpkg-deb -b "$x" "$tmp/root$PKG_DIR/upgrade/" >/dev/null || return 1
	done
	ls "$tmp/root$PKG_DIR/upgrade"
}

# pkg-upgrade holds pages, the packages are upgraded (the postinst
# restarts the running daemon), pkg-upgrade checks its pages and new ones.
pkg_upgrade() {
	pkg_bump >/dev/null || return 1
	mkfifo "$tmp/upgrade.in" || return 1
	timeout "$PKG_UPGRADE_TIMEOUT" nsenter -t "$ct_pid" -a env -i PATH="$CT_PATH" \
		setpriv --reuid="$MEMBER" --regid="$MEMBER" --init-groups \
		"$PKG_DIR/work/pkg-upgrade" "$PKG_UPGRADE_PAGES" <"$tmp/upgrade.in" >"$tmp/upgrade.out" 2>&1 &
	up=$!
	exec 8>"$tmp/upgrade.in"
	for _ in $(seq $((START_TIMEOUT * 10))); do
		grep -q '^held' "$tmp/upgrade.out" && break
		kill -0 $up 2>/dev/null || break
		sleep 0.1
	done
	before=$(main_pid)
	echo go >&8
	exec 8>&-
	ct_long sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PKG_DIR/upgrade/*.deb" \
		>"$tmp/apt-upgrade.log" 2>&1 || { tail -n 30 "$tmp/apt-upgrade.log"; kill $up; return 1; }
	wait $up
	rc=$?
	after=$(main_pid)
	echo "hakzerod $(ct dpkg-query -W -f '${Version}' hakzerod); main pid $before before, $after after"
	cat "$tmp/upgrade.out"
	[ $rc -eq 0 ] && [ "$before" != "$after" ]
}

pkg_purge() {
	ct rm -rf "$PKG_DIR" || return 1
	# shellcheck disable=SC2046 # a list of names
	ct_long env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $(pkg_names) >"$tmp/apt-purge.log" 2>&1 ||
		{ tail -n 30 "$tmp/apt-purge.log"; return 1; }
	left=$(pkg_ours)
	units=$(ct systemctl list-unit-files --no-legend 'hakzerod*')
	procs=$(ct pgrep -l hakzerod)
	echo "files left: ${left:-none}; units left: ${units:-none}; processes: ${procs:-none}"
	# /run/hakzerod itself may stay until the next boot (a tmpfs): systemd
	# removes the socket (RemoveOnStop=), not the directory it made.
	ct test -e "$SOCK" && { echo "$SOCK is left"; return 1; }
	echo "kept (Debian policy: system users stay): $(ct getent passwd hakzerod)"
	[ -z "$left" ] && [ -z "$units" ] && [ -z "$procs" ]
}

srcdir_systemd=$(cd "$(dirname "$0")" && pwd)
if ! ls "$PKG_DEBS"/*.deb >/dev/null 2>&1; then
	if [ -n "${HAK_DEBS:-}" ]; then
		check "packages: .deb files in $PKG_DEBS" false
	else
		say "packages: no .deb in $PKG_DEBS (./quickstart.sh check builds them); package checks skipped"
	fi
else
	check "packages: the files of make install and user hakzerod taken out" pkg_unstage &&
		check "packages: apt-get install ./*.deb" pkg_install &&
		check "packages: user hakzerod created (dh_installsysusers)" ct getent passwd hakzerod &&
		check "packages: hakzerod.socket enabled and listening" pkg_socket_enabled &&
		check "packages: systemctl start hakzerod" ct systemctl start hakzerod &&
		check "packages: hakzerod.service active" is_active active &&
		check "packages: $MEMBER is in group hakzerod" pkg_member &&
		check "packages: $MEMBER builds clients with pkg-config libhakclient" pkg_build_client &&
		check "packages: $MEMBER's client gets pages from the daemon" as_member ./pkg-client ||
		pkg_failed=1
	if [ -n "${pkg_failed:-}" ]; then
		say "packages: the upgrade and purge checks need the steps above"
	elif [ "$PKG_MEMBER_STATUS" = 1 ]; then
		check "packages: hakctl status as $MEMBER" pkg_member_status
	else
		say "info  hakctl status as $MEMBER (not counted until the group may read status):"
		pkg_member_status 2>&1 | sed 's/^/      | /'
	fi
	if [ -z "${pkg_failed:-}" ]; then
		check "packages: upgrade while $MEMBER holds pages: kept, reconnected, none twice" pkg_upgrade
		check "packages: apt-get purge leaves only user and group hakzerod" pkg_purge
	fi
fi
