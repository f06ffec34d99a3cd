#!/usr/bin/env bash
# Writes the named seed inputs of fuzz_wal (log version 2) into
# tests/fuzz/corpus/fuzz_wal/ (see tests/fuzz/fuzz_wal.c for what the bytes
# mean). Framed inputs get their checksums from the target itself; the raw
# ones carry a header whose crc32c is spelled out below.
#
#   bash tests/fuzz/wal_seeds.sh
set -eu
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus/fuzz_wal
mkdir -p "$out"

# seed NAME MODE OP WHERE_LO WHERE_HI SCRIPT...: printf escapes, one input
seed() {
    local name="$1"
    shift
    local bytes=""
    for part in "$@"; do
        bytes="$bytes$part"
    done
    printf "$bytes" >"$out/$name"
}

# batches: 2 records (a DELETE "id-01" and a PUT of 8 bytes), 1 record, 3 records
B3='\x01\x85id-01\x08{"a":1}x\x00\x82n2\x02\x84id-3\x03xyz\x86id-005'
# one batch of four records of 60 bytes: crosses sectors when padded after the filler
P60='0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX'
B4="\\x03\\x3c$P60\\xbc$P60\\x3c$P60\\xbc$P60"
seed framed-three-batches '\x10' '\x00' '\x00\x00' "$B3"
seed framed-padded-strict-after-2 '\x3c' '\x00' '\x00\x00' "$B3"
seed framed-bit-flipped '\x30' '\x01' '\x29\x00' "$B3"
seed framed-sector-zeroed '\x30' '\x02' '\x05\x00' "$B3$B4"
seed framed-cut '\x30' '\x03' '\x11\x00' "$B3$B4"
seed framed-zeros-from '\x30' '\x04' '\x40\x00' "$B3$B4"
seed framed-crash-sectors '\x30' '\x05' '\x02\x00' "$B3$B4"
seed framed-killed '\x30' '\x06' '\x95\x00' "$B3$B4"
seed framed-killed-in-head '\x30' '\x06' '\x0b\x00' "$B3"
seed framed-seq-repeats '\x30' '\x00' '\x00\x00' "$B3" '\x40\x82n9'
seed framed-seq-gap '\x30' '\x00' '\x00\x00' "$B3" '\x80\x82n9'
seed framed-past-a-step '\x70' '\x00' '\x00\x00' "$B3$B4"
seed framed-past-a-step-cut '\x50' '\x00' '\x00\x00' "$B3$B4"
H1='XUNWAL\r\n\x01\x00\x00\x00\x6d\x5c\x08\x08'
H2='XUNWAL\r\n\x02\x00\x00\x00\x54\xd5\x2a\x6a'
H3='XUNWAL\r\n\x03\x00\x00\x00\xec\x7f\x6f\xb7'
seed raw-header-only '\x01' "$H2"
seed raw-header-padded '\x21' "$H2"
seed raw-version-1 '\x01' "$H1" '\x05\x00\x00\x00\x01\x02\x03\x04\x01\x01\x00\x00\x00\x00\x00\x00\x00hello'
seed raw-version-3 '\x21' "$H3" '\x30\x00\x00'
seed raw-bad-magic '\x01' 'XUNSEG\r\n\x02\x00\x00\x00\x54\xd5\x2a\x6a'
seed raw-short '\x01' 'XUNWA'
seed header-then-garbage '\x20' '\x18\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xde\xad\xbe\xef'
