#!/bin/sh
# make soak: a long run of the server under the query mix plus concurrent
# writes, on the benchmark corpus (poetry.jsonl). Bounded: SOAK_SECONDS of
# load (default 600) plus indexing (about a minute) and 10 s to stop.
#
#   SOAK_SECONDS  length of the load (default 600; CI uses less)
#   SOAK_PORT     port on 127.0.0.1 (default 18393)
#   SOAK_WINDOW   live soak documents the writer keeps (default 20000)
#
# Load: wrk -t1 -c256 --latency -s tests/bench/mix.lua over ../shared/bench/mix.txt
# (searches) and, at the same time, wrk -t1 -c8 -s tests/soak/writes.lua
# (PUT /documents/soak-N, DELETE of ids known to exist). VmRSS of the server
# is sampled every 10 s into build/soak/rss.tsv.
#
# Fails (exit 1) when: any search answer is not 2xx; any write answer is not
# 2xx (the writer deletes only ids it saw created, so no 404 is expected);
# wrk saw connect, read or write errors or timeouts; the server died; the
# server's RSS at the end is more than 1.5x its RSS at 60 s (after warm-up;
# at half the run when it is shorter than 120 s); or after SIGTERM the server
# did not exit with status 0 within 10 s.
set -eu
secs=${SOAK_SECONDS:-600}
port=${SOAK_PORT:-18393}
window=${SOAK_WINDOW:-20000}
out=build/soak
corpus=build/bench/poetry.jsonl
mix=../shared/bench/mix.txt
url="http://127.0.0.1:$port"
case $secs in ''|*[!0-9]*) echo "soak: SOAK_SECONDS must be a whole number" >&2; exit 2 ;; esac
[ "$secs" -ge 10 ] || { echo "soak: SOAK_SECONDS must be at least 10" >&2; exit 2; }

missing=""
for cmd in wrk npm python3 curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    else
        echo "soak: needs$missing (apt-get install$missing)" >&2; exit 1
    fi
fi
[ -r "$mix" ] || { echo "soak: $mix is missing" >&2; exit 1; }

# ---- corpus, binary, index ----
sh tests/bench/corpus.sh build/bench
make xun
mkdir -p "$out"
rm -rf "$out/index" "$out"/wrk-*.txt "$out/rss.tsv" "$out/server.log" "$out/metrics.txt"
echo "soak: indexing $corpus ($(wc -l < "$corpus") documents) into $out/index"
start=$(date +%s.%N)
./xun index --data "$out/index" "$corpus" 2> "$out/index.log"
end=$(date +%s.%N)
tail -n 1 "$out/index.log"
index_s=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$end")
echo "soak: index built in $index_s s, $(du -sh "$out/index" | cut -f1)"

# ---- server ----
if curl -s -o /dev/null "$url/health" 2>/dev/null; then
    echo "soak: something already answers on 127.0.0.1:$port (set SOAK_PORT)" >&2; exit 1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
nofile=$(ulimit -n)
./xun serve --data "$out/index" --listen "127.0.0.1:$port" --quiet --max-connections 4096 \
    2> "$out/server.log" &
xun_pid=$!
search_pid=""; write_pid=""

# true while PID runs (an exited child that was not yet waited for is a zombie)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
cleanup() {
    for p in $search_pid $write_pid $xun_pid; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

up=""
for i in $(seq 300); do
    if curl -sf "$url/health" >/dev/null 2>&1; then up=1; break; fi
    alive $xun_pid || break
    sleep 0.1
done
[ -n "$up" ] || { echo "soak: server did not answer /health"; cat "$out/server.log"; exit 1; }
rss_start=$(field $xun_pid VmRSS)
echo "soak: server pid $xun_pid on $url, open files limit $nofile, RSS at start $rss_start kB"

# ---- load ----
echo "soak: ${secs}s of wrk -t1 -c256 (query mix) + wrk -t1 -c8 (writes, window $window)"
printf 't_s\tvmrss_kb\trss_anon_kb\trss_file_kb\tdocuments\n' > "$out/rss.tsv"
sample() {
    docs=$(curl -s --max-time 5 "$url/stats" 2>/dev/null |
           python3 -c "import json,sys; print(json.load(sys.stdin)['documents'])" 2>/dev/null || echo -)
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(field $xun_pid VmRSS)" "$(field $xun_pid RssAnon)" \
        "$(field $xun_pid RssFile)" "$docs" >> "$out/rss.tsv"
}
sample 0
t0=$(date +%s)
wrk -t1 -c256 -d"${secs}s" --timeout 10s --latency -s tests/bench/mix.lua "$url" -- "$mix" \
    > "$out/wrk-search.txt" 2>&1 &
search_pid=$!
wrk -t1 -c8 -d"${secs}s" --timeout 10s --latency -s tests/soak/writes.lua "$url" -- "$window" \
    > "$out/wrk-writes.txt" 2>&1 &
write_pid=$!
next=10; died=""
while alive $search_pid || alive $write_pid; do
    sleep 1
    now=$(($(date +%s) - t0))
    if ! alive $xun_pid; then
        died=1; echo "soak: the server died after ${now}s"
        kill $search_pid $write_pid 2>/dev/null || true
        break
    fi
    if [ "$now" -ge "$next" ]; then
        sample "$now"
        printf 'soak: %4ss  RSS %s kB  documents %s\n' "$now" \
            "$(tail -n 1 "$out/rss.tsv" | cut -f2)" "$(tail -n 1 "$out/rss.tsv" | cut -f5)"
        next=$((next + 10))
    fi
    if [ "$now" -gt $((secs + 60)) ]; then
        echo "soak: wrk did not stop after ${now}s; killing it"
        kill $search_pid $write_pid 2>/dev/null || true
    fi
done
wait $search_pid 2>/dev/null || true
wait $write_pid 2>/dev/null || true
search_pid=""; write_pid=""

# ---- end: RSS, /stats, /metrics, SIGTERM ----
rss_end=""; stats="-"; exit_rc="-"
if [ -z "$died" ] && alive $xun_pid; then
    sleep 2   # let in-flight writes settle before the last figures
    rss_end=$(field $xun_pid VmRSS)
    sample end
    stats=$(curl -s --max-time 5 "$url/stats" || echo -)
    curl -s --max-time 5 "$url/metrics" > "$out/metrics.txt" || true
    kill -TERM $xun_pid
    for i in $(seq 100); do alive $xun_pid || break; sleep 0.1; done
    if alive $xun_pid; then
        exit_rc="still running 10 s after SIGTERM"
        kill -KILL $xun_pid 2>/dev/null || true
        wait $xun_pid 2>/dev/null || true
    else
        exit_rc=0; wait $xun_pid || exit_rc=$?
    fi
else
    died=1
    wait $xun_pid 2>/dev/null || true
fi
xun_pid=""
trap - EXIT INT TERM

python3 - "$out" "$secs" "$rss_start" "${rss_end:--}" "$exit_rc" "${died:-0}" "$stats" \
    "$index_s" <<'PY'
import re, sys

out, secs, rss_start, rss_end, exit_rc, died, stats, index_s = sys.argv[1:]
secs = int(secs)
fail = []

def wrk(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    r = {"text": text}
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    r["requests"] = int(m.group(1)) if m else None
    r["duration"] = m.group(2) if m else "?"
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["sock"] = tuple(map(int, m.groups())) if m else (0, 0, 0, 0)
    r["lat"] = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M))
    m = re.search(r"^writes: .*$", text, re.M)
    r["lua"] = m.group(0) if m else None
    return r

search = wrk(out + "/wrk-search.txt")
writes = wrk(out + "/wrk-writes.txt")

print()
print("== soak: %d s, 2 wrk processes against one server (%s)" % (secs, out))
print("  index build: %s s" % index_s)
for name, r in (("search (c256, query mix)", search), ("writes (c8, PUT/DELETE)", writes)):
    if r["requests"] is None:
        fail.append("%s: no wrk summary (see %s)" % (name, out))
        print("  %-26s no summary:\n%s" % (name, r["text"][-2000:]))
        continue
    c, rd, w, t = r["sock"]
    print("  %-26s %9d requests in %s (%.0f/s)  non-2xx %d  socket errors: connect %d read %d "
          "write %d timeout %d  p50 %s  p99 %s" %
          (name, r["requests"], r["duration"], r["rps"], r["non2xx"], c, rd, w, t,
           r["lat"].get("50", "?"), r["lat"].get("99", "?")))
    if r["non2xx"]:
        fail.append("%s: %d non-2xx answers" % (name, r["non2xx"]))
    if any(r["sock"]):
        fail.append("%s: socket errors %s" % (name, r["sock"]))
    if r["requests"] == 0:
        fail.append("%s: no requests served" % name)
if writes["lua"]:
    print("  " + writes["lua"])
    m = re.search(r"non2xx (\d+)", writes["lua"])
    if m and int(m.group(1)):
        fail.append("writes: %s non-2xx answers (script count)" % m.group(1))

rows = []
for line in open(out + "/rss.tsv").read().splitlines()[1:]:
    f = line.split("\t")
    if f[1]:
        rows.append((f[0], int(f[1]), f[2], f[3], f[4]))
timed = [(int(t), rss) for t, rss, *_ in rows if t.isdigit()]
peak = max([rss for _, rss, *_ in rows] or [0])
warm_at = 60 if secs >= 120 else secs // 2
warm = next(((t, rss) for t, rss in timed if t >= warm_at), None)
mib = lambda kb: "%.1f MiB" % (int(kb) / 1024.0)
print("  RSS: start %s, peak %s, end %s%s" % (
    mib(rss_start), mib(peak), mib(rss_end) if rss_end != "-" else "-",
    ", at %d s %s" % (warm[0], mib(warm[1])) if warm else ""))
anon = [(t, int(a)) for t, _, a, *_ in rows if a.isdigit()]
if anon:
    warm_anon = next((a for t, a in anon if t.isdigit() and int(t) >= warm_at), None)
    print("  RssAnon (heap, not the mapped index): start %s, peak %s, end %s%s" % (
        mib(anon[0][1]), mib(max(a for _, a in anon)), mib(anon[-1][1]),
        ", at %d s %s" % (warm_at, mib(warm_anon)) if warm_anon is not None else ""))
print("  RSS samples (t_s, VmRSS, RssAnon, RssFile kB, documents) in %s/rss.tsv" % out)
print("  rule: RSS at the end <= 1.5 x RSS at %d s (after warm-up)" % warm_at, end="")
if warm and rss_end != "-":
    ratio = int(rss_end) / warm[1]
    print(": %.2f x %s" % (ratio, "ok" if ratio <= 1.5 else "FAILED"))
    if ratio > 1.5:
        fail.append("RSS grew %.2fx from %d s to the end (limit 1.5x)" % (ratio, warm[0]))
else:
    print(": not measured")
    fail.append("RSS at %d s or at the end not measured" % warm_at)

print("  /stats: %s" % stats)
try:
    keep = re.compile(r"^xun_(http_requests_total|documents|segments|index_bytes|merges_total|"
                      r"refreshes_total|checkpoints_total|wal_fsyncs_total|connections_refused_total|"
                      r"connections_open|queries_total)[ {]")
    lines = [l for l in open(out + "/metrics.txt").read().splitlines() if keep.match(l)]
    print("  /metrics:")
    for l in lines:
        print("    " + l)
except OSError:
    print("  /metrics: not fetched")

if died == "1":
    fail.append("the server died during the run")
print("  SIGTERM: exit status %s" % exit_rc)
if exit_rc != "0" and died != "1":
    fail.append("after SIGTERM: %s (want exit status 0 within 10 s)" % exit_rc)

if fail:
    print("soak: FAILED")
    for f in fail:
        print("  - " + f)
    sys.exit(1)
print("soak: passed")
PY
