# shellcheck shell=bash disable=SC2034
# Shared by tests/fuzz/run.sh and tests/fuzz/regress.sh (sourced, from the
# repository root): which sources a fuzz target links, and an incremental
# compile of them into one folder per compiler and flags.

# The library, as the Makefile's LIB_SRC, without the HTTP side of server/
# (a fuzz target needs urlquery.c, docjson.c and reqparse.c only; so no
# generated page, but the generated folding table, which the Makefile makes first).
FUZZ_LIB_SRC="$(ls index/*.c index/*/*.c query/*.c | grep -v index/text/variants_gen.c) server/urlquery.c \
server/docjson.c server/reqparse.c build/gen/variants_table.c"
FUZZ_LIBS="-levent -levent_pthreads -lhttp_parser -ljansson -lutf8proc -lzstd -lm -pthread"
# The Makefile's warnings; -Werror with WERROR=1, as there.
FUZZ_WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
-Wundef -Wpointer-arith${WERROR:+ -Werror}"
FUZZ_ALL_TARGETS="$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')"

# The newest header: an object older than it is rebuilt (the Makefile's rule too).
fuzz_newest_header() {
    ls -t index/*.h index/*/*.h query/*.h server/*.h tests/fuzz/*.h | head -n 1
}

# fuzz_compile_lib CC "FLAGS" OBJDIR: compiles FUZZ_LIB_SRC into OBJDIR, two at a
# time, skipping objects newer than their source and every header; a change of
# compiler or flags starts OBJDIR afresh. Prints the object list on stdout.
fuzz_compile_lib() {
    local cc="$1" flags="$2" objdir="$3" header stamp src obj
    header="$(fuzz_newest_header)"
    stamp="$cc $flags"
    if [ ! -f "$objdir/FLAGS" ] || [ "$(cat "$objdir/FLAGS")" != "$stamp" ]; then
        rm -rf "$objdir"
        mkdir -p "$objdir"
        printf '%s' "$stamp" >"$objdir/FLAGS"
    fi
    for src in $FUZZ_LIB_SRC; do
        obj="$objdir/${src%.c}.o"
        if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$header" -nt "$obj" ]; then
            mkdir -p "$(dirname "$obj")"
            rm -f "$obj" # a failed compile must not leave the old object behind
            while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
            echo "  CC $src" >&2
            # shellcheck disable=SC2086
            $cc $flags -c "$src" -o "$obj" >&2 &
        fi
    done
    wait
    for src in $FUZZ_LIB_SRC; do
        obj="$objdir/${src%.c}.o"
        if [ ! -e "$obj" ]; then
            echo "fuzz: $src did not compile" >&2
            return 1
        fi
        printf '%s ' "$obj"
    done
}
