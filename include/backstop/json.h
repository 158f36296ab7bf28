/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON string escaping shared by every writer of JSON lines (the event
 * log's SMTP records, detection results, backstop-classify).
 *
 * The text comes off the wire: any byte may appear.  Quote and backslash
 * are escaped, control characters and DEL become \u00XX, well-formed
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF) passes through, and every other byte b becomes \u00XX (its
 * Latin-1 reading), so the output is always valid UTF-8 JSON and no
 * input byte is lost.
 */
#ifndef BACKSTOP_JSON_H
#define BACKSTOP_JSON_H

#include <stddef.h>

/* Appends n bytes to the caller's output (which handles its own bounds). */
typedef void (*bs_json_put_fn)(void *out, const char *s, size_t n);

/* Write s (n bytes) through put as a quoted JSON string.  Any thread. */
void bs_json_escape(const char *s, size_t n, bs_json_put_fn put, void *out);

#endif /* BACKSTOP_JSON_H */
