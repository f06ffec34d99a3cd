/* CRC-32C (Castagnoli), the checksum of every xun file header, block and log record. */
#ifndef XUN_INDEX_CRC32C_H
#define XUN_INDEX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a running crc: crc32c(crc32c(0, a), b) == crc32c(0, a ++ b). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len_bytes);

#endif
