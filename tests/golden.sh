#!/bin/sh
# Golden tests, compared byte for byte; XUN_BIN picks the binary (make test
# uses the sanitizer build); UPDATE=1 rewrites the .out files after a
# deliberate change.
#
#   analyze/NAME.in     `xun analyze` of its text: stdout, stderr, exit status
#   highlight/NAME.query  `xun search` of the query over highlight/docs.jsonl:
#                       the id, title_html and snippet of each hit
set -u
bin=${XUN_BIN:-./xun}
root=$(dirname "$0")/golden
passed=0 failed=0

# check NAME ACTUAL: compares with NAME.out
check() {
    if [ "${UPDATE:-0}" = 1 ]; then
        printf '%s\n' "$2" > "$1.out"
    fi
    if [ "$2" = "$(cat "$1.out" 2>/dev/null)" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "golden: $1: output differs"
        printf '%s\n' "$2" | diff "$1.out" - | head -20
    fi
}

for input in "$root"/analyze/*.in; do
    check "${input%.in}" "$( { "$bin" analyze "$(cat "$input")" 2>&1; echo "exit: $?"; } )"
done

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
if ! "$bin" index --data "$data/index" "$root/highlight/docs.jsonl" 2>"$data/log"; then
    cat "$data/log"
    failed=$((failed + 1))
else
    for query in "$root"/highlight/*.query; do
        check "${query%.query}" "$( { "$bin" search --data "$data/index" --limit 3 \
            "$(cat "$query")" 2>&1; echo "exit: $?"; } |
            grep -E '^      "(id|title_html|snippet)"|^exit|xun:')"
    done
fi
echo "golden: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
