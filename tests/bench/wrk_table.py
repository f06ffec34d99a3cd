#!/usr/bin/env python3
"""Prints wrk results as a table beside the first (the baseline).

usage: wrk_table.py BASELINE.txt RUN.txt...
"""
import re
import sys


def parse(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return rps, lat, int(bad.group(1)) if bad else 0, errors.group(0) if errors else ""


names = {"wrk-baseline": "baseline: fixed 2 KB reply",
         "wrk-snippets": "xun /search, with snippets",
         "wrk-plain": "xun /search, highlight=0",
         "wrk-snippets-nocache": "  same, --cache-mb 0",
         "wrk-plain-nocache": "  highlight=0, --cache-mb 0"}
base = None
print("  %-30s %10s %9s %9s %9s %8s %s" % ("", "req/s", "p50", "p90", "p99", "of base", "non-2xx"))
for path in sys.argv[1:]:
    rps, lat, bad, errors = parse(path)
    base = base or rps
    key = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    print("  %-30s %10.0f %9s %9s %9s %7.0f%% %d %s" % (names.get(key, key), rps, lat.get("50", "?"),
          lat.get("90", "?"), lat.get("99", "?"), 100 * rps / base, bad, errors))
