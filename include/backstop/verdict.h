/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict: does a bounce addressed to a protected domain answer mail
 * the domain really sent (legit), or not (backscatter)?
 *
 * Three objects, three lifetimes (as in detect.h):
 *  - struct bs_verdict_policy: compiled once from the configuration
 *    (domain table, BATV keys, relay matchers, parsed DKIM keys),
 *    immutable, shared by every worker (published through RCU by the
 *    control plane; for now built once at start).
 *  - struct bs_verdict_ctx: one per worker per policy: OpenSSL contexts,
 *    the DKIM budget of the second, the worker's counters.  Owner only.
 *  - struct bs_verdict_env: how the verdict reaches the shared outbound
 *    ledger and the storm rates (ops table, so tests, the classifier and
 *    a milter can supply their own or none).
 *
 * Evidence is taken cheapest first (BATV, ledger, relays, DKIM) and the
 * first proof of legitimacy ends the search; DKIM runs only when nothing
 * cheaper proved the bounce legit, and within a per-worker budget of
 * signature checks per second.  The policy (docs/VERDICT.md): any proof
 * of legitimacy wins; otherwise an original that claims the domain but
 * lacks what the domain always has is backscatter; otherwise unknown,
 * which a storm turns into backscatter.  The absence of a check never
 * proves anything.
 *
 * The verdict is taken at the end of the message only (after DATA or the
 * last BDAT chunk), never at RCPT: an address-verification callout
 * (MAIL FROM:<>, RCPT, QUIT) carries no message and is never judged.
 *
 * No EAL, no locks, no allocation per verdict.
 */
#ifndef BACKSTOP_VERDICT_H
#define BACKSTOP_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/detect.h"
#include "backstop/smtp.h"

/* enum bs_ledger_answer, the ledger's answer (contract 4). */
#include "backstop/ledger.h"
#include "backstop/storm.h"

enum bs_verdict {
	BS_VERDICT_NOT_BOUNCE = 0, /* not judged (see the reasons) */
	BS_VERDICT_LEGIT,
	BS_VERDICT_BACKSCATTER,
	BS_VERDICT_UNKNOWN,
};

/* Reason codes (counters_verdict.h has the list and its meanings). */
enum bs_verdict_reason {
#define BS_VERDICT_REASON_ENUM_(X, name, help) BS_VR_##name,
	BS_VERDICT_REASONS(BS_VERDICT_REASON_ENUM_, _)
#undef BS_VERDICT_REASON_ENUM_
	BS_VR__MAX
};
_Static_assert(BS_VR__MAX <= 64, "reasons are bits of a uint64_t");

#define BS_VR_BIT(name) (1ULL << BS_VR_##name)

/* "legit", "backscatter", "unknown", "not-bounce". */
const char *bs_verdict_name(enum bs_verdict v);
/* "batv_valid", ...: the reason's code as documented. */
const char *bs_verdict_reason_name(enum bs_verdict_reason r);

/* ---- policy ------------------------------------------------------- */

struct bs_verdict_policy;

/*
 * Compile the verdict settings of cfg (already validated by the loader)
 * into an immutable policy.  Returns NULL with a message in err when
 * memory runs out or a key does not load.  Start-up / control thread;
 * the policy does not refer to cfg afterwards.
 */
struct bs_verdict_policy *bs_verdict_policy_build(const struct bs_config *cfg,
	char *err, size_t errlen);

/* Free a policy no context uses any more.  NULL is fine. */
void bs_verdict_policy_free(struct bs_verdict_policy *p);

/* True if domain (any case, len bytes) is protected.  Any thread. */
bool bs_verdict_policy_protects(const struct bs_verdict_policy *p,
	const char *domain, size_t len);

/*
 * The ledger's and the storm detector's parameters from the verdict rows
 * of cfg (contract 5: those modules never parse configuration); n_parts
 * is the number of workers that record or note.  Other fields keep their
 * modules' defaults.  snapshot_path points into cfg.  Start-up.
 */
void bs_verdict_ledger_params(const struct bs_config *cfg,
	unsigned int n_parts, struct bs_ledger_params *p);
void bs_verdict_storm_params(const struct bs_config *cfg,
	unsigned int n_parts, struct bs_storm_params *p);

/* ---- per-worker context and environment ---------------------------- */

struct bs_verdict_env {
	/* The ledger: is this Message-ID (addr-spec inside <>, domain part
	 * lower-cased) one that left a protected domain?  NULL: no ledger. */
	enum bs_ledger_answer (*ledger)(void *arg, const char *id, size_t n);
	/* Is the recipient (tags stripped, lower case) or its domain in a
	 * bounce storm?  NULL: no storm mode. */
	bool (*storm)(void *arg, const char *rcpt, size_t n);
	/* A bounce to rcpt (tags stripped, lower case) is being judged:
	 * feeds the storm rates.  Optional. */
	void (*bounce)(void *arg, const char *rcpt, size_t n);
	void *arg;
};

struct bs_verdict_ctx;

/*
 * Per-worker context for policy p (which must outlive it).  cnt is the
 * worker's counter block (NULL: do not count).  Returns NULL when memory
 * or OpenSSL contexts cannot be had.  Start-up; then owner thread only.
 */
struct bs_verdict_ctx *bs_verdict_ctx_create(const struct bs_verdict_policy *p,
	struct bs_counters *cnt);
void bs_verdict_ctx_free(struct bs_verdict_ctx *vc);

/* Count into cnt from now on (a context built by the control thread
 * before its worker's block was known).  Before the owner uses it. */
void bs_verdict_ctx_set_counters(struct bs_verdict_ctx *vc,
	struct bs_counters *cnt);

/* ---- one verdict ---------------------------------------------------- */

struct bs_verdict_input {
	/* Envelope: reverse path ("" null sender, NULL unknown) and the
	 * transaction's recipients with their replies; reply 0 (pending,
	 * e.g. pipelined BDAT) counts as accepted, >= 400 as refused. */
	const char *mail_from;
	const struct bs_smtp_rcpt *rcpt;
	uint32_t nrcpt;
	/* What detection found (class, DSN fields, the original). */
	const struct bs_detect_result *det;
	/* The embedded original's raw header block (contract 3: CRLF
	 * lines, folds kept, transfer encoding undone), or NULL; hdr_cut
	 * when it was cut at its cap.  bs_verdict_input_init() fills them
	 * from det when detection keeps the block. */
	const uint8_t *hdr;
	size_t hdr_len;
	bool hdr_cut;
	/* Top-level In-Reply-To and References values of the bounce
	 * itself (auto-replies answer a message by them), or NULL. */
	const char *in_reply_to;
	const char *references;
	/* Wall clock, seconds since the epoch (BATV day stamps). */
	uint64_t now_s;
};

/*
 * Fill in with the envelope of rec (may be NULL), det, the bounce's own
 * In-Reply-To and References (det->mime, when present) and the
 * original's raw header block when detection keeps one.  Any thread.
 */
void bs_verdict_input_init(struct bs_verdict_input *in,
	const struct bs_smtp_record *rec, const struct bs_detect_result *det,
	uint64_t now_s);

struct bs_verdict_result {
	uint8_t verdict; /* enum bs_verdict */
	uint8_t action;  /* enum bs_cfg_action: deliver or refuse */
	uint16_t dkim_checks; /* signatures verified for this verdict */
	uint64_t reasons; /* BS_VR_BIT() of each reason */
	char domain[64];  /* the protected domain judged ("" if none; cut) */
};

/*
 * Judge one message at its end.  env may be NULL (no ledger, no storm).
 * Writes *out (always) and counts into the context's counters.  Returns
 * 0.  Allocates nothing itself (OpenSSL does, inside a DKIM check);
 * never reads past the buffers it is given.  Owner thread of vc.
 */
int bs_verdict_judge(struct bs_verdict_ctx *vc, const struct bs_verdict_env *env,
	const struct bs_verdict_input *in, struct bs_verdict_result *out);

/*
 * What the end-of-message event calls (the transaction stage, a milter):
 * bs_verdict_input_init(in, rec, det, now_s) then bs_verdict_judge().
 * rec gives the envelope (recipients with their replies so far), det the
 * finished detection result, now_s the wall clock.  Owner thread of vc.
 */
static inline int
bs_verdict_eom(struct bs_verdict_ctx *vc, const struct bs_verdict_env *env,
	const struct bs_smtp_record *rec, const struct bs_detect_result *det,
	uint64_t now_s, struct bs_verdict_result *out)
{
	struct bs_verdict_input in;
	bs_verdict_input_init(&in, rec, det, now_s);
	return bs_verdict_judge(vc, env, &in, out);
}

/*
 * Append `"verdict":"...","action":"...","reasons":[...]` (JSON members,
 * no braces) to buf (len bytes, NUL-terminated).  Returns the length
 * needed, like snprintf.  Any thread.
 */
size_t bs_verdict_result_json(const struct bs_verdict_result *r, char *buf,
	size_t len);

/* ---- evidence checks, exported for tests, fuzzers and benchmarks ---- */

/* BATV and other tags in a local part. */
enum bs_batv_form {
	BS_BATV_NONE = 0,   /* untagged */
	BS_BATV_PRVS,       /* prvs=KDDDHHHHHH=local (Exim, BATV draft): validated */
	BS_BATV_PRVS_CISCO, /* prvs=local=KDDDHHHHHH (Cisco): stripped */
	BS_BATV_BTV1,       /* btv1==TAG==local (Barracuda): stripped */
	BS_BATV_MSPRVS,     /* msprvs1=TAG=local (SparkPost): stripped */
	BS_BATV_SRS,        /* SRS0=HASH=TT=domain=local / SRS1=: stripped */
};

struct bs_batv_tag {
	uint8_t form;   /* enum bs_batv_form */
	uint8_t key;    /* PRVS: key digit */
	uint16_t day;   /* PRVS: expiry day stamp, 0..999 */
	char hash[7];   /* PRVS: 6 hex digits, lower case */
	const char *local; /* the local part without the tag (into addr) */
	size_t local_len;
	const char *domain; /* after the last '@' (into addr) */
	size_t domain_len;
};

/* Parse addr[0..len) (a recipient, no brackets).  Returns the form. */
enum bs_batv_form bs_batv_parse(const char *addr, size_t len,
	struct bs_batv_tag *t);

enum bs_batv_status {
	BS_BATV_ST_NONE = 0, /* nothing to check (untagged / other form) */
	BS_BATV_ST_VALID,
	BS_BATV_ST_EXPIRED,  /* right signature, day past */
	BS_BATV_ST_BAD,      /* wrong signature or no key with that digit */
};

/*
 * Check a PRVS tag as Exim's ${prvscheck} does: HMAC-SHA1 with the key
 * of the tag's digit over "K" "DDD" "local@domain", first 3 bytes in hex;
 * valid while (DDD - today) mod 1000 <= lifetime (today = now_s / 86400
 * mod 1000).  Owner thread of vc.
 */
enum bs_batv_status bs_batv_check(struct bs_verdict_ctx *vc,
	const struct bs_batv_tag *t, uint64_t now_s);

/* One hop of a Received chain: only what the receiving side wrote. */
struct bs_relay_hop {
	uint8_t fam;       /* 0 none, 4 or 6: the connecting client's address */
	uint8_t ip[16];
	char by[BS_HOST_MAX]; /* the receiving host, lower case ("" none) */
};

/*
 * Parse one Received value s[0..n) (unfolded or not): the address in
 * brackets the receiver recorded for the client (inside the comment
 * after "from", not a bracketed HELO name) and the "by" host.  Returns 0,
 * or -1 when neither is there.
 */
int bs_relay_hop_parse(const char *s, size_t n, struct bs_relay_hop *h);

/* True if the hop names one of the domain's relays (by host or client
 * address).  domain: lower case. */
bool bs_relay_hop_match(const struct bs_verdict_policy *p, const char *domain,
	size_t dlen, const struct bs_relay_hop *h);

enum bs_dkim_status {
	BS_DKIM_ST_NONE = 0, /* no signature of the domain */
	BS_DKIM_ST_VALID,    /* a signature of the domain verifies */
	BS_DKIM_ST_FAIL,     /* signatures of the domain, none verifies */
	BS_DKIM_ST_BUDGET,   /* signatures left unchecked: over budget */
	BS_DKIM_ST_UNCHECKED, /* the block is beyond what we index (cut) */
};

/*
 * Verify the DKIM signatures of domain (lower case) on the header block
 * hdr[0..len) (CRLF or LF lines, folds kept) with the policy's keys:
 * rsa-sha256 and ed25519-sha256, simple and relaxed header
 * canonicalisation; the body hash is not checked and l= is ignored.
 * *checks gets the number of signatures verified.  Owner thread of vc.
 */
enum bs_dkim_status bs_dkim_verify(struct bs_verdict_ctx *vc,
	const char *domain, size_t dlen, const uint8_t *hdr, size_t len,
	uint64_t now_s, unsigned int *checks);

#endif /* BACKSTOP_VERDICT_H */
