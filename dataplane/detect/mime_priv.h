/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private interface between the two halves of the MIME parser: mime.c (the
 * structure: lines, headers, boundaries, decoding) and dsn.c (what each
 * kind of part means: top-level facts, DSN fields, the embedded original).
 */
#ifndef BACKSTOP_MIME_PRIV_H
#define BACKSTOP_MIME_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backstop/mime.h"

/* Body handlers, chosen from a part's Content-Type. */
enum {
	BS_MIME_H_TEXT,    /* text/ *: scanned, inline originals looked for */
	BS_MIME_H_MULTI,   /* multipart preamble: ignored */
	BS_MIME_H_SKIP,    /* anything else: ignored */
	BS_MIME_H_DSN,     /* message/delivery-status */
	BS_MIME_H_ARF,     /* message/feedback-report */
	BS_MIME_H_MDN,     /* message/disposition-notification */
	BS_MIME_H_RFC822,  /* message/rfc822: the original, whole */
	BS_MIME_H_HEADERS, /* text/rfc822-headers: the original's header */
};

/* Whose text this is. */
enum { BS_MIME_CTX_TOP, BS_MIME_CTX_ORIG };

/* Kind of header block being unfolded. */
enum {
	BS_MIME_HB_ENTITY, /* top-level message or MIME part */
	BS_MIME_HB_ORIG,   /* the embedded original */
	BS_MIME_HB_DSN,    /* delivery-status fields */
	BS_MIME_HB_ARF,    /* feedback-report fields */
};

/* mime.c */
bool bs_mime_contains_ci_n(
        const uint8_t *p, size_t n, const char *needle, size_t k);
bool bs_mime_contains2_ci(const uint8_t *p, size_t n, const char *a,
        size_t ka, const char *b, size_t kb);
void bs_mime_emit(
        struct bs_mime *m, uint32_t target, uint8_t *p, size_t n, bool eol);
void bs_mime_hdr_flush(struct bs_mime *m);
bool bs_mime_is_field_start(const uint8_t *p, size_t n);
void bs_mime_hdr_line(struct bs_mime *m, const uint8_t *p, size_t n, bool sol);
int bs_mime_param(
        const char *v, size_t n, const char *name, char *dst, size_t dstlen);
void bs_mime_content_type(struct bs_mime *m, const char *v, size_t n, bool top);
void bs_mime_cte(struct bs_mime *m, const char *v, size_t n);
size_t bs_mime_b64(uint32_t *acc, uint8_t *nacc, const uint8_t *p, size_t n,
        uint8_t *out, bool *bad);

/* dsn.c */
bool bs_mime_charset_name(
        char name[BS_MIME_CHARSET_MAX], const char *cs, size_t n);
bool bs_mime_charset_known(const char *name, uint32_t *opens, bool *ascii);
size_t bs_mime_charset_conv(const char *name, const void *user,
        uint64_t *user_seq, bool fresh, const uint8_t *in, size_t n,
        uint8_t *out, size_t cap, uint32_t *opens);
void bs_mime_header(struct bs_mime *m, uint8_t *h, size_t n);
void bs_mime_handle(
        struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol);
void bs_mime_handler_begin(struct bs_mime *m);
void bs_mime_handler_end(struct bs_mime *m);
bool bs_mime_handler_wants(const struct bs_mime *m);

/* ASCII lower case of one byte (locale-free: wire text). */
static inline uint8_t
bs_mime_lc(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Value of a hex digit, or -1 (quoted-printable, RFC 2047 Q words). */
static inline int
bs_mime_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = bs_mime_lc(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* p[0..k) equals s[0..k) (lower case), ignoring ASCII case. */
static inline bool
bs_mime_eq_ci(const uint8_t *p, const char *s, size_t k)
{
	for (size_t i = 0; i < k; i++)
		if (bs_mime_lc(p[i]) != (uint8_t)s[i])
			return false;
	return true;
}

/*
 * p[0..n) begins with pfx (lower case), ignoring ASCII case.  Inline: the
 * callers pass literals, whose length the compiler then knows (strlen
 * per call was 3% of the flood benchmark).
 */
static inline bool
bs_mime_prefix_ci(const uint8_t *p, size_t n, const char *pfx)
{
	size_t k = strlen(pfx);

	if (n < k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (bs_mime_lc(p[i]) != (uint8_t)pfx[i])
			return false;
	return true;
}

/* p[0..n) contains needle (lower case), ignoring ASCII case.  Inline so
 * that a literal's length is known (strlen per call was 0.7% of
 * classification). */
static inline bool
bs_mime_contains_ci(const uint8_t *p, size_t n, const char *needle)
{
	return bs_mime_contains_ci_n(p, n, needle, strlen(needle));
}

#endif /* BACKSTOP_MIME_PRIV_H */
