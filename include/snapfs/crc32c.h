/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every preserved chunk.
 */
#ifndef SNAPFS_CRC32C_H
#define SNAPFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Returns the CRC-32C of buf[0..len); any thread. crc32c("123456789") is
 * 0xe3069283. */
uint32_t crc32c(const void *buf, size_t len);

#endif
