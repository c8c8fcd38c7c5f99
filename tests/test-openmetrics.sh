#!/bin/sh
# hakctl stats --format openmetrics, read by a real parser: the one of the
# Prometheus Python client (Debian: python3-prometheus-client).  Every
# family has HELP and TYPE, counters end in _total, and the numbers are
# the daemon's own (stats --json).
set -u

for prog in "${HAKZEROD:?HAKZEROD not set (run through make check)}" "${HAKCTL:?}"; do
	[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
done
START_TENTHS=300 # it measures its zeroing before it listens: seconds under load

python=""
for py in /usr/bin/python3 python3; do
	if "$py" -c 'import prometheus_client.parser' 2>/dev/null; then
		python=$py
		break
	fi
done
[ -n "$python" ] ||
	{ echo "SKIP: no Prometheus parser (apt-get install python3-prometheus-client)"; exit 77; }

tmp=$(mktemp -d) || exit 1
daemon_pid=""
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

printf 'log_level warning\npool_size 4M\n' >"$tmp/c.conf"
"$HAKZEROD" --config "$tmp/c.conf" --socket "$tmp/s.sock" 2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq "$START_TENTHS"); do
	"$HAKCTL" --socket "$tmp/s.sock" status >/dev/null 2>&1 && break
	sleep 0.1
done
"$HAKCTL" --socket "$tmp/s.sock" --format openmetrics stats >"$tmp/metrics" ||
	{ cat "$tmp/daemon.log"; echo "FAIL: hakctl --format openmetrics stats"; exit 1; }
"$HAKCTL" --socket "$tmp/s.sock" --json stats >"$tmp/stats.json" || exit 1

"$python" - "$tmp/metrics" "$tmp/stats.json" <<'PY'
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
stats = json.load(open(sys.argv[2]))
families = list(text_string_to_metric_families(text))
fail = []
samples = {}
for f in families:
    if not f.name.startswith("hakzerod_"):
        fail.append("%s: no hakzerod_ prefix" % f.name)
    if f.type not in ("counter", "gauge"):
        fail.append("%s: type %s (no TYPE line?)" % (f.name, f.type))
    if not f.documentation:
        fail.append("%s: no HELP" % f.name)
    for s in f.samples:
        samples[s.name] = s.value
        if f.type == "counter" and not s.name.endswith("_total"):
            fail.append("%s: a counter not ending in _total" % s.name)
# Units in the names, and the daemon's numbers (connections grows with
# each hakctl request: the later stats --json saw more).
if not 1 <= samples.get("hakzerod_connections_total", 0) <= stats["connections"]:
    fail.append("hakzerod_connections_total = %s, stats later says %s"
                % (samples.get("hakzerod_connections_total"), stats["connections"]))
for name, key in (("hakzerod_trimmed_bytes_total", "trimmed_bytes"),
                  ("hakzerod_populated_bytes_total", "populated_bytes")):
    if samples.get(name) != stats[key]:
        fail.append("%s = %s, stats says %s" % (name, samples.get(name), stats[key]))
if abs(samples.get("hakzerod_zero_seconds_total", -1) - stats["zero_ns"] / 1e9) > 1e-6:
    fail.append("hakzerod_zero_seconds_total is not zero_ns in seconds")
for gauge in ("hakzerod_pool_bytes", "hakzerod_clients", "hakzerod_uptime_seconds"):
    if gauge not in samples:
        fail.append("no " + gauge)
print("%d families, %d samples" % (len(families), len(samples)))
for f in fail:
    print("FAIL: " + f)
sys.exit(1 if fail else 0)
PY
