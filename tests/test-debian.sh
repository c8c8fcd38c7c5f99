#!/bin/sh
# The Debian packaging stays in step with the tree without building it:
# debian/changelog carries configure.ac's version, and the symbols files
# that debian/rules generates from the version scripts list exactly what
# the built libraries export (the version nodes included).
# Exit 0 pass, 1 fail, 77 skip (no dpkg-parsechangelog or nm).
top=${top_srcdir:-..}
for tool in dpkg-parsechangelog nm; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (apt-get install dpkg-dev binutils)"; exit 77; }
done
fail=0

"$top/debian/version-check.sh" && echo "ok    debian/changelog: $(cd "$top" && dpkg-parsechangelog -S Version)" || fail=1

# exports SO: NAME@VERSION of every symbol SO defines; a version node
# (nm: "A NAME") as NAME@NAME and an unversioned symbol as NAME@Base, as
# in a symbols file.
exports() {
	nm -D --defined-only --with-symbol-versions "$1" |
		awk '{ s = $3; if (s !~ /@/) s = s "@" ($2 == "A" ? s : "Base"); sub(/@@/, "@", s); print s }' |
		sort
}

# symbols SCRIPT: the names debian/symbols.sh writes for that version script.
symbols() {
	"$top/debian/symbols.sh" "$1" soname pkg dev | sed -n 's/^ \([^ ]*\) .*/\1/p' | sort
}

for lib in libclient/libhakclient adapters/jemalloc/libhakjemalloc; do
	so=.libs/${lib##*/}.so
	[ -f "$so" ] || { echo "FAIL  $so not built"; fail=1; continue; }
	want=$(symbols "$top/$lib.sym") || { fail=1; continue; }
	got=$(exports "$so")
	if [ "$want" = "$got" ]; then
		echo "ok    $so: $(echo "$got" | wc -l) symbols, as the symbols file says"
	else
		echo "FAIL  $so exports differ from the symbols file (< file, > library):"
		echo "$want" >test-debian.want.$$
		echo "$got" | diff test-debian.want.$$ -
		rm -f test-debian.want.$$
		fail=1
	fi
done
exit $fail
