// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "chunkset.h"

Test(chunkset, adds_finds_removes_and_clears_in_any_order)
{
	struct chunkset s;
	uint64_t keys[1000];

	chunkset_init(&s);
	cr_assert_not(chunkset_has(&s, 7));
	for (int i = 0; i < 1000; i++) {
		keys[i] = (uint64_t)rand() * 4096 + (uint64_t)i;
		cr_assert_eq(chunkset_add(&s, keys[i]), 0);
	}
	for (int i = 0; i < 1000; i++) {
		cr_assert(chunkset_has(&s, keys[i]));
		cr_assert_eq(chunkset_add(&s, keys[i]), 1, "added twice");
		cr_assert_not(chunkset_has(&s, keys[i] + 1000000000000ull));
	}
	for (int i = 0; i < 1000; i += 2)
		cr_assert(chunkset_remove(&s, keys[i]));
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(chunkset_has(&s, keys[i]), i % 2 == 1);
	cr_assert_not(chunkset_remove(&s, keys[0]), "removed twice");
	cr_assert_eq(chunkset_clear(&s), 500);
	cr_assert_not(chunkset_has(&s, keys[1]));
	cr_assert_eq(chunkset_clear(&s), 0);
	chunkset_destroy(&s);
}

static struct chunkset shared;

static void *adder(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg;
	int *added = calloc(1, sizeof(*added));

	for (uint64_t k = 0; k < 2000; k++)
		*added += chunkset_add(&shared, base + k % 1000) == 0;
	return added;
}

Test(chunkset, concurrent_adds_of_one_key_succeed_once)
{
	pthread_t t[4];
	int total = 0;

	chunkset_init(&shared);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, adder,
			       (void *)(uintptr_t)(i % 2 * 500));
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(t[i], &r);
		total += *(int *)r;
		free(r);
	}
	/* keys 0..1499, each added by exactly one thread */
	cr_assert_eq(total, 1500);
	cr_assert_eq(chunkset_clear(&shared), 1500);
	chunkset_destroy(&shared);
}
