#!/bin/sh
# The bash completions (completion/hakctl, completion/hakzerod) complete
# what the programs take: sourced in bash, asked as bash asks them.
set -u

command -v bash >/dev/null || { echo "SKIP: no bash"; exit 77; }
dir="${top_srcdir:-.}/completion"

exec bash -c '
dir=$1
fail=0
. "$dir/hakctl" && . "$dir/hakzerod" || exit 1

# expect WANTED WORDS...: completes the last word of WORDS, wants WANTED
# (space-separated, in order) exactly.
expect() {
	local want=$1 fn=$2
	shift 2
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	"$fn"
	if [ "${COMPREPLY[*]}" = "$want" ]; then
		echo "ok: $* -> $want"
	else
		echo "FAIL: $* -> \"${COMPREPLY[*]}\", wanted \"$want\""
		fail=1
	fi
}

expect "status clients stats trim" _hakctl hakctl ""
expect "status stats" _hakctl hakctl st
expect "trim" _hakctl hakctl --json tr
expect "" _hakctl hakctl status ""
expect "openmetrics" _hakctl hakctl --format o
expect "--json" _hakctl hakctl --j
expect "--check-config" _hakzerod hakzerod --che
expect "--config" _hakzerod hakzerod --conf
[ "$(complete -p hakctl)" = "complete -F _hakctl hakctl" ] || { echo "FAIL: hakctl not registered"; fail=1; }
exit $fail
' test-completion "$dir"
