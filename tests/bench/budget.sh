#!/bin/sh
# The query budget, measured on the poetry index (not a test: it prints figures).
#
#   sh tests/bench/budget.sh [XUN] [TIMEOUT_S...]
#
# XUN (default ./xun) serves build/bench/poetry-index (tests/bench/run.sh
# builds it) with --cache-mb 0, once per --query-timeout given (default: 1 and
# 0.1; "none" starts it without the flag, for a binary older than it). For
# each: the expensive query, the 64 commonest characters of the corpus joined
# by OR, alone (wrk -c1), then a cheap query's latency (wrk -c1 --latency, a
# new connection per request, as separate readers come) while BUDGET_LOAD
# (default 4) clients loop the expensive one, also a connection per request
# (kept-alive connections would all be accepted by one worker thread).
# Needs wrk and curl; run it on an otherwise idle machine.
set -eu
xun=${1:-./xun}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 1 0.1
out=build/bench
secs=${BUDGET_SECS:-15}
port=18395
cheap=${BUDGET_CHEAP:-黃鶴樓}
load_clients=${BUDGET_LOAD:-4}

[ -d "$out/poetry-index" ] || { echo "budget: no $out/poetry-index (make bench builds it)" >&2; exit 1; }
python3 - "$out/poetry.jsonl" > "$out/budget-q64.txt" <<'PY'
import collections, json, sys
count = collections.Counter()
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        d = json.loads(line)
        count.update(c for c in d.get("title", "") + d.get("body", "") if "\u4e00" <= c <= "\u9fff")
print(" OR ".join(c for c, _ in count.most_common(64)), end="")
PY
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
expensive="http://127.0.0.1:$port/search?q=$(enc "$(cat "$out/budget-q64.txt")")"
cheap_url="http://127.0.0.1:$port/search?q=$(enc "$cheap")"

for t in "$@"; do
    flag="--query-timeout $t"
    [ "$t" = none ] && flag=""
    # shellcheck disable=SC2086
    "$xun" serve --data "$out/poetry-index" --listen 127.0.0.1:$port --quiet --cache-mb 0 $flag \
        2>/dev/null &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT INT TERM
    for i in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1
    done
    echo "== $xun, --query-timeout $t"
    curl -s "$expensive" | python3 -c 'import json, sys; b = json.load(sys.stdin); print("  expensive query: total %s (%s), timed_out %s, took_ms %.1f" % (b["total"], b["total_relation"], b.get("timed_out"), b["took_ms"]))'
    wrk -t1 -c1 -d"${secs}s" --latency "$expensive" | grep -E "Requests/sec|^ +50%|^ +99%" |
        sed 's/^/  expensive alone: /'
    wrk -t1 -c"$load_clients" -d"$((secs + 4))s" -H "Connection: close" "$expensive" > "$out/budget-load.txt" 2>&1 &
    load=$!
    sleep 2
    wrk -t1 -c1 -d"${secs}s" --latency -H "Connection: close" "$cheap_url" |
        grep -E "Requests/sec|^ +50%|^ +90%|^ +99%" |
        sed "s/^/  cheap, $load_clients clients looping the expensive one: /"
    wait $load
    grep -E "Requests/sec" "$out/budget-load.txt" |
        sed "s/^/  the $load_clients expensive clients: /"
    kill $pid
    wait $pid 2>/dev/null || true
    trap - EXIT INT TERM
done
