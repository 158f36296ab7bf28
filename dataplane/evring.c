/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPSC byte ring for event lines (see evring.h).  head counts bytes ever
 * written (producer only), tail bytes ever read (consumer only); both are
 * 64-bit so they never wrap in practice, and their difference is the
 * fill.  Each side reads the other's index with acquire and publishes its
 * own with release, so the bytes are visible before the index moves.
 */
#include "backstop/evring.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct bs_evring {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) size_t mask;
	uint8_t *buf;
};

struct bs_evring *
bs_evring_create(size_t size)
{
	size_t n = 4096;
	while (n < size && n < ((size_t)1 << 40))
		n <<= 1;
	struct bs_evring *r = aligned_alloc(64, sizeof(*r));
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->buf = malloc(n);
	if (r->buf == NULL) {
		free(r);
		return NULL;
	}
	r->mask = n - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return r;
}

void
bs_evring_free(struct bs_evring *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

int
bs_evring_put(struct bs_evring *r, const void *buf, size_t len)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	size_t cap = r->mask + 1;
	if (len > cap - (size_t)(head - tail))
		return -ENOSPC;
	size_t off = (size_t)head & r->mask;
	size_t first = len < cap - off ? len : cap - off;
	memcpy(r->buf + off, buf, first);
	memcpy(r->buf, (const uint8_t *)buf + first, len - first);
	atomic_store_explicit(&r->head, head + len, memory_order_release);
	return 0;
}

long
bs_evring_drain(struct bs_evring *r, FILE *f)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	size_t len = (size_t)(head - tail);
	if (len == 0)
		return 0;
	size_t off = (size_t)tail & r->mask;
	size_t first = len < r->mask + 1 - off ? len : r->mask + 1 - off;
	int bad = fwrite(r->buf + off, 1, first, f) != first;
	if (len > first)
		bad |= fwrite(r->buf, 1, len - first, f) != len - first;
	atomic_store_explicit(&r->tail, head, memory_order_release);
	return bad ? -EIO : (long)len;
}
