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
#include "backstop/verdict.h"

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
	/* List and map settings: within their caps, every item valid. */
	if (rc == 0) {
		if (c->batv_keys.n > BS_CFG_BATV_KEYS_MAX ||
				c->dkim_keys.n > BS_CFG_DKIM_KEYS_MAX ||
				c->domains.n > BS_CFG_DOMAINS_MAX)
			abort();
		for (uint32_t i = 0; i < c->batv_keys.n; i++)
			if (c->batv_keys.key[i].id > 9 ||
					c->batv_keys.key[i].len == 0)
				abort();
		for (uint32_t i = 0; i < c->dkim_keys.n; i++)
			if (c->dkim_keys.key[i].der_len == 0 ||
					c->dkim_keys.key[i].der_len >
						BS_CFG_DKIM_DER_MAX)
				abort();
		/* The policy compiles from any configuration that loads. */
		char perr[256];
		struct bs_verdict_policy *p =
			bs_verdict_policy_build(c, perr, sizeof(perr));
		if (p == NULL)
			abort();
		bs_verdict_policy_free(p);
	}
	bs_config_free(c);
	free(c);
	return 0;
}
