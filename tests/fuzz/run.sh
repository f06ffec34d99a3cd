#!/usr/bin/env bash
# make fuzz: builds every fuzz target with clang and libFuzzer under ASan and
# UBSan into build/fuzz/, then runs each, one at a time, for FUZZ_SECONDS.
#
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh [target...]
#
#   FUZZ_SECONDS   time per target (default 60)
#   FUZZ_CC        the compiler (default clang)
#   FUZZ_MERGE=1   afterwards, add to tests/fuzz/corpus/<target> the inputs
#                  of this run that reach new code (libFuzzer -merge=1, edges
#                  only, so that it stays small)
#
# Each run starts from tests/fuzz/corpus/<target> (the saved inputs) and
# build/fuzz/corpus/<target> (what earlier runs found), writes new inputs to
# the latter only, its log to build/fuzz/<target>.log, and what fails (crash,
# leak, timeout, out of memory) to build/fuzz/crashes/<target>-*. Prints
# executions and failures per target; exits non-zero when any target failed.
# A failing input becomes a saved input: copy it into tests/fuzz/corpus/<target>/
# with the fix (make test replays that folder).
set -u
cd "$(dirname "$0")/../.." || exit 2
. tests/fuzz/common.sh

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_CC="${FUZZ_CC:-clang}"
OUT=build/fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -O1 -pthread $FUZZ_WARN $SAN"
targets="${*:-$FUZZ_ALL_TARGETS}"
case "$FUZZ_SECONDS" in
'' | *[!0-9]* | 0) # libFuzzer takes 0 as no limit
    echo "fuzz: FUZZ_SECONDS must be a whole number of seconds from 1, got \"$FUZZ_SECONDS\"" >&2
    exit 2
    ;;
esac

if ! command -v "$FUZZ_CC" >/dev/null; then
    echo "fuzz: $FUZZ_CC not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi

# The library gets coverage instrumentation but no main (fuzzer-no-link).
echo "fuzz: building with $FUZZ_CC"
objs="$(fuzz_compile_lib "$FUZZ_CC" "$CFLAGS -fsanitize=fuzzer-no-link" "$OUT/obj")" || exit 2
for t in $targets; do
    if [ ! -f "tests/fuzz/$t.c" ]; then
        echo "fuzz: no target tests/fuzz/$t.c" >&2
        exit 2
    fi
    echo "  LD $OUT/$t"
    # shellcheck disable=SC2086
    $FUZZ_CC $CFLAGS -fsanitize=fuzzer "tests/fuzz/$t.c" $objs -o "$OUT/$t" $FUZZ_LIBS || exit 2
done

mkdir -p "$OUT/crashes"
# Artifacts of target $1 so far (libFuzzer names them <prefix>crash-<sha1>, leak-, timeout-, oom-).
count_artifacts() {
    local n=0 f
    for f in "$OUT/crashes/$1"-*; do
        [ -e "$f" ] && n=$((n + 1))
    done
    echo "$n"
}
failed=0
for t in $targets; do
    mkdir -p "$OUT/corpus/$t" "tests/fuzz/corpus/$t"
    before="$(count_artifacts "$t")"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
    echo "== $t: ${FUZZ_SECONDS}s"
    "$OUT/$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=25 \
        -rss_limit_mb=2048 -artifact_prefix="$OUT/crashes/$t-" "${dict[@]}" \
        "$OUT/corpus/$t" "tests/fuzz/corpus/$t" >"$OUT/$t.log" 2>&1
    rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -n 1)"
    after="$(count_artifacts "$t")"
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without an artifact (e.g. could not start)
    fi
    echo "$t: ${execs:-0} executions, $crashes crashes"
    if [ "$crashes" -ne 0 ]; then
        failed=1
        # shellcheck disable=SC2012
        ls -t "$OUT/crashes/$t"-* 2>/dev/null | head -n "$crashes" | sed 's/^/  /'
        grep -m 1 -A 12 -E '^==[0-9]+==ERROR|runtime error|check failed|deadly signal' \
            "$OUT/$t.log" | sed 's/^/  /'
        echo "  (log: $OUT/$t.log)"
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        # edges only (no hit counts), so that the saved corpus stays small
        "$OUT/$t" -merge=1 -use_counters=0 "tests/fuzz/corpus/$t" "$OUT/corpus/$t" \
            >"$OUT/$t.merge.log" 2>&1
        echo "  saved corpus: $(find "tests/fuzz/corpus/$t" -type f | wc -l) inputs"
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: some targets failed; inputs in $OUT/crashes/"
    exit 1
fi
echo "fuzz: no crashes"
