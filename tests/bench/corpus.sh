#!/bin/sh
# Builds the benchmark corpus OUT_DIR/poetry.jsonl (default build/bench) from
# the npm package chinese-poetry 2.0.1, unless it is already there.
# Used by tests/bench/run.sh (make bench) and tests/soak/run.sh (make soak).
set -eu
out=${1:-build/bench}
mkdir -p "$out"
if [ ! -s "$out/poetry.jsonl" ]; then
    for cmd in npm python3; do
        command -v "$cmd" >/dev/null 2>&1 || { echo "corpus: needs $cmd" >&2; exit 1; }
    done
    echo "corpus: fetching chinese-poetry 2.0.1 and building poetry.jsonl"
    rm -rf "$out/npm" && mkdir -p "$out/npm"
    (cd "$out/npm" && npm pack --silent chinese-poetry@2.0.1 >/dev/null && tar xzf chinese-poetry-2.0.1.tgz)
    python3 corpus/make_poetry.py "$out/npm/package" "$out/poetry.jsonl.tmp"
    mv "$out/poetry.jsonl.tmp" "$out/poetry.jsonl"
    rm -rf "$out/npm"
fi
