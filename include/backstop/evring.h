/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Event ring: a single-producer single-consumer byte ring that carries
 * whole lines (JSON records) from a worker to the thread that writes the
 * event log.
 *
 * The worker must never wait on a disk: bs_evring_put() copies a line in
 * if it fits whole and returns -ENOSPC otherwise (the caller counts the
 * loss).  The writer thread drains complete lines to a file.  Two
 * indices, each written by one side only, with acquire/release ordering:
 * no lock, no atomic read-modify-write.
 */
#ifndef BACKSTOP_EVRING_H
#define BACKSTOP_EVRING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct bs_evring;

/*
 * Create a ring of at least size bytes (rounded up to a power of two,
 * at least 4 KiB).  Returns NULL on allocation failure.
 */
struct bs_evring *bs_evring_create(size_t size);
void bs_evring_free(struct bs_evring *r);

/*
 * Producer: append len bytes (one or more whole lines).  Returns 0, or
 * -ENOSPC when they do not fit now (nothing is written).
 */
int bs_evring_put(struct bs_evring *r, const void *buf, size_t len);

/*
 * Consumer: write everything queued to f (not flushed).  Returns the
 * bytes written, or -EIO if f failed (the bytes are consumed anyway:
 * a broken disk must not back up into the workers).
 */
long bs_evring_drain(struct bs_evring *r, FILE *f);

#endif /* BACKSTOP_EVRING_H */
