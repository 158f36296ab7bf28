/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the settings table: defaults parse, bounds are enforced,
 * YAML nesting and lists map to keys, errors name file, line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backstop/config.h"

static char *
write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "test_config_%d.yaml", (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_defaults(void **state)
{
	(void)state;
	struct bs_config c;
	assert_int_equal(bs_config_defaults(&c), 0);
	assert_int_equal(c.smtp_ports.n, 2);
	assert_true(bs_config_is_smtp_port(&c, 25));
	assert_true(bs_config_is_smtp_port(&c, 587));
	assert_false(bs_config_is_smtp_port(&c, 465));
	assert_int_equal(c.flow_table_size, 65536);
	/* Every row's default is inside its own bounds (parsed by set). */
	for (unsigned int i = 0; i < bs_cfg_count; i++)
		assert_non_null(bs_cfg_desc[i].key);
	bs_config_free(&c);
}

static void
test_set_bounds(void **state)
{
	(void)state;
	struct bs_config c;
	char err[256];
	bs_config_defaults(&c);
	assert_int_equal(bs_config_set(&c, "flow.table_size", "64", err,
		sizeof(err)), 0);
	assert_int_equal(c.flow_table_size, 64);
	assert_true(bs_config_set(&c, "flow.table_size", "63", err,
		sizeof(err)) < 0);
	assert_non_null(strstr(err, "64..16777216"));
	assert_true(bs_config_set(&c, "flow.table_size", "-1", err,
		sizeof(err)) < 0);
	assert_true(bs_config_set(&c, "flow.table_size", "99999999999999999999",
		err, sizeof(err)) < 0);
	assert_true(bs_config_set(&c, "flow.table_size", "12abc", err,
		sizeof(err)) < 0);
	assert_int_equal(c.flow_table_size, 64); /* unchanged by failures */
	assert_true(bs_config_set(&c, "smtp.ports", "", err, sizeof(err)) < 0);
	assert_true(bs_config_set(&c, "smtp.ports",
		"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", err,
		sizeof(err)) < 0);
	assert_int_equal(bs_config_set(&c, "smtp.ports", "2525", err,
		sizeof(err)), 0);
	assert_true(bs_config_is_smtp_port(&c, 2525));
	assert_false(bs_config_is_smtp_port(&c, 25));
	assert_true(bs_config_set(&c, "no.such", "1", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "unknown setting 'no.such'"));
	bs_config_free(&c);
}

static void
test_load_yaml(void **state)
{
	(void)state;
	struct bs_config c;
	char err[256];
	bs_config_defaults(&c);
	char *p = write_tmp("# comment\nsmtp:\n  ports:\n    - 25\n    - 10025\n"
			    "flow:\n  table_size: 1024\n"
			    "dataplane.burst_size: 64\n");
	assert_int_equal(bs_config_load(&c, p, err, sizeof(err)), 0);
	assert_int_equal(c.smtp_ports.n, 2);
	assert_int_equal(c.smtp_ports.port[1], 10025);
	assert_int_equal(c.flow_table_size, 1024);
	assert_int_equal(c.burst_size, 64);
	p = write_tmp("flow:\n  table_size: 1024\n  bogus: 1\n");
	assert_true(bs_config_load(&c, p, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, ":3:"));
	assert_non_null(strstr(err, "flow.bogus"));
	p = write_tmp("- a\n- b\n");
	assert_true(bs_config_load(&c, p, err, sizeof(err)) < 0);
	p = write_tmp("smtp:\n  ports: [25, [1]]\n");
	assert_true(bs_config_load(&c, p, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "scalars"));
	unlink(p);
	assert_true(bs_config_load(&c, "/nonexistent/x.yaml", err,
		sizeof(err)) < 0);
	bs_config_free(&c);
}

static void
test_show_roundtrip(void **state)
{
	(void)state;
	struct bs_config a, b;
	char err[256];
	bs_config_defaults(&a);
	bs_config_set(&a, "flow.table_size", "777", err, sizeof(err));
	bs_config_set(&a, "smtp.ports", "25,26", err, sizeof(err));
	char *p = write_tmp("");
	FILE *f = fopen(p, "w");
	bs_config_show(f, &a);
	fclose(f);
	bs_config_defaults(&b);
	assert_int_equal(bs_config_load(&b, p, err, sizeof(err)), 0);
	assert_int_equal(b.flow_table_size, 777);
	assert_int_equal(b.smtp_ports.n, 2);
	assert_int_equal(b.smtp_ports.port[1], 26);
	unlink(p);
	bs_config_free(&a);
	bs_config_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_bounds),
		cmocka_unit_test(test_load_yaml),
		cmocka_unit_test(test_show_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
