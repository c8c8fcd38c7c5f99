#!/bin/sh
# The commands of the README's Quick start (run as root on Debian 12):
#
#   ./quickstart.sh demo    install what is missing, build, start hakzerod on
#                           its embedded defaults, run `hakbench page` against
#                           it, stop it
#   ./quickstart.sh check   install what is missing, build, run the whole
#                           test suite (make check, the Debian packages and
#                           lintian, the systemd units and the packages in a
#                           container, a warnings-as-errors clang build,
#                           ASan/UBSan and TSan builds, the daemon under
#                           valgrind, fuzzing, distcheck)
#   ./quickstart.sh bench   install what is missing (with the programs and
#                           allocators the benchmark compares), build, run
#                           `make bench` (a daemon of its own; docs/benchmarks.md)
set -eu

cd "$(dirname "$0")"
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need.
DEB_BUILD="build-essential autoconf automake libtool pkg-config liburing-dev libsystemd-dev libcmocka-dev libjemalloc-dev"
# debhelper, dpkg-dev and lintian build and check the Debian packages (no
# fakeroot: debian/control says Rules-Requires-Root: no).
DEB_CHECK="xz-utils groff-base mandoc systemd-container debootstrap valgrind clang libclang-rt-14-dev debhelper dpkg-dev lintian python3-prometheus-client"
# Only for the benchmark (`hakbench apps` and the charts); no test needs them.
DEB_BENCH="redis-server redis-tools python3-numpy libtcmalloc-minimal4 libmimalloc2.0 gnuplot-nox linux-perf"

die() {
	echo "quickstart: $*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts a system daemon)"
}

install_packages() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "quickstart: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Configures an out-of-tree build in $1 once (extra configure arguments follow).
configure_in() {
	dir=$1
	shift
	[ -x configure ] || ./autogen.sh >/dev/null
	mkdir -p "$dir"
	(cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; })
}

# Builds out of tree in $1 (extra configure arguments follow).
build() {
	configure_in "$@" && make -s -C "$1" -j"$jobs"
}

# Starts hakzerod in the background on its embedded defaults (no config file)
# and waits until its socket answers (it measures its zeroing first: seconds
# on a loaded machine).
start_daemon() {
	build/hakzerod --foreground --config /dev/null &
	daemon_pid=$!
	trap 'kill $daemon_pid 2>/dev/null || true' EXIT INT TERM
	for _ in $(seq 300); do
		build/hakctl status >/dev/null 2>&1 && return 0
		kill -0 $daemon_pid 2>/dev/null || die "hakzerod exited at start"
		sleep 0.1
	done
	die "hakzerod did not answer on its socket within 30 s"
}

stop_daemon() {
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || die "hakzerod did not stop cleanly"
	trap - EXIT INT TERM
}

demo() {
	need_root
	install_packages $DEB_BUILD
	build build
	start_daemon
	build/hakctl status
	build/hakbench page
	stop_daemon
}

check() {
	need_root
	install_packages $DEB_BUILD $DEB_CHECK
	build build
	make -C build -j"$jobs" check || { tail -n 100 build/tests/*.log; die "make check failed"; }
	debs
	# The units under a real systemd booted in a container (skipped, saying
	# why, where systemd-nspawn cannot run), then the packages of debs()
	# installed, upgraded and purged there.
	HAK_DEBS="$top/build/deb" make -C build check-systemd || die "make check-systemd failed"
	# One minute of mixed load with client and daemon kills and restarts,
	# bounded daemon CPU and memory; it prints its summary.
	make -C build soak SOAK_SECONDS=60 || die "make soak failed"
	# The whole tree, test programs included, under clang with the
	# project's warnings (-Wall -Wextra -Wformat=2 ...) as errors.
	configure_in build-clang CC=clang CFLAGS="-O2 -Werror"
	{ make -s -C build-clang -j"$jobs" && make -s -C build-clang -j"$jobs" check TESTS=; } ||
		die "a warning under clang"
	# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
	build build-asan --enable-asan
	make -C build-asan -j"$jobs" check ||
		{ tail -n 100 build-asan/tests/*.log; die "make check under ASan/UBSan failed"; }
	# The threaded ring and client unit tests under ThreadSanitizer: only
	# those are built there.
	tsan_tests="tests/test-ring tests/test-client"
	configure_in build-tsan --enable-tsan
	{ make -s -C build-tsan -j"$jobs" $tsan_tests &&
		make -C build-tsan check-TESTS TESTS="$tsan_tests"; } ||
		{ tail -n 100 build-tsan/tests/test-*.log; die "the ring and client tests under TSan failed"; }
	# hakzerod under valgrind memcheck with real clients.
	make -C build check-valgrind || die "make check-valgrind failed"
	# Each libFuzzer harness for 20 s (make check replayed their seeds and
	# past crashes already); a crash leaves its input in build-fuzz/fuzz/crashes/.
	configure_in build-fuzz CC=clang --enable-fuzz
	make -s -C build-fuzz -j"$jobs" fuzz FUZZ_SECONDS=20 || die "make fuzz found a bug"
	make -C build -j"$jobs" distcheck >build/distcheck.log 2>&1 ||
		{ tail -n 60 build/distcheck.log; die "make distcheck failed"; }
	summary
}

# The Debian packages (debian/), built from the release tarball in
# build/deb/; lintian must report no error and no warning.  nocheck: the
# same suite ran in build/ just before.
debs() {
	rm -rf build/deb
	mkdir -p build/deb
	make -s -C build dist >/dev/null || die "make dist failed"
	tar -C build/deb -xf build/hakzerod-*.tar.xz
	(cd build/deb/hakzerod-* && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" dpkg-buildpackage -us -uc -b) \
		>build/deb/build.log 2>&1 || { tail -n 60 build/deb/build.log; die "dpkg-buildpackage failed"; }
	rm -rf build/deb/hakzerod-*/
	lintian --fail-on error,warning build/deb/*.changes || die "lintian: errors or warnings (above)"
}

bench() {
	need_root
	install_packages $DEB_BUILD $DEB_BENCH
	# Debian starts the redis-server service on install; the benchmark runs
	# its own servers on a socket of their own and needs no other.
	build build
	make -C build bench
}

# One closing line over the test logs of every build: "N passed, N failed".
summary() {
	pass=0 fail=0 skip=0
	for log in build/test-suite.log build-asan/test-suite.log build-tsan/test-suite.log; do
		[ -f "$log" ] || continue
		pass=$((pass + $(sed -n 's/^# PASS: *//p' "$log" | head -n 1)))
		fail=$((fail + $(sed -n 's/^# FAIL: *//p' "$log" | head -n 1)))
		skip=$((skip + $(sed -n 's/^# SKIP: *//p' "$log" | head -n 1)))
	done
	echo "quickstart: all checks passed"
	echo "tests: $pass passed, $fail failed, $skip skipped"
}

case "${1:-}" in
demo) demo ;;
check) check ;;
bench) bench ;;
-h | --help | "")
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	[ -n "${1:-}" ]
	;;
*) die "unknown command '$1' (demo, check or bench)" ;;
esac
