/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every preserved chunk.
 */
#ifndef SNAPFS_CRC32C_H
#define SNAPFS_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the CRC-32C of buf[0..len); any thread. crc32c("123456789") is
 * 0xe3069283. */
uint32_t crc32c(const void *buf, size_t len);

/* The implementations crc32c() chooses from, fastest last; for the unit
 * test, which checks each one this CPU has against the table. */
enum crc32c_impl { CRC32C_TABLE, CRC32C_SSE42, CRC32C_VPCLMUL };
bool crc32c_has(enum crc32c_impl i);
uint32_t crc32c_by(enum crc32c_impl i, const void *buf, size_t len);

#endif
