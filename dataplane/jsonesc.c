/* SPDX-License-Identifier: BSD-3-Clause */
/* JSON string escaping (see include/backstop/json.h). */
#include "backstop/json.h"

#include <stdint.h>
#include <stdio.h>

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0. */
static size_t
utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t k;
	uint32_t cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

void
bs_json_escape(const char *str, size_t n, bs_json_put_fn put, void *out)
{
	const uint8_t *s = (const uint8_t *)str;
	char esc[8];

	put(out, "\"", 1);
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(out, esc, 2);
			i++;
			continue;
		}
		k = c >= 0x20 && c != 0x7f ? utf8_len(s + i, n - i) : 0;
		if (k == 0) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(out, esc, 6);
			i++;
			continue;
		}
		put(out, str + i, k);
		i += k;
	}
	put(out, "\"", 1);
}
