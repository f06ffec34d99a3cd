#!/bin/sh
# Golden tests of `xun analyze`: for each tests/golden/analyze/NAME.in, the
# command's output (stdout, then stderr, then its exit status) must equal
# NAME.out byte for byte. XUN_BIN picks the binary (make test uses the
# sanitizer build). UPDATE=1 rewrites the .out files after a deliberate change.
set -u
bin=${XUN_BIN:-./xun}
dir=$(dirname "$0")/golden/analyze
passed=0 failed=0
for input in "$dir"/*.in; do
    name=${input%.in}
    actual=$( { "$bin" analyze "$(cat "$input")" 2>&1; echo "exit: $?"; } )
    if [ "${UPDATE:-0}" = 1 ]; then
        printf '%s\n' "$actual" > "$name.out"
    fi
    if [ "$actual" = "$(cat "$name.out")" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "golden: $(basename "$name"): output differs"
        printf '%s\n' "$actual" | diff "$name.out" - | head -20
    fi
done
echo "golden: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
