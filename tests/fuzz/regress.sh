#!/usr/bin/env bash
# make test: every fuzz target over its saved inputs (tests/fuzz/corpus/<target>),
# built with gcc and tests/fuzz/regress.c under ASan and UBSan like the
# Makefile's test build, without libFuzzer. Ends with
# "fuzz regress: N passed, M failed" (targets); exits non-zero on a failure.
#
#   bash tests/fuzz/regress.sh [target...]      (CC picks the compiler, default gcc)
set -u
cd "$(dirname "$0")/../.." || exit 2
. tests/fuzz/common.sh

REGRESS_CC="${REGRESS_CC:-${CC:-gcc}}"
[ "$REGRESS_CC" = cc ] && REGRESS_CC=gcc
OUT=build/fuzz/regress
SAN="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -pthread $FUZZ_WARN $SAN"
targets="${*:-$FUZZ_ALL_TARGETS}"

objs="$(fuzz_compile_lib "$REGRESS_CC" "$CFLAGS" "$OUT/obj")" || exit 2
passed=0
failed=0
for t in $targets; do
    bin="$OUT/regress_$t"
    # shellcheck disable=SC2086
    if ! $REGRESS_CC $CFLAGS tests/fuzz/regress.c "tests/fuzz/$t.c" $objs -o "$bin" $FUZZ_LIBS; then
        echo "== $t: does not build"
        failed=$((failed + 1))
        continue
    fi
    echo "== $t"
    if "$bin" "tests/fuzz/corpus/$t"; then
        passed=$((passed + 1))
    else
        echo "$t: FAILED"
        failed=$((failed + 1))
    fi
done
echo "fuzz regress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
