#!/usr/bin/env python3
"""Builds poetry.jsonl, the benchmark corpus, from the npm package chinese-poetry.

usage: make_poetry.py PACKAGE_DIR OUT.jsonl

PACKAGE_DIR is the unpacked `npm pack chinese-poetry@2.0.1` (its `package/`
folder). Order and ids are fixed so that ../shared/bench/knownitem.tsv refers
to the right documents: Tang then Song shi from dist/quantangshi, then Song ci
from dist/songci, then the author biographies; NNNNNN is one running count
over all of them, from 1. Documents with an empty body are skipped (and take
no number).
"""
import json
import os
import re
import sys


def numbered(folder, prefix):
    """Files PREFIX.N.json in FOLDER, by increasing N."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.json$")
    found = []
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m:
            found.append((int(m.group(1)), name))
    return [os.path.join(folder, name) for _, name in sorted(found)]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    dist = os.path.join(sys.argv[1], "dist")
    count = 0

    def emit(out, kind, title, body, source, tags):
        nonlocal count
        if not body:
            return
        count += 1
        doc = {"id": "%s-%06d" % (kind, count), "title": title, "body": body,
               "source": source, "tags": tags}
        out.write(json.dumps(doc, ensure_ascii=False) + "\n")

    with open(sys.argv[2], "w", encoding="utf-8") as out:
        shi = os.path.join(dist, "quantangshi")
        for era in ("tang", "song"):
            for path in numbered(shi, "poet." + era):
                for poem in json.load(open(path, encoding="utf-8")):
                    emit(out, era, poem.get("title", ""), "\n".join(poem.get("paragraphs", [])),
                         poem.get("author", ""), [era])
        for path in numbered(os.path.join(dist, "songci"), "ci.song"):
            for ci in json.load(open(path, encoding="utf-8")):
                emit(out, "ci", ci.get("rhythmic", ""), "\n".join(ci.get("paragraphs", [])),
                     ci.get("author", ""), ["ci"])
        for era in ("tang", "song"):
            path = os.path.join(shi, "authors.%s.json" % era)
            for author in json.load(open(path, encoding="utf-8")):
                emit(out, "bio", author.get("name", ""), author.get("desc", ""), "authors",
                     ["bio", era])
    print("%s: %d documents" % (sys.argv[2], count), file=sys.stderr)


if __name__ == "__main__":
    main()
