#!/bin/sh
# symbols.sh VERSION-SCRIPT SONAME PACKAGE DEV-PACKAGE
#
# Writes the dpkg symbols file of a library from its linker version script:
# every global symbol of every section, and the section's own version node,
# at the package version that first shipped that section
# (debian/symbols.versions).  A section without a version there fails, so a
# new section in the script cannot be released without a line here.
set -eu

script=$1
soname=$2
package=$3
dev=$4
versions=$(dirname "$0")/symbols.versions

echo "$soname $package #MINVER#"
echo "* Build-Depends-Package: $dev"
# Sections are "NAME {", globals are "symbol;" lines after "global:".
# A comment line "/* unversioned: SYMBOL */" names a symbol exported with
# no version (an interposer), listed as SYMBOL@Base at the version of "Base".
# (No pipefail in sh: awk's verdict is kept before sorting.)
lines=$(sed -e 's|/\*[ \t]*unversioned:[ \t]*\([A-Za-z_][A-Za-z0-9_]*\).*\*/|@base \1|' \
	-e 's|/\*.*\*/||' "$script" | awk -v versions="$versions" '
	BEGIN {
		while ((getline line < versions) > 0) {
			if (line ~ /^[ \t]*(#|$)/) continue
			split(line, f, /[ \t]+/)
			since[f[1]] = f[2]
		}
	}
	/^@base / {
		if (!("Base" in since)) {
			print "symbols.sh: no version for Base in " versions > "/dev/stderr"
			bad = 1; exit 1
		}
		print " " $2 "@Base " since["Base"]
		next
	}
	/^[ \t]*[A-Za-z0-9_]+[ \t]*\{/ {
		node = $1; sub(/\{.*/, "", node)
		if (!(node in since)) {
			print "symbols.sh: section " node " has no version in " versions > "/dev/stderr"
			bad = 1; exit 1
		}
		print " " node "@" node " " since[node]
		global = 0; next
	}
	/^[ \t]*global:/ { global = 1; next }
	/^[ \t]*local:/ { global = 0; next }
	global && /^[ \t]*[A-Za-z_][A-Za-z0-9_]*;/ {
		sym = $1; sub(/;.*/, "", sym)
		print " " sym "@" node " " since[node]
	}
	END { if (bad) exit 1 }') || exit 1
echo "$lines" | sort
