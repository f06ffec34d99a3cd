#!/usr/bin/env python3
"""Index size on disk by section (format in index/format/segment.h), and its ratio to the input.

usage: index_size.py INDEX_DIR INPUT_BYTES
"""
import glob
import os
import struct
import sys

names = ["dictionary", "postings", "doc table", "document store"]
sizes = [0, 0, 0, 0]
other = 0
for path in glob.glob(os.path.join(sys.argv[1], "*")):
    if path.endswith(".xseg"):
        with open(path, "rb") as f:
            head = f.read(128)
        for i in range(4):
            sizes[i] += struct.unpack_from("<QQ", head, 56 + 16 * i)[1]
        other += 128
    else:
        other += os.path.getsize(path)
total = sum(sizes) + other
mib = 1 << 20
print("  index size: %.1f MiB in all, %.2f x the input (%.1f MiB)" %
      (total / mib, total / float(sys.argv[2]), float(sys.argv[2]) / mib))
for name, size in zip(names, sizes):
    print("    %-16s %8.1f MiB" % (name, size / mib))
