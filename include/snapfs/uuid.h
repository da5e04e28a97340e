/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uuid.h - snapshot uuids: the canonical lowercase form (36 characters,
 * RFC 4122), making a random one, and the snapshot file name
 * "<uuid>.img".  Pure functions, any thread; linked by the daemon and the
 * client alike.
 */
#ifndef SNAPFS_UUID_H
#define SNAPFS_UUID_H

#include <stdbool.h>

#define UUID_LEN 36

/* True when s is a uuid in canonical lowercase form, nothing after it. */
bool uuid_valid(const char *s);

/* A random (version 4) uuid into out.  0, or -EIO without randomness. */
int uuid_make(char out[UUID_LEN + 1]);

/* True when name is "<uuid>.img" with a valid uuid, copied into uuid. */
bool uuid_from_image_name(const char *name, char uuid[UUID_LEN + 1]);

#endif
