/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the YAML configuration loader on arbitrary documents.
 * A load either succeeds with every value inside its bounds or fails with
 * a message; it never crashes or leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bs_config *c = malloc(sizeof(*c));
	char err[256];
	if (c == NULL || bs_config_defaults(c) < 0)
		abort();
	err[0] = '\0';
	int rc = bs_config_load_mem(c, "fuzz", data, size, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		abort(); /* every failure explains itself */
	if (rc == 0 && (c->flow_table_size < 64 || c->smtp_ports.n == 0 ||
			c->smtp_ports.n > BS_CFG_MAX_PORTS))
		abort();
	bs_config_free(c);
	free(c);
	return 0;
}
