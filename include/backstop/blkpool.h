/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A worker's free list of equal-sized blocks.
 *
 * Some per-flow buffers live only while an exchange is under way (the
 * history ring of a direction until the receiver acknowledges its bytes,
 * the pending-command ring until the replies are in): an established
 * session between two exchanges should hold none of them, yet the fast
 * path should not call malloc() for every command and reply.  Released
 * blocks go on this LIFO, linked through their first bytes, and the next
 * request takes the most recent one, still in cache.  At most max blocks
 * are kept; beyond that they are freed, so the list is bounded whatever
 * the traffic.  Under AddressSanitizer none are kept: every block given
 * back is freed, so that a use after it was given back is still caught
 * as a use after free (the fuzzers and the ASan build of the program).
 * Owner thread only (no locks).
 */
#ifndef BACKSTOP_BLKPOOL_H
#define BACKSTOP_BLKPOOL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define BS_BLKPOOL_KEEP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BS_BLKPOOL_KEEP 0
#endif
#endif
#ifndef BS_BLKPOOL_KEEP
#define BS_BLKPOOL_KEEP 1
#endif

struct bs_blkpool {
	void *head;    /* most recently released block, or NULL */
	uint32_t n;    /* blocks on the list */
	uint32_t max;  /* blocks kept at most (0: none, plain malloc/free) */
	size_t size;   /* bytes per block */
};

/* Blocks of size bytes, at most max kept (none if a block cannot hold
 * the link). */
static inline void
bs_blkpool_init(struct bs_blkpool *p, size_t size, uint32_t max)
{
	p->head = NULL;
	p->n = 0;
	p->size = size;
	p->max = size >= sizeof(void *) && BS_BLKPOOL_KEEP ? max : 0;
}

/* A block of p->size bytes (uninitialised), or NULL if out of memory. */
static inline void *
bs_blkpool_get(struct bs_blkpool *p)
{
	void *b = p->head;

	if (b == NULL)
		return malloc(p->size);
	memcpy(&p->head, b, sizeof(p->head));
	p->n--;
	return b;
}

/* Give back a block from bs_blkpool_get() (NULL is ignored). */
static inline void
bs_blkpool_put(struct bs_blkpool *p, void *b)
{
	if (b == NULL)
		return;
	if (p->n >= p->max) {
		free(b);
		return;
	}
	memcpy(b, &p->head, sizeof(p->head));
	p->head = b;
	p->n++;
}

/*
 * For buffers that start at the pool's block size and may grow: a block
 * of size bytes, from the list when size is the block size, else
 * malloc'd; and its return, to the list or to free() by the same test.
 * A pool left zeroed (size 0) is plain malloc/free.
 */
static inline void *
bs_blkpool_alloc(struct bs_blkpool *p, size_t size)
{
	return size == p->size ? bs_blkpool_get(p) : malloc(size);
}

static inline void
bs_blkpool_free(struct bs_blkpool *p, void *b, size_t size)
{
	if (size == p->size)
		bs_blkpool_put(p, b);
	else
		free(b);
}

/* Free every kept block. */
static inline void
bs_blkpool_drain(struct bs_blkpool *p)
{
	void *b = p->head, *next;

	for (; b != NULL; b = next) {
		memcpy(&next, b, sizeof(next));
		free(b);
	}
	p->head = NULL;
	p->n = 0;
}

#endif /* BACKSTOP_BLKPOOL_H */
