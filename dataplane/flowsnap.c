/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flows-top snapshots, taken by the worker that owns the table.
 *
 * The control thread may not walk a worker's flow table (entries move,
 * engine state is freed under it), so it hands the worker a request and
 * the worker walks its own table BS_SNAP_BATCH entries per loop,
 * keeping the N largest flows by bytes in a sorted array (N is small:
 * an insertion costs at most N moves).  A table of 65536 entries takes
 * 256 loops, a few milliseconds of an otherwise busy worker, each loop
 * delayed by a slice of a few microseconds.
 */
#include <string.h>

#include "dataplane.h"

void
bs_flow_snap_step(struct bs_worker *w, uint64_t now_ms)
{
	struct bs_flow_snap *s = w->snap;
	uint32_t cap = bs_flow_capacity(w->flows);
	uint32_t end = s->cursor + BS_SNAP_BATCH;
	if (end > cap)
		end = cap;
	for (uint32_t i = s->cursor; i < end; i++) {
		const struct bs_flow *f = bs_flow_at(w->flows, i);
		if (f == NULL)
			continue;
		if (s->n == s->want && f->bytes <= s->ent[s->n - 1].bytes)
			continue;
		uint32_t k = s->n < s->want ? s->n++ : s->n - 1;
		while (k > 0 && s->ent[k - 1].bytes < f->bytes) {
			s->ent[k] = s->ent[k - 1];
			k--;
		}
		struct bs_flow_snap_ent *e = &s->ent[k];
		e->key = f->key;
		e->server_side = f->server_side;
		e->fin_seen = f->fin_seen;
		e->bytes = f->bytes;
		e->idle_ms = now_ms > f->last_seen ? now_ms - f->last_seen : 0;
		/* A refused flow's app is the action's state: closed. */
		e->inspected = !f->act && f->app != NULL &&
			bs_smtp_flow_inspected(f->app);
		e->closed = f->act || (f->app != NULL &&
			bs_smtp_flow_closed(f->app));
	}
	s->cursor = end;
	if (end == cap) {
		w->snap = NULL;
		__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	}
}
