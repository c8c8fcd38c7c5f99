#!/bin/sh
# Fails unless debian/changelog's newest version is the one in configure.ac's
# AC_INIT: the packages carry the version the tree says it is.  A version
# may only add a suffix after '+' or '~' (a rebuild, a prerelease).
set -eu
cd "$(dirname "$0")/.."
tree=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' configure.ac)
deb=$(dpkg-parsechangelog -S Version)
case "$deb" in
"$tree" | "$tree"+* | "$tree"~*) exit 0 ;;
esac
echo "debian/changelog says $deb, configure.ac says ${tree:-nothing}: add a changelog entry (dch -v $tree)" >&2
exit 1
