#!/bin/sh
# make bench: fetches and builds the benchmark corpus (poetry.jsonl, from the
# npm package chinese-poetry 2.0.1), then prints each figure beside a
# baseline measured in the same run. Bounded: a few minutes on 2 cores.
#   BENCH_SECONDS  length of each wrk run (default 20)
set -eu
out=build/bench
mkdir -p "$out"
secs=${BENCH_SECONDS:-20}
cores=$(nproc)

# wrk, npm and python3, each from Debian when missing (npm may come with a
# nodejs package from elsewhere: only missing commands are installed)
missing=""
for cmd in wrk npm python3 curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    else
        echo "bench: needs$missing (apt-get install$missing)" >&2; exit 1
    fi
fi

# ---- corpus ----
sh tests/bench/corpus.sh "$out"
corpus_bytes=$(wc -c < "$out/poetry.jsonl")
corpus_docs=$(wc -l < "$out/poetry.jsonl")

# ---- build ----
echo
echo "== build: xun index on poetry.jsonl ($corpus_docs documents, $((corpus_bytes / 1048576)) MiB)"
base_start=$(date +%s.%N)
./build/opt/bench_parse "$out/poetry.jsonl"
base_end=$(date +%s.%N)
# 1 thread, then all cores (the index the rest of the bench uses)
timed_index() {
    rm -rf "$out/poetry-index"
    t0=$(date +%s.%N)
    ./xun index --threads "$1" --data "$out/poetry-index" "$out/poetry.jsonl" 2>/dev/null
    t1=$(date +%s.%N)
    echo "$t0 $t1"
}
one=$(timed_index 1)
all=$(timed_index "$cores")
python3 - "$base_start" "$base_end" $one $all "$corpus_docs" "$corpus_bytes" "$cores" <<'PY'
import sys
bs, be, s1, e1, s2, e2, docs, size, cores = map(float, sys.argv[1:])
base = be - bs
print("  %-40s %8.2f s" % ("baseline: read + parse the JSON lines", base))
for name, took in (("xun index, 1 thread", e1 - s1), ("xun index, %d threads" % cores, e2 - s2)):
    print("  %-40s %8.2f s  %8.0f docs/s  %6.1f MB/s  x base %.1f" %
          (name, took, docs / took, size / 1e6 / took, took / base))
PY
python3 tests/bench/index_size.py "$out/poetry-index" "$corpus_bytes"

# ---- engine ----
echo
echo "== engine: query mix in process"
./build/opt/bench_engine "$out/poetry-index" ../shared/bench/mix.txt 3

# ---- relevance ----
echo
echo "== relevance: known-item queries (../shared/bench/knownitem.tsv)"
./build/opt/bench_relevance "$out/poetry-index" ../shared/bench/knownitem.tsv

# ---- HTTP ----
echo
echo "== HTTP: wrk -t1 -c16 -d${secs}s --latency, query mix"
port=18391; base_port=18392
./xun serve --data "$out/poetry-index" --listen 127.0.0.1:$port --quiet 2>/dev/null &
xun_pid=$!
./build/opt/baseline_server $base_port &
base_pid=$!
trap 'kill $xun_pid $base_pid 2>/dev/null || true' EXIT INT TERM
for i in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1
done
wrk_run() { wrk -t1 -c16 -d"${secs}s" --latency "$@" 2>&1; }
# the mix twice: with the response cache (the default; wrk repeats the mix, so
# most answers come from it) and with --cache-mb 0 (every query searched)
mix_runs() {
    wrk_run -s tests/bench/mix.lua "http://127.0.0.1:$port" -- ../shared/bench/mix.txt \
        > "$out/wrk-snippets$1.txt"
    wrk_run -s tests/bench/mix.lua "http://127.0.0.1:$port" -- ../shared/bench/mix.txt \
        "&highlight=0" > "$out/wrk-plain$1.txt"
}
wrk_run "http://127.0.0.1:$base_port/" > "$out/wrk-baseline.txt"
mix_runs ""
kill $xun_pid 2>/dev/null || true
wait $xun_pid 2>/dev/null || true
./xun serve --data "$out/poetry-index" --listen 127.0.0.1:$port --quiet --cache-mb 0 2>/dev/null &
xun_pid=$!
for i in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1
done
mix_runs "-nocache"
python3 tests/bench/wrk_table.py "$out/wrk-baseline.txt" "$out/wrk-snippets.txt" "$out/wrk-plain.txt" \
    "$out/wrk-snippets-nocache.txt" "$out/wrk-plain-nocache.txt"
kill $xun_pid $base_pid 2>/dev/null || true
wait 2>/dev/null || true
trap - EXIT INT TERM

# ---- writes ----
echo
echo "== writes"
./build/opt/bench_writes 3

# ---- scale ----
echo
echo "== scale"
sh tests/bench/scale.sh
