/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ledger's slow path: creation, the single writer (insert, renew,
 * expire, evict), the writer thread, and snapshots (ledger.h).
 *
 * One thread writes the hash table, so there are no update races to
 * reason about: workers only read it (QSBR) and only feed the writer
 * through their rings.  Every entry is allocated at creation, in one
 * array: `capacity` may be live, and a small slack holds the entries
 * deleted since the last grace period (a reader may still be looking at
 * one).  Live entries are chained oldest to newest, by time recorded
 * (kept sorted: a record older than the newest takes the newest's time,
 * a few milliseconds of ring latency at most), so expiry and eviction
 * take the head and a snapshot is written in order.
 *
 * Snapshot (docs/LEDGER.md): a 64-byte header (magic, version, sizes,
 * flags, save time, start of watching, count, secret), the entries
 * oldest first (key, time: 16 bytes), SHA-256 of all that.  Written to
 * PATH.tmp, fsync'd, renamed over PATH, directory fsync'd: a crash at
 * any point leaves the old snapshot or the new one, never a mix.
 */
#include "../dataplane/verdict/ledger_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "backstop/counters.h"

static_assert(sizeof(struct ledger_ent) == 40, "ledger entry is 40 bytes");
static_assert(sizeof(struct ledger_rec) == LEDGER_SNAP_ENT, "record size");
static_assert(crypto_shorthash_KEYBYTES == 16, "SipHash key is 128 bits");

/* Entries beyond capacity: deleted ones wait here for a grace period. */
#define LEDGER_SLACK_MIN 256u
/* A snapshot larger than this is refused before it is mapped. */
#define LEDGER_SNAP_MAX_BYTES                                                \
	((uint64_t)LEDGER_SNAP_HDR + LEDGER_SNAP_SUM +                       \
		(uint64_t)LEDGER_SNAP_ENT * 4 * BS_LEDGER_MAX_ENTRIES)

void
bs_ledger_params_default(struct bs_ledger_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_entries = BS_LEDGER_DEF_MAX_ENTRIES;
	p->ttl_s = BS_LEDGER_DEF_TTL_S;
	p->snapshot_period_s = BS_LEDGER_DEF_SNAPSHOT_PERIOD_S;
	p->max_gap_s = BS_LEDGER_DEF_MAX_GAP_S;
	p->ring_size = BS_LEDGER_DEF_RING_SIZE;
	p->n_parts = 1;
	p->drain_ms = BS_LEDGER_DEF_DRAIN_MS;
}

void
bs_ledger_log(const struct bs_ledger *l, int level, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->p.log != NULL)
		l->p.log(l->p.log_arg, level, msg);
	else
		fprintf(stderr, "backstop: ledger: %s\n", msg);
}

/* ---- little-endian fields ---- */

static void
put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void
put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_le32(const uint8_t *b)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t
get_le64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* ---- the age list and the table (writer only) ---- */

static int
match_key(struct cds_lfht_node *node, const void *key)
{
	const struct ledger_ent *e = ledger_ent_of(node);
	return e->key == *(const uint64_t *)key;
}

static void
list_unlink(struct bs_ledger *l, uint32_t i)
{
	struct ledger_ent *e = &l->ents[i];
	if (e->prev != LEDGER_NIL)
		l->ents[e->prev].next = e->next;
	else
		l->head = e->next;
	if (e->next != LEDGER_NIL)
		l->ents[e->next].prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = LEDGER_NIL;
}

static void
list_append(struct bs_ledger *l, uint32_t i)
{
	struct ledger_ent *e = &l->ents[i];
	e->next = LEDGER_NIL;
	e->prev = l->tail;
	if (l->tail != LEDGER_NIL)
		l->ents[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

/* Take entry i out of the table; it is reusable after a grace period. */
static void
ent_remove(struct bs_ledger *l, uint32_t i)
{
	rcu_read_lock();
	int rc = cds_lfht_del(l->ht, &l->ents[i].node);
	rcu_read_unlock();
	assert(rc == 0);
	(void)rc;
	list_unlink(l, i);
	l->ents[i].next = l->limbo;
	l->limbo = i;
	l->limbo_n++;
	l->live--;
}

/* Wait until no reader can hold a deleted entry, then make them free. */
static void
limbo_release(struct bs_ledger *l)
{
	if (l->limbo_n == 0)
		return;
	synchronize_rcu();
	while (l->limbo != LEDGER_NIL) {
		uint32_t i = l->limbo;
		l->limbo = l->ents[i].next;
		l->ents[i].next = l->free_list;
		l->free_list = i;
	}
	l->limbo_n = 0;
}

static void
insert(struct bs_ledger *l, uint64_t key, uint64_t seen, uint64_t now)
{
	if (seen > now)
		seen = now; /* a worker's clock ahead of ours */
	if (now - seen > l->ttl_s) {
		ledger_inc(&l->expirations, 1); /* stale on arrival */
		return;
	}
	if (l->tail != LEDGER_NIL && seen < l->ents[l->tail].seen_s)
		seen = l->ents[l->tail].seen_s;

	/* (QSBR: the read-side marks are free; the hash table asks for
	 * them around every call, and synchronize_rcu() must be outside.) */
	struct cds_lfht_iter it;
	rcu_read_lock();
	cds_lfht_lookup(l->ht, (unsigned long)key, match_key, &key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	rcu_read_unlock();
	if (node != NULL) {
		struct ledger_ent *e = ledger_ent_of(node);
		uint32_t i = (uint32_t)(e - l->ents);
		ledger_st(&e->seen_s, seen);
		if (l->tail != i) {
			list_unlink(l, i);
			list_append(l, i);
		}
		ledger_inc(&l->refreshes, 1);
		return;
	}
	if (l->live >= l->capacity) {
		ent_remove(l, l->head);
		ledger_inc(&l->evictions, 1);
	}
	if (l->free_list == LEDGER_NIL)
		limbo_release(l); /* slack used up within one step */
	assert(l->free_list != LEDGER_NIL);
	uint32_t i = l->free_list;
	struct ledger_ent *e = &l->ents[i];
	l->free_list = e->next;
	/* Release: a reader that matches the key sees the time (and, for
	 * ThreadSanitizer, which cannot see liburcu's own barriers, the
	 * publication is an edge it understands). */
	ledger_st(&e->seen_s, seen);
	__atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
	cds_lfht_node_init(&e->node);
	rcu_read_lock();
	cds_lfht_add(l->ht, (unsigned long)key, &e->node);
	rcu_read_unlock();
	list_append(l, i);
	l->live++;
	ledger_inc(&l->inserts, 1);
}

/* ---- sharing: the key, one writer per snapshot, the peer's entries ---- */

/* Most bytes of a secret file read (a key, not a document). */
#define LEDGER_SECRET_FILE_MAX 4096

static int
secret_from_file(struct bs_ledger *l, const char *path, char *err,
	size_t errlen)
{
	uint8_t buf[LEDGER_SECRET_FILE_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		snprintf(err, errlen, "ledger: secret file %s: %s", path,
			strerror(e));
		return -e;
	}
	if (n < 16) {
		snprintf(err, errlen, "ledger: secret file %s: %zd bytes, at "
				"least 16 needed", path, n);
		return -EINVAL;
	}
	/* A domain-separated hash: the same file keys every program. */
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		EVP_DigestUpdate(c, "backstop ledger key v1", 22) &&
		EVP_DigestUpdate(c, buf, (size_t)n) &&
		EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	sodium_memzero(buf, sizeof(buf));
	if (!ok || mdlen < 16) {
		snprintf(err, errlen, "ledger: SHA-256 unavailable");
		return -EINVAL;
	}
	memcpy(l->secret, md, 16);
	sodium_memzero(md, sizeof(md));
	l->secret_fixed = true;
	return 0;
}

/*
 * Two programs writing one snapshot would each replace the other's
 * entries with their own: the first to start holds PATH.lock (flock),
 * a second one is refused.  A lock that cannot be taken for another
 * reason (no directory yet) is only logged: the save says more.
 */
static int
lock_snapshot(struct bs_ledger *l, char *err, size_t errlen)
{
	char lp[PATH_MAX];
	snprintf(lp, sizeof(lp), "%s.lock", l->snapshot_path);
	int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		bs_ledger_log(l, LOG_WARNING, "lock %s: %s", lp,
			strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			snprintf(err, errlen, "ledger: snapshot %s is written "
					"by another program (its lock %s is held): "
					"give each program its own snapshot "
					"(milter.ledger_snapshot)",
				l->snapshot_path, lp);
			return -EBUSY;
		}
		bs_ledger_log(l, LOG_WARNING, "lock %s: %s", lp, strerror(e));
		return 0;
	}
	l->lock_fd = fd;
	return 0;
}

/* The union of two ledgers is watched since the later of their starts;
 * a broken watch on either side restarts it. */
static void
set_warm(struct bs_ledger *l, uint64_t w)
{
	if (w > ledger_ld(&l->warm_since_s))
		ledger_st(&l->warm_since_s, w);
}

/* Merge the peer's snapshot when it changed; judge its freshness. */
static void
import_peer(struct bs_ledger *l, uint64_t now)
{
	struct stat st;
	char why[256];
	const char *path = l->import_path;

	l->next_import_s = now + l->p.import_period_s;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (l->peer_saved_s == 0 && l->p.max_gap_s != 0 &&
				now - l->created_s > l->p.max_gap_s) {
			if (!ledger_ld(&l->peer_stale))
				bs_ledger_log(l, LOG_WARNING, "shared ledger: no "
					"snapshot at %s after %u s: its "
					"program's mail is unseen, the warm-up "
					"restarts until it appears", path,
					l->p.max_gap_s);
			ledger_st(&l->peer_stale, 1);
			set_warm(l, now);
		}
		return;
	}
	uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
		(uint64_t)st.st_mtim.tv_nsec;
	if (mt != l->peer_mtime_ns || (uint64_t)st.st_size != l->peer_size ||
			(uint64_t)st.st_ino != l->peer_ino) {
		l->peer_mtime_ns = mt;
		l->peer_size = (uint64_t)st.st_size;
		l->peer_ino = (uint64_t)st.st_ino;
		long rc = -EINVAL;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(why, sizeof(why), "open: %s", strerror(errno));
		} else if (st.st_size == 0 ||
				(uint64_t)st.st_size > LEDGER_SNAP_MAX_BYTES) {
			snprintf(why, sizeof(why), "%lld bytes",
				(long long)st.st_size);
		} else {
			void *m = mmap(NULL, (size_t)st.st_size, PROT_READ,
				MAP_PRIVATE, fd, 0);
			struct ledger_snap_info si;
			if (m == MAP_FAILED) {
				snprintf(why, sizeof(why), "mmap: %s",
					strerror(errno));
			} else {
				rc = bs_ledger_snapshot_check(m,
					(size_t)st.st_size, &si, why,
					sizeof(why));
				if (rc == 0 && memcmp(si.secret, l->secret,
						16) != 0) {
					snprintf(why, sizeof(why), "keyed with "
						"another secret (both programs "
						"need the same "
						"ledger.secret_file)");
					rc = -EINVAL;
				}
				if (rc == 0) {
					uint64_t hwm = l->import_hwm, n = 0;
					for (uint64_t k = 0; k < si.count; k++) {
						const uint8_t *r = si.ent +
							k * LEDGER_SNAP_ENT;
						uint64_t seen = get_le64(r + 8);
						if (seen < l->import_hwm)
							continue;
						insert(l, get_le64(r), seen, now);
						n++;
						hwm = seen;
					}
					l->import_hwm = hwm;
					ledger_inc(&l->imported, n);
					l->peer_warm_s = si.warm_s;
					l->peer_saved_s = si.saved_s;
					set_warm(l, l->peer_warm_s);
				}
				munmap(m, (size_t)st.st_size);
			}
		}
		if (fd >= 0)
			close(fd);
		if (rc < 0) {
			ledger_inc(&l->import_failures, 1);
			bs_ledger_log(l, LOG_WARNING, "shared ledger: %s not "
				"merged: %s", path, why);
		}
	}
	bool stale = l->p.max_gap_s != 0 && (l->peer_saved_s == 0
		? now - l->created_s > l->p.max_gap_s
		: now > l->peer_saved_s &&
			now - l->peer_saved_s > l->p.max_gap_s);
	if (stale && !ledger_ld(&l->peer_stale))
		bs_ledger_log(l, LOG_WARNING, "shared ledger: %s not saved "
			"for more than %u s: its program's mail may pass "
			"unseen, the warm-up restarts", path, l->p.max_gap_s);
	ledger_st(&l->peer_stale, stale ? 1 : 0);
	if (stale)
		set_warm(l, now);
}

static int save(struct bs_ledger *l, uint64_t now, bool clean, char *err,
	size_t errlen);

int
bs_ledger_tick(struct bs_ledger *l, uint64_t now)
{
	l->last_tick_s = now;
	if (l->pending != NULL) {
		for (uint64_t k = 0; k < l->pending_n; k++)
			insert(l, l->pending[k].key, l->pending[k].seen_s, now);
		free(l->pending);
		l->pending = NULL;
		l->pending_n = 0;
	}
	for (uint32_t w = 0; w < l->n_parts; w++) {
		struct bs_ledger_part *p = &l->parts[w];
		uint64_t tail = p->tail;
		uint64_t head = __atomic_load_n(&p->head, __ATOMIC_ACQUIRE);
		for (; tail != head; tail++) {
			struct ledger_rec r = p->ring[tail & p->mask];
			insert(l, r.key, r.seen_s, now);
		}
		__atomic_store_n(&p->tail, tail, __ATOMIC_RELEASE);
	}
	while (l->head != LEDGER_NIL) {
		uint64_t seen = l->ents[l->head].seen_s;
		if (seen <= now && now - seen <= l->ttl_s)
			break;
		ent_remove(l, l->head);
		ledger_inc(&l->expirations, 1);
	}
	if (l->import_path != NULL && now >= l->next_import_s)
		import_peer(l, now);
	limbo_release(l);
	ledger_st(&l->entries, l->live);

	int rc = 0;
	if (l->snapshot_path != NULL && l->p.snapshot_period_s != 0 &&
			now >= l->next_save_s) {
		char err[256];
		l->next_save_s = now + l->p.snapshot_period_s;
		rc = save(l, now, false, err, sizeof(err));
		if (rc < 0)
			bs_ledger_log(l, LOG_ERR, "%s", err);
	}
	return rc;
}

/* ---- snapshots ---- */

struct snap_writer {
	int fd;
	EVP_MD_CTX *md;
	uint8_t buf[65536];
	size_t n;
	int err; /* first errno */
};

static void
sw_flush(struct snap_writer *w)
{
	size_t off = 0;
	while (off < w->n && w->err == 0) {
		ssize_t r = write(w->fd, w->buf + off, w->n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			w->err = r < 0 ? errno : EIO;
		else
			off += (size_t)r;
	}
	w->n = 0;
}

static void
sw_put(struct snap_writer *w, const uint8_t *b, size_t n, bool digest)
{
	if (digest && EVP_DigestUpdate(w->md, b, n) != 1 && w->err == 0)
		w->err = EIO;
	while (n > 0) {
		size_t k = sizeof(w->buf) - w->n;
		if (k > n)
			k = n;
		memcpy(w->buf + w->n, b, k);
		w->n += k;
		b += k;
		n -= k;
		if (w->n == sizeof(w->buf))
			sw_flush(w);
	}
}

static int
fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int
save(struct bs_ledger *l, uint64_t now, bool clean, char *err, size_t errlen)
{
	if (l->snapshot_path == NULL) {
		snprintf(err, errlen, "no snapshot path configured");
		return -ENOENT;
	}
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", l->snapshot_path) >=
			sizeof(tmp)) {
		snprintf(err, errlen, "snapshot path too long");
		ledger_inc(&l->save_failures, 1);
		return -ENAMETOOLONG;
	}
	struct snap_writer *w = malloc(sizeof(*w));
	if (w == NULL) {
		snprintf(err, errlen, "snapshot: out of memory");
		ledger_inc(&l->save_failures, 1);
		return -ENOMEM;
	}
	w->n = 0;
	w->err = 0;
	w->md = EVP_MD_CTX_new();
	w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;
	const char *what = "open";
	if (w->fd < 0) {
		rc = -errno;
		goto out;
	}
	if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		what = "SHA-256";
		goto out;
	}
	uint8_t hdr[LEDGER_SNAP_HDR];
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, LEDGER_SNAP_MAGIC, 8);
	put_le32(hdr + 8, LEDGER_SNAP_VERSION);
	put_le32(hdr + 12, LEDGER_SNAP_HDR);
	put_le32(hdr + 16, LEDGER_SNAP_ENT);
	put_le32(hdr + 20, clean ? LEDGER_SNAP_CLEAN : 0);
	put_le64(hdr + 24, now);
	put_le64(hdr + 32, l->warm_since_s);
	put_le64(hdr + 40, l->live);
	memcpy(hdr + 48, l->secret, 16);
	sw_put(w, hdr, sizeof(hdr), true);
	for (uint32_t i = l->head; i != LEDGER_NIL; i = l->ents[i].next) {
		uint8_t rec[LEDGER_SNAP_ENT];
		put_le64(rec, l->ents[i].key);
		put_le64(rec + 8, l->ents[i].seen_s);
		sw_put(w, rec, sizeof(rec), true);
	}
	uint8_t sum[EVP_MAX_MD_SIZE];
	unsigned int sumlen = 0;
	if (EVP_DigestFinal_ex(w->md, sum, &sumlen) != 1 ||
			sumlen != LEDGER_SNAP_SUM) {
		rc = -EIO;
		what = "SHA-256";
		goto out;
	}
	sw_put(w, sum, LEDGER_SNAP_SUM, false);
	sw_flush(w);
	what = "write";
	if (w->err != 0) {
		rc = -w->err;
		goto out;
	}
	what = "fsync";
	if (fsync(w->fd) < 0) {
		rc = -errno;
		goto out;
	}
	what = "close";
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) < 0) {
		rc = -errno;
		goto out;
	}
	what = "rename";
	if (rename(tmp, l->snapshot_path) < 0) {
		rc = -errno;
		goto out;
	}
	what = "fsync of the directory";
	rc = fsync_dir(l->snapshot_path);
out:
	if (w->fd >= 0)
		close(w->fd);
	EVP_MD_CTX_free(w->md);
	free(w);
	if (rc < 0) {
		snprintf(err, errlen, "snapshot %s: %s: %s (the previous "
				"snapshot is kept)", tmp, what, strerror(-rc));
		if (strcmp(what, "rename") != 0 &&
				strcmp(what, "fsync of the directory") != 0)
			unlink(tmp);
		ledger_inc(&l->save_failures, 1);
		return rc;
	}
	ledger_inc(&l->saves, 1);
	ledger_st(&l->last_save_s, now);
	return 0;
}

int
bs_ledger_snapshot_check(const uint8_t *buf, size_t len,
	struct ledger_snap_info *si, char *err, size_t errlen)
{
	if (len < LEDGER_SNAP_HDR + LEDGER_SNAP_SUM) {
		snprintf(err, errlen, "truncated (%zu bytes)", len);
		return -EINVAL;
	}
	if (memcmp(buf, LEDGER_SNAP_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a Backstop ledger snapshot "
				"(foreign file)");
		return -EINVAL;
	}
	uint32_t version = get_le32(buf + 8);
	if (version != LEDGER_SNAP_VERSION) {
		snprintf(err, errlen, "format version %u; this program "
				"reads version %u", version, LEDGER_SNAP_VERSION);
		return -EINVAL;
	}
	if (get_le32(buf + 12) != LEDGER_SNAP_HDR ||
			get_le32(buf + 16) != LEDGER_SNAP_ENT) {
		snprintf(err, errlen, "foreign layout (header %u, entry %u "
				"bytes)", get_le32(buf + 12), get_le32(buf + 16));
		return -EINVAL;
	}
	uint64_t count = get_le64(buf + 40);
	uint64_t room = (len - LEDGER_SNAP_HDR - LEDGER_SNAP_SUM);
	if (room % LEDGER_SNAP_ENT != 0 || count != room / LEDGER_SNAP_ENT) {
		snprintf(err, errlen, "%zu bytes do not hold the %llu entries "
				"the header announces (truncated or extended)", len,
			(unsigned long long)count);
		return -EINVAL;
	}
	uint8_t sum[EVP_MAX_MD_SIZE];
	unsigned int sumlen = 0;
	if (EVP_Digest(buf, len - LEDGER_SNAP_SUM, sum, &sumlen, EVP_sha256(),
			NULL) != 1 || sumlen != LEDGER_SNAP_SUM) {
		snprintf(err, errlen, "SHA-256 unavailable");
		return -EINVAL;
	}
	if (memcmp(sum, buf + len - LEDGER_SNAP_SUM, LEDGER_SNAP_SUM) != 0) {
		snprintf(err, errlen, "checksum mismatch (corrupt)");
		return -EINVAL;
	}
	uint32_t flags = get_le32(buf + 20);
	if (flags & ~LEDGER_SNAP_CLEAN) {
		snprintf(err, errlen, "unknown flags 0x%x", flags);
		return -EINVAL;
	}
	uint64_t saved = get_le64(buf + 24);
	uint64_t warm = get_le64(buf + 32);
	if (warm > saved) {
		snprintf(err, errlen, "watching starts after the save "
				"(corrupt)");
		return -EINVAL;
	}
	const uint8_t *ent = buf + LEDGER_SNAP_HDR;
	uint64_t prev = 0;
	for (uint64_t k = 0; k < count; k++) {
		uint64_t seen = get_le64(ent + k * LEDGER_SNAP_ENT + 8);
		if (seen < prev || seen > saved) {
			snprintf(err, errlen, "entry %llu out of order "
					"(corrupt)", (unsigned long long)k);
			return -EINVAL;
		}
		prev = seen;
	}
	si->flags = flags;
	si->saved_s = saved;
	si->warm_s = warm;
	si->count = count;
	si->secret = buf + 48;
	si->ent = ent;
	return 0;
}

long
bs_ledger_snapshot_parse(struct bs_ledger *l, const uint8_t *buf, size_t len,
	uint64_t now, char *err, size_t errlen)
{
	struct ledger_snap_info si;
	if (bs_ledger_snapshot_check(buf, len, &si, err, errlen) < 0)
		return -EINVAL;
	if (l->secret_fixed && memcmp(si.secret, l->secret, 16) != 0) {
		snprintf(err, errlen, "keyed with another secret than "
				"ledger.secret_file (was the file changed?)");
		return -EINVAL;
	}
	uint64_t count = si.count, saved = si.saved_s, warm = si.warm_s;
	uint32_t flags = si.flags;
	const uint8_t *ent = si.ent;

	/* Accepted.  Keep the newest `capacity` entries. */
	uint64_t skip = count > l->capacity ? count - l->capacity : 0;
	uint64_t n = count - skip;
	struct ledger_rec *staged = NULL;
	if (n > 0) {
		staged = malloc(n * sizeof(*staged));
		if (staged == NULL) {
			snprintf(err, errlen, "out of memory for %llu entries",
				(unsigned long long)n);
			return -ENOMEM;
		}
		for (uint64_t k = 0; k < n; k++) {
			const uint8_t *r = ent + (skip + k) * LEDGER_SNAP_ENT;
			staged[k].key = get_le64(r);
			staged[k].seen_s = get_le64(r + 8);
		}
	}
	free(l->pending);
	l->pending = staged;
	l->pending_n = n;
	if (skip > 0)
		ledger_inc(&l->evictions, skip);
	memcpy(l->secret, buf + 48, 16);

	uint64_t gap = now > saved ? now - saved : 0;
	if (!(flags & LEDGER_SNAP_CLEAN)) {
		bs_ledger_log(l, LOG_WARNING, "the previous run did not stop "
			"cleanly (last snapshot %llu s before this start): "
			"outbound mail it saw after that may be unrecorded, so "
			"the warm-up starts again (%u s)",
			(unsigned long long)gap, l->p.ttl_s);
		warm = now;
	} else if (l->p.max_gap_s != 0 && gap > l->p.max_gap_s) {
		bs_ledger_log(l, LOG_WARNING, "stopped %llu s ago (more than "
			"max_gap_s %u): outbound mail may have passed unseen, "
			"so the warm-up starts again (%u s)",
			(unsigned long long)gap, l->p.max_gap_s, l->p.ttl_s);
		warm = now;
	}
	l->warm_since_s = warm;
	ledger_st(&l->last_save_s, now);
	return (long)n;
}

static void
load(struct bs_ledger *l, uint64_t now)
{
	const char *path = l->snapshot_path;
	char why[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		bs_ledger_log(l, LOG_INFO, "no snapshot at %s: starting empty, "
			"warming up for %u s", path, l->p.ttl_s);
		return;
	}
	long rc = -EINVAL;
	struct stat st;
	if (fd < 0) {
		snprintf(why, sizeof(why), "open: %s", strerror(errno));
	} else if (fstat(fd, &st) < 0) {
		snprintf(why, sizeof(why), "stat: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(why, sizeof(why), "not a regular file");
	} else if ((uint64_t)st.st_size > LEDGER_SNAP_MAX_BYTES) {
		snprintf(why, sizeof(why), "%lld bytes: larger than any "
				"snapshot", (long long)st.st_size);
	} else if (st.st_size == 0) {
		rc = bs_ledger_snapshot_parse(l, (const uint8_t *)"", 0, now,
			why, sizeof(why));
	} else {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			fd, 0);
		if (m == MAP_FAILED) {
			snprintf(why, sizeof(why), "mmap: %s", strerror(errno));
		} else {
			rc = bs_ledger_snapshot_parse(l, m, (size_t)st.st_size,
				now, why, sizeof(why));
			munmap(m, (size_t)st.st_size);
		}
	}
	if (fd >= 0)
		close(fd);
	if (rc >= 0) {
		bs_ledger_log(l, LOG_INFO, "snapshot %s: %ld entries loaded; "
			"%s", path, rc,
			now >= l->warm_since_s &&
					now - l->warm_since_s >= l->p.ttl_s ?
				"warm" : "still warming up");
		return;
	}
	char kept[PATH_MAX];
	snprintf(kept, sizeof(kept), "%s.refused", path);
	const char *note = "";
	if (fd >= 0 && rename(path, kept) == 0)
		note = " (kept as .refused)";
	bs_ledger_log(l, LOG_WARNING, "snapshot %s refused: %s%s; the ledger "
		"starts empty and warms up for %u s", path, why, note,
		l->p.ttl_s);
}

/* ---- creation and teardown ---- */

static uint64_t
pow2_at_least(uint64_t n)
{
	uint64_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

struct bs_ledger *
bs_ledger_create(const struct bs_ledger_params *pin, uint64_t now, char *err,
	size_t errlen)
{
	struct bs_ledger_params p = *pin;
	struct bs_ledger_params d;
	bs_ledger_params_default(&d);
	if (p.max_entries == 0)
		p.max_entries = d.max_entries;
	if (p.ttl_s == 0)
		p.ttl_s = d.ttl_s;
	if (p.ring_size == 0)
		p.ring_size = d.ring_size;
	if (p.n_parts == 0)
		p.n_parts = 1;
	if (p.drain_ms == 0)
		p.drain_ms = d.drain_ms;
	if (p.max_entries < BS_LEDGER_MIN_ENTRIES ||
			p.max_entries > BS_LEDGER_MAX_ENTRIES) {
		snprintf(err, errlen, "ledger: max_entries %u outside %u..%u",
			p.max_entries, BS_LEDGER_MIN_ENTRIES,
			BS_LEDGER_MAX_ENTRIES);
		return NULL;
	}
	if (p.n_parts > BS_LEDGER_MAX_PARTS || p.ring_size > (1u << 24) ||
			(p.ring_size & (p.ring_size - 1)) != 0) {
		snprintf(err, errlen, "ledger: n_parts %u (max %u) or "
				"ring_size %u (a power of two up to 2^24) out of "
				"range", p.n_parts, BS_LEDGER_MAX_PARTS,
			p.ring_size);
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "ledger: libsodium failed to start");
		return NULL;
	}
	struct bs_ledger *l = aligned_alloc(64, sizeof(*l));
	if (l == NULL)
		goto nomem;
	memset(l, 0, sizeof(*l));
	l->p = p;
	l->p.snapshot_path = NULL;
	l->ttl_s = p.ttl_s;
	l->capacity = p.max_entries;
	uint32_t slack = p.max_entries / 64;
	if (slack < LEDGER_SLACK_MIN)
		slack = LEDGER_SLACK_MIN;
	l->pool = p.max_entries + slack;
	l->head = l->tail = l->free_list = l->limbo = LEDGER_NIL;
	l->lock_fd = -1;
	l->p.secret_file = l->p.import_path = NULL; /* copies below */
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (p.snapshot_path != NULL && p.snapshot_path[0] != '\0') {
		l->snapshot_path = strdup(p.snapshot_path);
		if (l->snapshot_path == NULL)
			goto nomem;
		if (strlen(l->snapshot_path) + sizeof(".refused") > PATH_MAX) {
			snprintf(err, errlen, "ledger: snapshot path too long");
			bs_ledger_destroy(l);
			return NULL;
		}
	}

	l->ents = calloc(l->pool, sizeof(*l->ents));
	if (l->ents == NULL)
		goto nomem;
	for (uint32_t i = l->pool; i-- > 0;) {
		l->ents[i].prev = LEDGER_NIL;
		l->ents[i].next = l->free_list;
		l->free_list = i;
	}
	/* Fixed size, no resize thread: one bucket per entry at most. */
	l->nr_buckets = pow2_at_least(p.max_entries);
	l->ht = cds_lfht_new(l->nr_buckets, l->nr_buckets, l->nr_buckets, 0,
		NULL);
	if (l->ht == NULL)
		goto nomem;
	l->n_parts = p.n_parts;
	l->parts = aligned_alloc(64, p.n_parts * sizeof(*l->parts));
	if (l->parts == NULL)
		goto nomem;
	memset(l->parts, 0, p.n_parts * sizeof(*l->parts));
	for (uint32_t w = 0; w < p.n_parts; w++) {
		l->parts[w].ring = calloc(p.ring_size, sizeof(struct ledger_rec));
		if (l->parts[w].ring == NULL)
			goto nomem;
		l->parts[w].mask = p.ring_size - 1;
		l->parts[w].l = l;
	}
	l->bytes = sizeof(*l) + (uint64_t)l->pool * sizeof(*l->ents) +
		l->nr_buckets * sizeof(struct cds_lfht_node) +
		(uint64_t)p.n_parts * (sizeof(*l->parts) +
			p.ring_size * sizeof(struct ledger_rec));

	randombytes_buf(l->secret, sizeof(l->secret));
	if (p.secret_file != NULL && p.secret_file[0] != '\0' &&
			secret_from_file(l, p.secret_file, err, errlen) < 0) {
		bs_ledger_destroy(l);
		return NULL;
	}
	if (p.import_path != NULL && p.import_path[0] != '\0') {
		if (!l->secret_fixed) {
			snprintf(err, errlen, "ledger: sharing with %s needs "
					"ledger.secret_file (both programs must "
					"key ids alike)", p.import_path);
			bs_ledger_destroy(l);
			return NULL;
		}
		l->import_path = strdup(p.import_path);
		if (l->import_path == NULL)
			goto nomem;
		if (l->p.import_period_s == 0)
			l->p.import_period_s = BS_LEDGER_DEF_IMPORT_PERIOD_S;
	}
	l->created_s = now;
	if (l->snapshot_path != NULL && lock_snapshot(l, err, errlen) < 0) {
		bs_ledger_destroy(l);
		return NULL;
	}
	l->warm_since_s = now;
	l->last_tick_s = now;
	if (l->snapshot_path != NULL) {
		ledger_st(&l->last_save_s, now);
		load(l, now);
		l->next_save_s = now + p.snapshot_period_s;
	}
	return l;
nomem:
	snprintf(err, errlen, "ledger: out of memory (max_entries %u: about "
			"%llu MiB)", p.max_entries,
		(unsigned long long)(((uint64_t)p.max_entries *
			(sizeof(struct ledger_ent) + 32)) >> 20));
	bs_ledger_destroy(l);
	return NULL;
}

/* The table must be empty to be destroyed, and deleting takes a
 * registered RCU thread: a short-lived one, so that the caller's own
 * registration does not matter. */
static void *
empty_table(void *arg)
{
	struct bs_ledger *l = arg;
	rcu_register_thread();
	while (l->head != LEDGER_NIL)
		ent_remove(l, l->head);
	rcu_unregister_thread();
	return NULL;
}

void
bs_ledger_destroy(struct bs_ledger *l)
{
	if (l == NULL)
		return;
	if (l->ht != NULL) {
		pthread_t t;
		if (l->head != LEDGER_NIL &&
				pthread_create(&t, NULL, empty_table, l) == 0)
			pthread_join(t, NULL);
		if (l->head == LEDGER_NIL)
			cds_lfht_destroy(l->ht, NULL);
	}
	if (l->parts != NULL)
		for (uint32_t w = 0; w < l->n_parts; w++)
			free(l->parts[w].ring);
	free(l->parts);
	free(l->ents);
	free(l->pending);
	free(l->snapshot_path);
	free(l->import_path);
	if (l->lock_fd >= 0)
		close(l->lock_fd); /* releases the flock */
	sodium_memzero(l->secret, sizeof(l->secret));
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

struct bs_ledger_part *
bs_ledger_part(struct bs_ledger *l, unsigned int idx)
{
	return idx < l->n_parts ? &l->parts[idx] : NULL;
}

/* ---- the writer thread ---- */

static uint64_t
wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

static void *
writer_main(void *arg)
{
	struct bs_ledger *l = arg;
	rcu_register_thread();
	bs_ledger_tick(l, wall_s());
	pthread_mutex_lock(&l->mu);
	l->started = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);

	for (;;) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		uint64_t ns = (uint64_t)dl.tv_nsec +
			(uint64_t)l->p.drain_ms * 1000000u;
		dl.tv_sec += (time_t)(ns / 1000000000u);
		dl.tv_nsec = (long)(ns % 1000000000u);

		/* Offline while asleep: a grace period never waits on us. */
		rcu_thread_offline();
		pthread_mutex_lock(&l->mu);
		while (!l->stop_req && l->save_gen == l->done_gen &&
				pthread_cond_timedwait(&l->cv, &l->mu, &dl) == 0)
			;
		bool stop = l->stop_req;
		uint64_t gen = l->save_gen;
		bool want_save = gen != l->done_gen;
		pthread_mutex_unlock(&l->mu);
		rcu_thread_online();

		uint64_t now = wall_s();
		bs_ledger_tick(l, now);
		if (stop)
			break;
		if (want_save) {
			char err[256] = "";
			int rc = save(l, now, false, err, sizeof(err));
			pthread_mutex_lock(&l->mu);
			l->save_rc = rc;
			snprintf(l->save_err, sizeof(l->save_err), "%s", err);
			l->done_gen = gen;
			pthread_cond_broadcast(&l->cv);
			pthread_mutex_unlock(&l->mu);
		}
	}
	int rc = 0;
	char err[256] = "";
	if (l->snapshot_path != NULL) {
		rc = save(l, wall_s(), true, err, sizeof(err));
		if (rc < 0)
			bs_ledger_log(l, LOG_ERR, "%s", err);
	}
	/* Requests that came with the stop are answered by the last save. */
	pthread_mutex_lock(&l->mu);
	l->save_rc = rc;
	snprintf(l->save_err, sizeof(l->save_err), "%s", err);
	l->done_gen = l->save_gen;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	rcu_unregister_thread();
	return NULL;
}

int
bs_ledger_start(struct bs_ledger *l)
{
	if (l->running)
		return -EALREADY;
	l->stop_req = l->started = false;
	int rc = pthread_create(&l->thread, NULL, writer_main, l);
	if (rc != 0)
		return -rc;
	l->running = true;
	pthread_mutex_lock(&l->mu);
	while (!l->started)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
	return 0;
}

void
bs_ledger_stop(struct bs_ledger *l)
{
	if (l == NULL)
		return;
	if (!l->running) {
		if (l->snapshot_path != NULL) {
			char err[256];
			if (save(l, l->last_tick_s, true, err, sizeof(err)) < 0)
				bs_ledger_log(l, LOG_ERR, "%s", err);
		}
		return;
	}
	pthread_mutex_lock(&l->mu);
	l->stop_req = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	l->running = false;
}

int
bs_ledger_save(struct bs_ledger *l, char *err, size_t errlen)
{
	if (l->snapshot_path == NULL) {
		snprintf(err, errlen, "no snapshot path configured");
		return -ENOENT;
	}
	if (!l->running)
		return save(l, l->last_tick_s, false, err, errlen);
	pthread_mutex_lock(&l->mu);
	/* Generations: a request is answered by a save that began after
	 * it was made, whoever else asked meanwhile. */
	uint64_t my = ++l->save_gen;
	pthread_cond_broadcast(&l->cv);
	while (l->done_gen < my)
		pthread_cond_wait(&l->cv, &l->mu);
	int rc = l->save_rc;
	snprintf(err, errlen, "%s", l->save_err);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

/* ---- figures ---- */

void
bs_ledger_stats(const struct bs_ledger *l, uint64_t now,
	struct bs_ledger_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (uint32_t w = 0; w < l->n_parts; w++) {
		st->recorded += ledger_ld(&l->parts[w].recorded);
		st->ring_dropped += ledger_ld(&l->parts[w].dropped);
		st->bad_msgid += ledger_ld(&l->parts[w].bad);
	}
	st->entries = ledger_ld(&l->entries);
	st->capacity = l->capacity;
	st->inserts = ledger_ld(&l->inserts);
	st->refreshes = ledger_ld(&l->refreshes);
	st->evictions = ledger_ld(&l->evictions);
	st->expirations = ledger_ld(&l->expirations);
	st->snapshot_saves = ledger_ld(&l->saves);
	st->snapshot_failures = ledger_ld(&l->save_failures);
	uint64_t last = ledger_ld(&l->last_save_s);
	st->snapshot_age_s = last != 0 && now > last ? now - last : 0;
	uint64_t warm = ledger_ld(&l->warm_since_s);
	st->warm_since_s = warm;
	st->warming = now < warm || now - warm < l->ttl_s;
	st->imported = ledger_ld(&l->imported);
	st->import_failures = ledger_ld(&l->import_failures);
	st->peer_stale = ledger_ld(&l->peer_stale) != 0;
	st->bytes = l->bytes;
}

void
bs_ledger_counters(const struct bs_ledger *l, uint64_t now,
	struct bs_counters *c)
{
	if (l == NULL)
		return;
	struct bs_ledger_stats st;
	bs_ledger_stats(l, now, &st);
	BS_CNT_ADD(c, ledger_recorded, st.recorded);
	BS_CNT_ADD(c, ledger_ring_dropped, st.ring_dropped);
	BS_CNT_ADD(c, ledger_bad_msgid, st.bad_msgid);
	BS_CNT_ADD(c, ledger_inserts, st.inserts);
	BS_CNT_ADD(c, ledger_refreshes, st.refreshes);
	BS_CNT_ADD(c, ledger_evictions, st.evictions);
	BS_CNT_ADD(c, ledger_expirations, st.expirations);
	BS_CNT_ADD(c, ledger_entries, st.entries);
	BS_CNT_ADD(c, ledger_snapshot_saves, st.snapshot_saves);
	BS_CNT_ADD(c, ledger_snapshot_failures, st.snapshot_failures);
	BS_CNT_ADD(c, ledger_snapshot_age_seconds, st.snapshot_age_s);
	BS_CNT_ADD(c, ledger_warming, st.warming ? 1 : 0);
	BS_CNT_ADD(c, ledger_imported, st.imported);
	BS_CNT_ADD(c, ledger_import_failures, st.import_failures);
	BS_CNT_ADD(c, ledger_peer_stale, st.peer_stale ? 1 : 0);
}
