#!/bin/sh
# Scale: build time, index size and query latency as the corpus grows, on
# synthetic news (corpus/make_synthetic.py, learned from corpus/news.jsonl and
# build/bench/poetry.jsonl when present). For each N: generate N documents
# (cached in build/bench/synthetic-N.jsonl), time `xun index` into
# build/bench/scale-N, then run bench_engine (1 round) on two query mixes:
# one taken from the synthetic corpus itself (the first documents, which every
# N shares) and the poetry mix. The target: from 10^4 to 10^6 documents, p50
# grows less than 3 x.
#   SCALE_OUT            where corpora, indexes and results go (default build/bench)
#   SCALE_COUNTS         corpus sizes (default "10000 100000 1000000")
#   SCALE_SEED           generator seed (default 1)
#   SCALE_QUERIES        queries a mix (default 2000; the poetry mix is cut to it)
#   SCALE_BUILD_SECONDS  the longest one build may take (default 420): a build
#                        that would take longer at the last rate is skipped,
#                        one that runs over is stopped, and the table says so
# Needs ./xun and build/opt/bench_engine (make xun build/opt/bench_engine).
set -eu
out=${SCALE_OUT:-build/bench}
mkdir -p "$out"
counts=$(echo "${SCALE_COUNTS:-10000 100000 1000000}" | tr ' ' '\n' | grep . | sort -n | uniq)
seed=${SCALE_SEED:-1}
n_queries=${SCALE_QUERIES:-2000}
budget=${SCALE_BUILD_SECONDS:-420}
smallest=$(echo "$counts" | head -n 1)
largest=$(echo "$counts" | tail -n 1)

for f in ./xun ./build/opt/bench_engine; do
    [ -x "$f" ] || { echo "scale: $f missing (make xun build/opt/bench_engine)" >&2; exit 1; }
done
learn=corpus/news.jsonl
[ -s "$out/poetry.jsonl" ] && learn="$learn $out/poetry.jsonl"

# ---- corpora: the largest is generated, the others are its first lines ----
# (documents do not depend on --count); a stamp of the generator, seed and
# learn files says when the cache is stale
stamp="seed $seed; $(cksum corpus/make_synthetic.py $learn | tr '\n' ';')"
if [ "$(cat "$out/synthetic.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -f "$out"/synthetic-*.jsonl "$out"/synthetic-mix-*.txt "$out/synthetic.stamp"
fi
missing=""
for n in $counts; do
    [ -s "$out/synthetic-$n.jsonl" ] || missing="$missing $n"
done
if [ -n "$missing" ]; then
    if [ ! -s "$out/synthetic-$largest.jsonl" ]; then
        echo "scale: generating $largest synthetic documents (learning from $learn)"
        start=$(date +%s.%N)
        python3 corpus/make_synthetic.py --seed "$seed" --count "$largest" \
            --out "$out/synthetic-$largest.jsonl" $learn 2>&1
        end=$(date +%s.%N)
        python3 -c 'import sys; s, e, n = map(float, sys.argv[1:]); print(
            "scale: generated in %.1f s, %.0f documents a second all told" % (e - s, n / (e - s)))' \
            "$start" "$end" "$largest"
    fi
    for n in $missing; do
        [ "$n" = "$largest" ] && continue
        head -n "$n" "$out/synthetic-$largest.jsonl" > "$out/synthetic-$n.jsonl.tmp"
        mv "$out/synthetic-$n.jsonl.tmp" "$out/synthetic-$n.jsonl"
    done
    echo "$stamp" > "$out/synthetic.stamp"
fi

# ---- query mixes: both the same for every N ----
syn_mix="$out/synthetic-mix-$smallest-$n_queries.txt"
if [ ! -s "$syn_mix" ]; then
    python3 corpus/make_synthetic.py --mix-from "$out/synthetic-$smallest.jsonl" \
        --seed "$seed" --count "$n_queries" --out "$syn_mix" 2>&1
fi
mixes="synthetic:$syn_mix"
if [ -s ../shared/bench/mix.txt ]; then
    head -n "$n_queries" ../shared/bench/mix.txt > "$out/scale-poetry-mix.txt"
    mixes="$mixes poetry:$out/scale-poetry-mix.txt"
fi

# ---- per N: build, then each mix ----
results="$out/scale-results.txt"
: > "$results"
rate=""
for n in $counts; do
    data="$out/scale-$n"
    rm -rf "$data"
    bytes=$(wc -c < "$out/synthetic-$n.jsonl")
    if [ -n "$rate" ]; then
        guess=$(awk -v n="$n" -v r="$rate" 'BEGIN { printf "%.0f", n / r }')
        if [ "$guess" -gt "$budget" ]; then
            echo "skip $n $bytes $guess" >> "$results"
            echo "scale: $n documents: skipped, the build would take about $guess s at $rate documents a second (over SCALE_BUILD_SECONDS=$budget)"
            continue
        fi
    fi
    echo "scale: $n documents: xun index"
    start=$(date +%s.%N)
    rc=0
    timeout "$budget" ./xun index --data "$data" "$out/synthetic-$n.jsonl" \
        2> "$out/scale-$n-index.log" || rc=$?
    end=$(date +%s.%N)
    if [ "$rc" = 124 ]; then
        echo "over $n $bytes $budget" >> "$results"
        echo "scale: $n documents: the build did not finish in $budget s (SCALE_BUILD_SECONDS); stopped, larger N not tried"
        rm -rf "$data"
        break
    elif [ "$rc" != 0 ]; then
        echo "scale: $n documents: xun index failed (exit $rc):" >&2
        tail -n 5 "$out/scale-$n-index.log" >&2
        exit 1
    fi
    took=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
    rate=$(awk -v n="$n" -v t="$took" 'BEGIN { printf "%.0f", n / t }')
    index_bytes=$(du -sb "$data" | cut -f1)
    segments=$(ls "$data" | grep -c '\.xseg$' || true)
    echo "built $n $bytes $took $index_bytes $segments" >> "$results"
    for m in $mixes; do
        name=${m%%:*}
        file=${m#*:}
        echo "scale: $n documents: bench_engine, $name mix"
        ./build/opt/bench_engine "$data" "$file" 1 > "$out/scale-$n-$name.txt"
        plain=$(grep 'without snippets' "$out/scale-$n-$name.txt" | awk '{print $3, $4, $5, $6}')
        snip=$(grep 'with snippets' "$out/scale-$n-$name.txt" | awk '{print $3, $4, $5, $6}')
        echo "engine $n $name $plain $snip" >> "$results"
    done
done

echo
python3 - "$results" "$seed" "$n_queries" "$smallest" <<'PY'
import sys
path, seed, n_queries, smallest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [line.split() for line in open(path)]
mib = 1 << 20
print("synthetic news (seed %s): xun index, then bench_engine, 1 round, top 10;" % seed)
print("plain is without snippets (highlight=0); p50 x is the ratio to the smallest N")
print("  %9s %9s %9s %10s %10s %9s" % ("N", "build s", "docs/s", "input MiB", "index MiB", "segments"))
for r in rows:
    if r[0] == "built":
        n, size, took, ix, segs = int(r[1]), int(r[2]), float(r[3]), int(r[4]), r[5]
        print("  %9d %9.1f %9.0f %10.1f %10.1f %9s" % (n, took, n / took, size / mib, ix / mib, segs))
    elif r[0] == "skip":
        print("  %9s  skipped: the build would take about %s s at the last rate" % (r[1], r[3]))
    elif r[0] == "over":
        print("  %9s  the build did not finish in %s s: stopped" % (r[1], r[3]))
mixes = []
for r in rows:
    if r[0] == "engine" and r[2] not in mixes:
        mixes.append(r[2])
for mix in mixes:
    label = ("%s queries from the first %d documents" % (n_queries, min(int(smallest), 10000))
             if mix == "synthetic" else "the first %s queries of ../shared/bench/mix.txt" % n_queries)
    print()
    print("%s mix: %s" % (mix, label))
    print("  %9s %9s %9s %9s %9s %9s %9s %11s" % ("", "plain", "plain", "snippets", "snippets",
                                                 "plain", "snippets", ""))
    print("  %9s %9s %9s %9s %9s %9s %9s %11s" % ("N", "p50 us", "p99 us", "p50 us", "p99 us",
                                                 "p50 x", "p50 x", "snippets/s"))
    first = None
    last = None
    for r in rows:
        if r[0] != "engine" or r[2] != mix:
            continue
        n = int(r[1])
        qps_plain, p50_plain, _, p99_plain, qps_snip, p50_snip, _, p99_snip = map(float, r[3:11])
        if first is None:
            first = (n, p50_plain, p50_snip)
        last = (n, p50_plain, p50_snip)
        print("  %9d %9.1f %9.1f %9.1f %9.1f %9.2f %9.2f %11.0f" % (
            n, p50_plain, p99_plain, p50_snip, p99_snip, p50_plain / first[1],
            p50_snip / first[2], qps_snip))
    if first and last and last[0] > first[0]:
        growth = last[0] / first[0]
        worst = max(last[1] / first[1], last[2] / first[2])
        verdict = ""
        if first[0] == 10000 and last[0] == 1000000:
            verdict = " (target under 3 x: %s)" % ("met" if worst < 3 else "missed")
        print("  from %d to %d documents (x %.0f), p50 grew x %.2f plain, x %.2f with snippets%s"
              % (first[0], last[0], growth, last[1] / first[1], last[2] / first[2], verdict))
PY
