// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * uuid.c - snapshot uuids (uuid.h): the one parser of their syntax and of
 * the "<uuid>.img" file name, and their making.  No state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "snapfs/uuid.h"

bool uuid_valid(const char *s)
{
	for (int i = 0; i < UUID_LEN; i++) {
		char ch = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				return false;
		} else if (!((ch >= '0' && ch <= '9') ||
			     (ch >= 'a' && ch <= 'f'))) {
			return false;
		}
	}
	return s[UUID_LEN] == '\0';
}

int uuid_make(char out[UUID_LEN + 1])
{
	unsigned char u[16];

	if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u))
		return -EIO;
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(out, UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
	return 0;
}

bool uuid_from_image_name(const char *name, char uuid[UUID_LEN + 1])
{
	if (strlen(name) != UUID_LEN + 4 || strcmp(name + UUID_LEN, ".img"))
		return false;
	memcpy(uuid, name, UUID_LEN);
	uuid[UUID_LEN] = '\0';
	return uuid_valid(uuid);
}
