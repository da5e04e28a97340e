// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "snapfs/options.h"

static int parse(struct snapfs_options *o, char *err, size_t len, int argc,
		 char **argv)
{
	return options_parse_argv(o, argc, argv, err, len);
}

Test(options, sizes_take_binary_suffixes)
{
	uint64_t v;

	cr_assert_eq(options_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(options_parse_size("64K", &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(options_parse_size("1M", &v), 0);
	cr_assert_eq(v, 1048576);
	cr_assert_eq(options_parse_size("3G", &v), 0);
	cr_assert_eq(v, 3ull << 30);
	cr_assert_eq(options_parse_size("2T", &v), 0);
	cr_assert_eq(v, 2ull << 40);
}

Test(options, malformed_sizes_are_rejected)
{
	uint64_t v;

	cr_assert_eq(options_parse_size("", &v), -EINVAL);
	cr_assert_eq(options_parse_size("K", &v), -EINVAL);
	cr_assert_eq(options_parse_size("-4K", &v), -EINVAL);
	cr_assert_eq(options_parse_size("4KB", &v), -EINVAL);
	cr_assert_eq(options_parse_size("4X", &v), -EINVAL);
	cr_assert_eq(options_parse_size("1.5M", &v), -EINVAL);
	cr_assert_eq(options_parse_size("99999999999999999999", &v), -ERANGE);
	cr_assert_eq(options_parse_size("16777216T", &v), -ERANGE);
}

Test(options, units_must_be_powers_of_two_from_4k_to_1m)
{
	cr_assert(options_unit_valid(4096));
	cr_assert(options_unit_valid(1 << 20));
	cr_assert_not(options_unit_valid(2048));
	cr_assert_not(options_unit_valid(2 << 20));
	cr_assert_not(options_unit_valid(12288));
}

Test(options, every_contract_option_is_parsed)
{
	char *argv[] = {
		"snapfs",
		"-o",
		"store=/s,chunk_size=128K,cbt_block_size=4K,diff_max=1G,"
		"on_full=fail-writes,durability=process,cbt_keep=5,ro",
		"img",
		"mnt",
		NULL
	};
	struct snapfs_options o;
	char err[256];

	cr_assert_eq(parse(&o, err, sizeof(err), 5, argv), 0, "%s", err);
	cr_assert_str_eq(o.store, "/s");
	cr_assert_eq(o.chunk_size, 128 * 1024);
	cr_assert_eq(o.cbt_block_size, 4096);
	cr_assert_eq(o.diff_max, 1ull << 30);
	cr_assert_eq(o.on_full, ON_FULL_FAIL_WRITES);
	cr_assert_eq(o.durability, DURABILITY_PROCESS);
	cr_assert_eq(o.cbt_keep, 5);
	cr_assert(o.ro);
	cr_assert_str_eq(o.backing, "img");
	cr_assert_str_eq(o.mountpoint, "mnt");
	options_free(&o);
}

Test(options, defaults_follow_the_contract)
{
	char *argv[] = { "snapfs", "img", "mnt", NULL };
	struct snapfs_options o;
	char err[256];

	cr_assert_eq(parse(&o, err, sizeof(err), 3, argv), 0);
	cr_assert_null(o.store);
	cr_assert_eq(o.chunk_size, 0, "0 means the store's or 64K");
	cr_assert_eq(o.on_full, ON_FULL_DROP_OLDEST);
	cr_assert_eq(o.durability, DURABILITY_FULL);
	cr_assert_eq(o.cbt_keep, 64);
	cr_assert_not(o.ro);
	cr_assert_not(o.foreground);
	options_free(&o);
}

Test(options, mount_helper_order_and_words_are_accepted)
{
	/* what mount(8) and mount.fuse3 pass: operands first, then -o */
	char *argv[] = { "snapfs",
			 "img",
			 "mnt",
			 "-o",
			 "rw,nosuid,nodev,noatime,x-systemd.automount,_netdev,"
			 "allow_other,default_permissions,store=/s",
			 NULL };
	struct snapfs_options o;
	char err[256];

	cr_assert_eq(parse(&o, err, sizeof(err), 5, argv), 0, "%s", err);
	cr_assert_str_eq(o.store, "/s");
	cr_assert_str_eq(
		o.fuse_opts,
		"nosuid,nodev,noatime,allow_other,default_permissions");
	options_free(&o);
}

Test(options, unknown_or_malformed_options_name_the_word)
{
	static const char *const bad[][2] = {
		{ "chunk_size=3K", "chunk_size=3K" },
		{ "chunk_size=2M", "chunk_size=2M" },
		{ "cbt_block_size=abc", "cbt_block_size=abc" },
		{ "diff_max=12Q", "diff_max=12Q" },
		{ "on_full=panic", "on_full=panic" },
		{ "durability=maybe", "durability=maybe" },
		{ "cbt_keep=0", "cbt_keep=0" },
		{ "cbt_keep=x", "cbt_keep=x" },
		{ "bogus", "bogus" },
		{ "store=", "store=" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "snapfs", "-o",  (char *)bad[i][0],
				 "img",	   "mnt", NULL };
		struct snapfs_options o;
		char err[256];

		cr_assert_eq(parse(&o, err, sizeof(err), 5, argv), -EINVAL,
			     "%s accepted", bad[i][0]);
		cr_assert_not_null(strstr(err, bad[i][1]), "'%s' for %s", err,
				   bad[i][0]);
		cr_assert_null(strchr(err, '\n'), "one line");
		options_free(&o);
	}
}

Test(options, operands_are_required_and_bounded)
{
	char *one[] = { "snapfs", "img", NULL };
	char *three[] = { "snapfs", "a", "b", "c", NULL };
	char *flag[] = { "snapfs", "--frobnicate", "a", "b", NULL };
	struct snapfs_options o;
	char err[256];

	cr_assert_eq(parse(&o, err, sizeof(err), 2, one), -EINVAL);
	cr_assert_not_null(strstr(err, "usage"));
	options_free(&o);
	cr_assert_eq(parse(&o, err, sizeof(err), 4, three), -EINVAL);
	cr_assert_not_null(strstr(err, "'c'"));
	options_free(&o);
	cr_assert_eq(parse(&o, err, sizeof(err), 4, flag), -EINVAL);
	cr_assert_not_null(strstr(err, "--frobnicate"));
	options_free(&o);
}
