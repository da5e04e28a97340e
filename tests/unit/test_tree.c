// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "snapfs/tree.h"

static struct chain ch;
static struct tree t;

static void init(void)
{
	chain_init(&ch, 1 << 20, 65536, DURABILITY_PROCESS);
	t = (struct tree){ .snaps = ch.ss,
			   .cbt = ch.cbt,
			   .store = ch.s,
			   .image_size = 1 << 20,
			   .uid = 1,
			   .gid = 2 };
}

static void fini(void)
{
	chain_fini(&ch);
}

TestSuite(tree, .init = init, .fini = fini);

Test(tree, the_fixed_entries_have_the_contract_modes)
{
	struct stat st;

	cr_assert_eq(tree_lookup(&t, TREE_INO_ROOT, "live.img", &st), 0);
	cr_assert_eq(st.st_ino, TREE_INO_LIVE);
	cr_assert_eq(st.st_mode, S_IFREG | 0644);
	cr_assert_eq(st.st_size, 1 << 20);
	cr_assert_eq(st.st_uid, 1);
	t.ro = true;
	cr_assert_eq(tree_getattr(&t, TREE_INO_LIVE, &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 0444);
	cr_assert_eq(tree_lookup(&t, TREE_INO_ROOT, "snapshots", &st), 0);
	cr_assert_eq(st.st_mode, S_IFDIR | 0755);
	cr_assert_eq(tree_lookup(&t, TREE_INO_ROOT, "cbt", &st), 0);
	cr_assert_eq(st.st_mode, S_IFDIR | 0755);
	cr_assert_eq(tree_lookup(&t, TREE_INO_ROOT, "other", &st), -ENOENT);
	cr_assert_eq(tree_lookup(&t, TREE_INO_LIVE, "x", &st), -ENOTDIR);
}

Test(tree, snapshots_are_found_by_canonical_name_only)
{
	struct snapshot s;
	struct stat st;
	char name[48], upper[48];

	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	snprintf(name, sizeof(name), "%s.img", s.uuid);
	cr_assert_eq(tree_lookup(&t, TREE_INO_SNAPDIR, name, &st), 0);
	cr_assert_eq(st.st_ino, TREE_INO_SNAP_BASE + (uint64_t)s.seq);
	cr_assert_eq(st.st_mode, S_IFREG | 0444);
	cr_assert_eq(st.st_mtim.tv_sec, s.created_ns / 1000000000);
	/* the same uuid with its first hex letter in upper case */
	strcpy(upper, name);
	for (size_t i = 0; upper[i]; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f') {
			upper[i] = (char)(upper[i] - 'a' + 'A');
			break;
		}
	cr_assert_eq(tree_lookup(&t, TREE_INO_SNAPDIR, upper, &st), -ENOENT);
	name[strlen(name) - 4] = '\0';
	cr_assert_eq(tree_lookup(&t, TREE_INO_SNAPDIR, name, &st), -ENOENT,
		     "without .img");
}

Test(tree, bitmaps_are_named_in_decimal_without_leading_zeros)
{
	struct snapshot s;
	struct stat st;
	struct tree_dirent *ents;
	size_t n;

	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	cr_assert_eq(tree_lookup(&t, TREE_INO_CBTDIR, "1.bitmap", &st), 0);
	cr_assert_eq(st.st_size, 2, "16 blocks in 2 bytes");
	cr_assert_eq(st.st_mode, S_IFREG | 0444);
	cr_assert_eq(tree_lookup(&t, TREE_INO_CBTDIR, "2.bitmap", &st), 0);
	cr_assert_eq(tree_lookup(&t, TREE_INO_CBTDIR, "01.bitmap", &st),
		     -ENOENT);
	cr_assert_eq(tree_lookup(&t, TREE_INO_CBTDIR, "3.bitmap", &st),
		     -ENOENT);
	cr_assert_eq(tree_lookup(&t, TREE_INO_CBTDIR, "1.bitmapx", &st),
		     -ENOENT);
	cr_assert_eq(tree_readdir(&t, TREE_INO_CBTDIR, &ents, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(ents[2].name, "1.bitmap");
	cr_assert_str_eq(ents[3].name, "2.bitmap");
	free(ents);
}

Test(tree, files_carry_their_metadata_as_xattrs)
{
	struct tree_xattr *v;
	struct snapshot s;
	size_t n;
	bool found = false;

	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	cr_assert_eq(tree_xattrs(&t, TREE_INO_CBT_BASE + 1, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, "user.snapfs.closed_by")) {
			cr_assert_str_eq(v[i].value, s.uuid);
			found = true;
		}
	cr_assert(found);
	free(v);
	cr_assert_eq(
		tree_xattrs(&t, TREE_INO_SNAP_BASE + (uint64_t)s.seq, &v, &n),
		0);
	cr_assert_str_eq(v[1].name, "user.snapfs.generation");
	cr_assert_str_eq(v[1].value, "1");
	free(v);
}
