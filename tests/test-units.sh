#!/bin/sh
# The systemd units pass `systemd-analyze verify`, and the service's exposure
# as rated by `systemd-analyze security` is at most 2.5.
#
# verify wants the programs a unit runs to exist, so this checks the units
# with their paths pointing at the build tree; the units `make` built for
# installing must differ from those only in the substituted directories.
# tests/systemd/check-systemd.sh checks the installed units under a booted
# systemd.
set -u

# systemd-analyze rates exposure 0.0 (safe) to 10.0; --threshold counts tenths.
MAX_EXPOSURE_TENTHS=25

command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze not installed (apt-get install systemd)"; exit 77; }
src="${top_srcdir:-.}/systemd"
builddir=$(dirname "${HAKZEROD:?HAKZEROD not set (run through make check)}")
for prog in "$HAKZEROD" "$HAKCTL"; do
	[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
done

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

for unit in hakzerod.service hakzerod.socket; do
	built="$builddir/systemd/$unit"
	[ -f "$built" ] || { echo "FAIL: $built not built"; fail=1; continue; }
	if grep -n '@[A-Za-z_]*@' "$built"; then
		echo "FAIL: $built: placeholder left unsubstituted"
		fail=1
	fi
	sed -e "s|@sbindir@|$builddir|g" -e "s|@bindir@|$builddir|g" \
		"$src/$unit.in" >"$tmp/$unit"
done
[ "$fail" -eq 0 ] || exit 1

# Documentation= must name pages the project ships: let man(1) find only ours.
man_opt=--man=yes
if command -v man >/dev/null; then
	for page in "${top_srcdir:-.}"/man/*.[1-8]; do
		[ -e "$page" ] || continue
		section=${page##*.}
		mkdir -p "$tmp/man/man$section"
		ln -s "$(cd "$(dirname "$page")" && pwd)/$(basename "$page")" "$tmp/man/man$section/"
	done
else
	echo "note: man(1) not installed; Documentation= not checked"
	man_opt=--man=no
fi

# verify exits 0 on some warnings ("Unknown key ..., ignoring"): any output
# is a failure too.  --recursive-errors=no: judge our units, not the host's.
echo "systemd-analyze verify hakzerod.service hakzerod.socket"
out=$(cd "$tmp" && MANPATH="$tmp/man" systemd-analyze verify "$man_opt" \
	--recursive-errors=no ./hakzerod.service ./hakzerod.socket 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
	echo "$out"
	echo "FAIL: systemd-analyze verify (exit status $rc)"
	fail=1
fi

# The rating of a booted manager is checked in check-systemd.sh; the offline
# one here catches a regression in `make check` already.
out=$(cd "$tmp" && systemd-analyze security --offline=yes --no-pager \
	--threshold="$MAX_EXPOSURE_TENTHS" ./hakzerod.service 2>&1)
rc=$?
echo "$out" | grep -E '✗|Overall exposure'
if [ "$rc" -ne 0 ]; then
	echo "FAIL: systemd-analyze security: exposure above $MAX_EXPOSURE_TENTHS/10"
	fail=1
fi
exit $fail
