/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Message-ID normalisation (contract 4) and the walk over the msg-id
 * tokens of In-Reply-To and References.
 *
 * The ledger compares what left the domain with what a bounce quotes
 * back, and the two were written by different programs: the remote MTA
 * may refold the header, change the case of the domain, add a comment.
 * RFC 5322 3.6.4 makes the identifier the addr-spec-like `id-left "@"
 * id-right` inside <>; domains compare case-insensitively, the left part
 * byte for byte.  So: skip CFWS, take what is inside <> (or, for the
 * broken senders that omit them, the first bare token), drop folding
 * white space (a real identifier has none, so removing it can only make
 * a refolded copy match), lower-case the part after the last '@'.
 * Every read is bounded by len; the output by cap.
 */
#include "backstop/ledger.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip white space and (nested, quoted-pair aware) comments from i. */
static size_t
skip_cfws(const unsigned char *s, size_t len, size_t i)
{
	while (i < len) {
		if (is_ws(s[i])) {
			i++;
		} else if (s[i] == '(') {
			/* A depth counter, not recursion: hostile nesting
			 * costs nothing.  An unclosed comment runs to the
			 * end (there is no identifier then). */
			size_t depth = 0;
			for (; i < len; i++) {
				if (s[i] == '\\') {
					i++;
				} else if (s[i] == '(') {
					depth++;
				} else if (s[i] == ')' && --depth == 0) {
					i++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return i < len ? i : len;
}

int
bs_msgid_normalise(const char *in, size_t len, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = skip_cfws(s, len, 0);
	size_t end;
	if (i < len && s[i] == '<') {
		i++;
		end = i;
		while (end < len && s[end] != '>')
			end++;
	} else {
		end = i;
		while (end < len && !is_ws(s[end]) && s[end] != '(')
			end++;
	}
	size_t n = 0, at = SIZE_MAX;
	for (size_t k = i; k < end; k++) {
		if (is_ws(s[k]))
			continue;
		if (n == cap)
			return -E2BIG;
		if (s[k] == '@')
			at = n;
		out[n++] = (char)s[k];
	}
	if (n == 0)
		return -EINVAL;
	if (at != SIZE_MAX)
		for (size_t k = at + 1; k < n; k++)
			if (out[k] >= 'A' && out[k] <= 'Z')
				out[k] = (char)(out[k] - 'A' + 'a');
	return (int)n;
}

bool
bs_msgid_next(const char *buf, size_t len, size_t *off, const char **id,
	size_t *idlen)
{
	size_t i = *off;
	if (i >= len)
		return false;
	if (i == 0) {
		/* A value with no '<' at all is one bare identifier. */
		bool angle = false;
		for (size_t k = 0; k < len && !angle; k++)
			angle = buf[k] == '<';
		if (!angle) {
			size_t b = skip_cfws((const unsigned char *)buf, len, 0);
			*off = len;
			if (b == len)
				return false;
			*id = buf + b;
			*idlen = len - b;
			return true;
		}
	}
	while (i < len && buf[i] != '<')
		i++;
	if (i == len) {
		*off = len;
		return false;
	}
	size_t e = i + 1;
	while (e < len && buf[e] != '>' && buf[e] != '<')
		e++;
	/* An unclosed '<' (or one followed by another '<') ends the token
	 * there: the next token starts at the next '<'. */
	size_t stop = (e < len && buf[e] == '>') ? e + 1 : e;
	*id = buf + i;
	*idlen = stop - i;
	*off = stop;
	return true;
}
