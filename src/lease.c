/* Pessimistic leases: validation, holder ids, the waiting loop, local
 * deadlines, renew/release, fenced writes and inspection. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lease.h"
#include "utf8.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)

int lks_lease_set_table(lks_conn *c, const char *table)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!lks_ident_valid(table))
		return lks_set_error(c, LKS_EINVAL, "lease table name is not a plain identifier");
	snprintf(c->lease_table, sizeof c->lease_table, "%s", table);
	c->owner_col = c->payload_col = -1;
	return LKS_OK;
}

static int table_q(lks_conn *c, char out[QMAX])
{
	if (lks_ident_quote(c->lease_table, c->ops->quote, out, QMAX))
		return lks_set_error(c, LKS_EINVAL, "lease table name is not a plain identifier");
	return LKS_OK;
}

int lks_lease_table_q(lks_conn *c, char *out)
{
	return table_q(c, out);
}

static int owner_column(lks_conn *c, const char *t, bool *has);
static int check_name(lks_conn *c, const char *name);
static int fill_info(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info);
static int check_info_version(lks_conn *c, const lks_lease_info *info);
static void put_info(lks_lease_info *out, const lks_lease_info *info);

int lks_lease_owner_column(lks_conn *c, const char *t, bool *has)
{
	return owner_column(c, t, has);
}

int lks_lease_check_name(lks_conn *c, const char *name)
{
	return check_name(c, name);
}

int lks_lease_info_fill(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info)
{
	return fill_info(c, r, row, info);
}

int lks_lease_info_check(lks_conn *c, const lks_lease_info *info)
{
	return check_info_version(c, info);
}

void lks_lease_info_put(lks_lease_info *out, const lks_lease_info *info)
{
	put_info(out, info);
}

int lks_lease_install(lks_conn *c)
{
	char t[QMAX];
	int rc = lks_conn_check(c);
	if (rc || (rc = table_q(c, t)))
		return rc;
	c->owner_col = c->payload_col = -1;
	return c->ops->lease_install(c, t);
}

/* Whether the lease table has the owner column, asked once per handle and
 * table (lks_lease_install and lks_lease_set_table ask again). */
static int owner_column(lks_conn *c, const char *t, bool *has)
{
	int rc;
	if (c->owner_col < 0) {
		if ((rc = c->ops->lease_has_owner(c, t, has)))
			return rc;
		c->owner_col = *has;
	}
	*has = c->owner_col == 1;
	return LKS_OK;
}

static int check_name(lks_conn *c, const char *name)
{
	size_t n;
	if (!name)
		return lks_set_error(c, LKS_EINVAL, "lease name is NULL");
	n = strnlen(name, LKS_LEASE_NAME_MAX + 1);
	if (n == 0)
		return lks_set_error(c, LKS_EINVAL, "lease name is empty");
	if (n > LKS_LEASE_NAME_MAX)
		return lks_set_error(c, LKS_EINVAL, "lease name is longer than %d bytes",
		                     LKS_LEASE_NAME_MAX);
	/* the same rule on both databases: PostgreSQL refuses such text itself,
	 * and a name that is not UTF-8 could not be printed back losslessly */
	if (!lks_utf8_valid(name))
		return lks_set_error(c, LKS_EINVAL, "lease name is not valid UTF-8");
	return LKS_OK;
}

static int check_ttl(lks_conn *c, int64_t ttl_ms)
{
	if (ttl_ms <= 0 || ttl_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "TTL must be 1..%lld ms, got %lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS, (long long)ttl_ms);
	return LKS_OK;
}

/* How long before the server's expiry the holder stops relying on the lease:
 * the margin (a tenth of the TTL unless fixed) plus the clock-offset bound of
 * engines whose nodes each decide expiry by their own clock. */
static int64_t margin_of(const lks_lease *l, int64_t ttl_us)
{
	return (l->margin_us < 0 ? ttl_us / 10 : l->margin_us) + l->clock_offset_us;
}

/* send time + remaining TTL as the server computed it - margin: never later
 * than the server's own expiry, since the server started counting after we
 * sent the request */
static void set_deadline(lks_lease *l, int64_t sent_us, int64_t remaining_us)
{
	atomic_store(&l->granted_us, remaining_us);
	atomic_store(&l->deadline_us, sent_us + remaining_us - margin_of(l, l->ttl_us));
}

void lks_lease_set_deadline(lks_lease *l, int64_t sent_us, int64_t remaining_us)
{
	set_deadline(l, sent_us, remaining_us);
}

/* A waiter in the server's line polls once on its own after this long, so a
 * stalled head or a baton left behind costs at most this per hand-off. */
#define QUEUE_PATIENCE_MAX_US 1000000
#define DELAY_MAX_US 60000000LL

static void baton_unregister(lks_lease *l)
{
	lks_conn *c = l->baton_conn;
	if (!c)
		return;
	for (lks_lease **p = &c->batons; *p; p = &(*p)->baton_next)
		if (*p == l) {
			*p = l->baton_next;
			break;
		}
	l->baton_conn = NULL;
	l->baton_next = NULL;
}

int64_t lks_poll_delay_us(int attempt, bool head, int64_t base_us, int64_t max_us,
                          int64_t holder_left_us, int64_t wait_left_us, uint64_t *rng)
{
	int64_t delay;
	if (head) /* head of the line while the holder has no baton: poll alone */
		delay = base_us / 2 + (int64_t)(lks_rng_next(rng) % (uint64_t)(base_us / 2 + 1));
	else
		delay = lks_backoff_us(attempt, base_us, max_us, rng);
	/* never sleep past the holder's expiry or our own deadline */
	if (holder_left_us >= 0 && delay > holder_left_us + 500)
		delay = holder_left_us + 500;
	if (delay > wait_left_us)
		delay = wait_left_us;
	return delay > 0 ? delay : 0;
}

int64_t lks_line_wait_us(int64_t holder_left_us, bool released, int64_t wait_left_us)
{
	int64_t delay;
	if (holder_left_us > 0)
		delay = holder_left_us + 1000;
	else if (released)
		delay = QUEUE_PATIENCE_MAX_US;
	else
		delay = LKS_BATON_STALE_MS * 1000 + holder_left_us + 1000;
	if (delay < 1000)
		delay = 1000;
	if (delay > QUEUE_PATIENCE_MAX_US)
		delay = QUEUE_PATIENCE_MAX_US;
	if (delay > wait_left_us)
		delay = wait_left_us;
	return delay;
}

/* the session ended (close, reset): its batons are gone with it */
static void forget_batons(lks_conn *c)
{
	while (c->batons)
		baton_unregister(c->batons);
}

static void baton_register(lks_conn *c, lks_lease *l)
{
	c->session_end = forget_batons;
	l->baton_conn = c;
	l->baton_next = c->batons;
	c->batons = l;
}

/* Give the baton back without losing the error the caller will see. */
static void baton_give_quietly(lks_conn *c, uint64_t baton)
{
	lks_error_saved saved;
	if (!c->native)
		return;
	lks_error_save(c, &saved);
	c->ops->baton_give(c, baton);
	lks_error_restore(c, &saved);
}

/* what each version of lks_lease_acquire_options has (2: the waiting room,
 * 3: the owner, 4: the cancel token, 5: the payload) */
static const size_t acquire_sizes[] = {
	offsetof(lks_lease_acquire_options, waiting_room), offsetof(lks_lease_acquire_options, owner),
	offsetof(lks_lease_acquire_options, cancel), offsetof(lks_lease_acquire_options, payload),
	sizeof(lks_lease_acquire_options)};

static int check_acquire_options(lks_conn *c, const lks_lease_acquire_options *opts,
                                 int64_t ttl_ms, lks_lease_acquire_options *o)
{
	static const lks_lease_acquire_options defaults = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	int rc;
	*o = defaults;
	if ((rc = lks_options_copy(c, "acquire", o, opts, acquire_sizes, LKS_LEASE_ACQUIRE_OPTIONS_VERSION)))
		return rc;
	o->version = opts ? opts->version : LKS_LEASE_ACQUIRE_OPTIONS_VERSION;
	if (o->margin_ms >= ttl_ms || o->margin_ms < -1 || o->base_delay_us < 0 ||
	    o->max_delay_us < o->base_delay_us || o->max_delay_us > DELAY_MAX_US)
		return lks_set_error(c, LKS_EINVAL,
		                     "acquire options: need -1 <= margin_ms < ttl and"
		                     " 0 <= base_delay_us <= max_delay_us <= %lld",
		                     (long long)DELAY_MAX_US);
	if (o->waiting_room != 0 && o->waiting_room != 1)
		return lks_set_error(c, LKS_EINVAL, "acquire options: waiting_room must be 0 or 1");
	if (o->owner && !lks_label_valid(o->owner, LKS_LEASE_OWNER_MAX))
		return lks_set_error(c, LKS_EINVAL,
		                     "acquire options: owner must be 1..%d bytes of UTF-8"
		                     " without control characters", LKS_LEASE_OWNER_MAX);
	if (o->payload_len > LKS_LEASE_PAYLOAD_MAX || (o->payload_len && !o->payload))
		return lks_set_error(c, LKS_EINVAL,
		                     "acquire options: payload must be 0..%d bytes (and not NULL when"
		                     " payload_len is not 0)", LKS_LEASE_PAYLOAD_MAX);
	return LKS_OK;
}

int lks_acquire_options_copy(lks_conn *c, const lks_lease_acquire_options *in,
                             lks_lease_acquire_options *out)
{
	static const lks_lease_acquire_options defaults = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	*out = defaults;
	return lks_options_copy(c, "acquire", out, in, acquire_sizes, LKS_LEASE_ACQUIRE_OPTIONS_VERSION);
}

static void put_stats(const lks_lease_acquire_options *o, const lks_lease_acquire_stats *st)
{
	if (o->stats)
		memcpy(o->stats, st, o->version == 1 ? offsetof(lks_lease_acquire_stats, queued) : sizeof *st);
}

static void baton_give_quietly(lks_conn *c, uint64_t baton);

/* The token was tripped while waiting: nothing granted; the baton, if this
 * poll or wait took it, goes back (twice if needed: a cancel request that
 * arrives late can end the first try). On MariaDB the connection is gone
 * and its locks with it. */
/* No grant holds name now (no row, or free or expired), by a plain read. */
static bool name_is_free(lks_conn *c, const char *t, const char *name)
{
	lks_rows r;
	bool free_now;
	if (c->ops->lease_select(c, t, name, false, &r)) {
		lks_clear_error(c);
		return false;
	}
	free_now = r.nrows == 0 || (lks_rows_get(&r, 0, 4) && !strcmp(lks_rows_get(&r, 0, 4), "0"));
	lks_rows_clear(&r);
	return free_now;
}

static int canceled(lks_conn *c, const char *t, const char *name, const char *holder,
                    lks_lease_acquire_options *o, lks_lease_acquire_stats *st, int64_t start, bool holding,
                    uint64_t key)
{
	int rc;
	/* on every backend: a trip that lands in a sleep leaves the session
	 * alive with its baton (a shut-down MariaDB session lost it already,
	 * and giving it back then fails quietly) */
	/* a session the cancel cost may still complete its grant: end it and
	 * free what it got (MariaDB) */
	if (c->ops->after_cancel && (rc = c->ops->after_cancel(c, t, name, holder)))
		lks_log(c, 0, "acquire of %s canceled; making sure it holds nothing failed: %s"
		              " (a grant that completed expires at its TTL)", name, c->errmsg);
	if (holding && c->native) {
		int held = 1;
		baton_give_quietly(c, key);
		if (c->ops->baton_held(c, key, &held) || held)
			baton_give_quietly(c, key);
	}
	st->waited_us = lks_now_us() - start;
	put_stats(o, st);
	lks_set_error(c, LKS_CANCELED, "acquire canceled");
	lks_emit(c, LKS_EVENT_CANCELED, name, 0, st->waited_us, st->attempts, 0, LKS_CANCELED);
	return LKS_CANCELED;
}

/*
 * The waiting room. A waiter that finds the lease held blocks on the name's
 * baton, a session lock in the server (first come, first served, no
 * statements sent). The first in line (the head) holds the baton and polls
 * alone, often; once granted it keeps the baton while it holds the lease, and
 * its release hands the baton to the next in line at once. So under
 * contention the lease passes from holder to holder without polling, and an
 * uncontended grant (nobody in line) takes no baton and its release costs
 * one statement. A newcomer's grant needs the baton to be free, so it cannot
 * overtake the line. Every wait is bounded: by the deadline, by the holder's expiry,
 * and by QUEUE_PATIENCE_MAX_US, and a lease left free for LKS_BATON_STALE_MS is
 * granted without the baton: a baton left behind by a stalled or departed
 * session never blocks a grant, it only costs time. The lease row alone
 * decides grants and fences.
 */
/* One acquire call: its arguments after the checks, and what its polls
 * learned so far. */
typedef struct acquire_ctx {
	lks_conn *c;
	const char *name;
	int64_t wait_ms, ttl_us;
	lks_lease_acquire_options o;
	lks_lease_acquire_stats st;
	char t[QMAX], holder[LKS_HOLDER_LEN + 1];
	char owner_tag[LKS_HOLDER_LEN + 1 + LKS_LEASE_OWNER_MAX + 1];
	int64_t start, deadline, sent; /* sent: when the last poll went out */
	uint64_t rng, key;
	lks_baton_mode mode;
	bool room, holding, woken;
	int free_retries;
	lks_grant g;
	/* a semaphore (permits > 0): name points to row, the slot this poll
	 * tries; scan once a first random try missed; quick: polls at once
	 * after a slot was lost to a racing grant */
	int permits, slot, quick;
	bool scan;
	const char *base;
	char prefix[LKS_SEMAPHORE_NAME_MAX + 4], row[LKS_LEASE_NAME_MAX + 16];
	int rc; /* the outcome, once a step says ACQ_DONE */
} acquire_ctx;

typedef enum acquire_step {
	ACQ_AGAIN,   /* poll again now */
	ACQ_WAIT,    /* wait (in line or backing off), then poll again */
	ACQ_GRANTED, /* a grant with time left to use */
	ACQ_DONE     /* a->rc is the answer; the baton and stats are settled */
} acquire_step;

static acquire_step acq_canceled(acquire_ctx *a, bool holding)
{
	a->rc = canceled(a->c, a->t, a->name, a->holder, &a->o, &a->st, a->start, holding, a->key);
	return ACQ_DONE;
}

/* Checks the arguments and fills a; nothing is sent to the server. */
static int acquire_begin(acquire_ctx *a, lks_conn *c, const char *name, int permits,
                         int64_t ttl_ms, int64_t wait_ms, const lks_lease_acquire_options *opts)
{
	bool has_owner;
	int rc;
	memset(a, 0, sizeof *a);
	a->c = c;
	a->name = name;
	a->wait_ms = wait_ms;
	if ((rc = check_acquire_options(c, opts, ttl_ms, &a->o)))
		return rc;
	if (permits) {
		if ((rc = lks_semaphore_check(c, name, permits)))
			return rc;
	} else if ((rc = check_name(c, name))) {
		return rc;
	} else if (strstr(name, LKS_SLOT_SEPARATOR)) {
		return lks_set_error(c, LKS_EINVAL,
		                     "lease name contains U+241F, which names semaphore slots"
		                     " (lks_semaphore_acquire)");
	}
	if ((rc = check_ttl(c, ttl_ms)) || (rc = table_q(c, a->t)))
		return rc;
	if (wait_ms < 0 || wait_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "wait must be 0..%lld ms, got %lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS, (long long)wait_ms);
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "acquire needs a handle without an open transaction:"
		                     " a rollback would undo the grant but not the fence handed out");
	/* the first grant on a handle and table checks the table's shape once
	 * (MySQL: a name that is not a unique key would grant every acquirer) */
	if ((rc = owner_column(c, a->t, &has_owner)))
		return rc;
	if (a->o.owner && !has_owner)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no owner column: run lks_lease_install"
		                     " (or lockstock install) once to add it", c->lease_table);
	a->ttl_us = ttl_ms * 1000;
	if ((a->o.margin_ms < 0 ? a->ttl_us / 10 : a->o.margin_ms * 1000) + c->clock_offset_us >= a->ttl_us)
		return lks_set_error(c, LKS_EINVAL,
		                     "TTL %lld ms is not longer than the margin plus the clock offset"
		                     " (%lld ms)", (long long)ttl_ms, (long long)(c->clock_offset_us / 1000));
	lks_holder_id(a->holder);
	/* the label is stored behind the grant's holder id, so a grant by a
	 * version that does not write owners never shows a stale label */
	if (a->o.owner)
		snprintf(a->owner_tag, sizeof a->owner_tag, "%s:%s", a->holder, a->o.owner);
	a->rng = 0; /* seeded when a wait first needs jitter: most grants never do */
	a->room = a->o.waiting_room && c->ops->baton_supported(c);
	/* an uncontended grant leaves the baton free (PEEK), so its release is
	 * one statement; whoever has waited keeps it, to hand the lease on */
	a->mode = !a->room ? LKS_BATON_NONE : a->o.wake_on_release ? LKS_BATON_TRY : LKS_BATON_PEEK;
	a->key = lks_baton_key(a->t, name);
	if (permits) {
		/* the line is the semaphore's (one baton for all its slots),
		 * kept apart from the grants: a slot's grant never takes it,
		 * and the head gives it back once granted */
		a->permits = permits;
		a->base = name;
		lks_semaphore_prefix(name, a->prefix, sizeof a->prefix);
		snprintf(a->row, sizeof a->row, "%s0", a->prefix);
		a->name = a->row;
		a->mode = LKS_BATON_NONE;
		a->key = lks_baton_key(a->t, a->prefix);
		if (lks_random_bytes(&a->rng, sizeof a->rng))
			a->rng = (uint64_t)lks_now_us();
	}
	a->start = lks_now_us();
	a->deadline = a->start + wait_ms * 1000;
	return LKS_OK;
}

/* Ends a call that got no lease: the baton back, the stats, rc. */
static acquire_step acq_fail(acquire_ctx *a, int rc, int64_t now)
{
	if (a->holding || a->g.baton)
		baton_give_quietly(a->c, a->key);
	a->st.waited_us = now - a->start;
	put_stats(&a->o, &a->st);
	a->rc = rc;
	return ACQ_DONE;
}

/* Busy (no wait) or timed out: why, in the message, and the event. */
static acquire_step acq_not_granted(acquire_ctx *a, int64_t now)
{
	lks_conn *c = a->c;
	int code = a->wait_ms ? LKS_TIMEOUT : LKS_BUSY;
	if (a->holding)
		baton_give_quietly(c, a->key);
	a->st.waited_us = now - a->start;
	put_stats(&a->o, &a->st);
	if (a->permits && a->g.remaining_us > 0)
		a->rc = lks_set_error(c, code, "semaphore %s: all %d permits are held (the first"
		                      " expires in %lld ms)", a->base, a->permits,
		                      (long long)(a->g.remaining_us / 1000));
	else if (a->permits)
		a->rc = lks_set_error(c, code, "semaphore %s: no free permit of %d (taken by racing"
		                      " grants)", a->base, a->permits);
	else if (a->g.remaining_us > 0)
		a->rc = lks_set_error(c, code, "lease %s is held (%lld ms left)", a->name,
		                      (long long)(a->g.remaining_us / 1000));
	else if (a->g.released)
		a->rc = lks_set_error(c, code, "lease %s is being handed to a waiter in line", a->name);
	else
		a->rc = lks_set_error(c, code,
		                      "lease %s is busy (its row is locked by a grant or fenced write in progress)",
		                      a->name);
	/* the hook is the call's last use of c (see the hook rules) */
	lks_emit(c, a->wait_ms ? LKS_EVENT_TIMED_OUT : LKS_EVENT_BUSY, a->name, a->g.fence,
	         a->st.waited_us, a->st.attempts, 0, a->rc);
	return ACQ_DONE;
}

/* One grant statement, and what it means for the call. */
static acquire_step acquire_poll(acquire_ctx *a, int attempt)
{
	lks_conn *c = a->c;
	lks_grant *g = &a->g;
	int64_t now, left = a->deadline - lks_now_us();
	bool transient;
	int rc;
	a->sent = lks_now_us();
	g->statements = 1;
	if (lks_cancel_enter(a->o.cancel, c))
		return acq_canceled(a, a->holding);
	/* a row-lock wait stays well inside the op timeout */
	if (c->op_timeout_us > 0 && left > c->op_timeout_us / 2)
		left = c->op_timeout_us / 2;
	/* behind a line (our last release handed this lease on), a first
	 * lean try would only find it held: go straight to the line */
	g->skip_lean = attempt == 0 && c->handed_on == a->key;
	if (a->permits) {
		/* one statement grabs any free slot where the backend can (as a
		 * hand-written slot table would); a read of all slots finds the
		 * ones never used, which the lease grant inserts */
		int extra = 0, existing = a->permits;
		bool grabbed = false;
		rc = LKS_OK;
		if (c->ops->semaphore_grab) {
			rc = c->ops->semaphore_grab(c, a->t, a->prefix, a->permits, a->holder,
			                            a->o.owner ? a->owner_tag : NULL, a->ttl_us, &a->slot,
			                            &existing, g);
			grabbed = rc == LKS_OK && g->granted;
			extra = 1;
			a->scan = true;
		}
		if (rc == LKS_OK && !grabbed && c->ops->semaphore_grab && existing >= a->permits) {
			a->slot = -1; /* all held, or being granted or written: wait */
		} else if (rc == LKS_OK && !grabbed) {
			extra += a->scan;
			rc = lks_semaphore_choose(c, a->t, a->prefix, a->permits, a->scan, &a->rng, &a->slot, g);
			a->scan = true;
		}
		if (rc == LKS_OK && a->slot < 0) {
			/* every slot is held: wait, in line or backing off */
			lks_cancel_leave(a->o.cancel, c);
			if (lks_cancel_is_tripped(a->o.cancel))
				return acq_canceled(a, a->holding);
			a->st.attempts += extra > 0 ? extra : 1;
			now = lks_now_us();
			a->quick = 0;
			if (a->wait_ms == 0 || now >= a->deadline)
				return acq_not_granted(a, now);
			return ACQ_WAIT;
		}
		if (rc == LKS_OK)
			snprintf(a->row, sizeof a->row, "%s%d", a->prefix, a->slot);
		if (rc == LKS_OK && grabbed) {
			g->statements = extra;
		} else if (rc == LKS_OK) {
			rc = c->ops->lease_try(c, a->t, a->row, a->holder, a->o.owner ? a->owner_tag : NULL,
			                       a->ttl_us, LKS_BATON_NONE, a->key, left > 0 ? left : 0, g);
			g->statements += extra;
		}
		g->baton = a->holding; /* the line's baton, if held, is kept apart */
	} else {
		rc = c->ops->lease_try(c, a->t, a->name, a->holder, a->o.owner ? a->owner_tag : NULL,
		                       a->ttl_us,
		                       a->holding ? (a->woken ? LKS_BATON_WOKEN : LKS_BATON_HELD) : a->mode,
		                       a->key, left > 0 ? left : 0, g);
	}
	a->woken = false;
	lks_cancel_leave(a->o.cancel, c);
	/* a grant that completed as the token tripped is the caller's */
	if (lks_cancel_is_tripped(a->o.cancel) && !(rc == LKS_OK && g->granted))
		return acq_canceled(a, a->holding || (rc == LKS_OK && g->baton));
	now = lks_now_us();
	a->st.attempts += g->statements;
	transient = rc == LKS_ETRANSIENT;
	if (rc == LKS_ETRANSIENT) {
		/* row locked, serialization failure or deadlock: busy. The
		 * poll may have taken the baton before it failed, and a
		 * session lock outlives the failed statement: ask. */
		lks_log(c, 2, "lease %s: poll taken as busy: %s", a->name, c->errmsg);
		lks_clear_error(c);
		g->granted = 0;
		g->remaining_us = -1;
		g->released = 0;
		rc = a->room && !a->holding && !a->permits ? c->ops->baton_held(c, a->key, &g->baton)
		                                            : LKS_OK;
		if (a->holding)
			g->baton = 1;
	}
	if (rc == LKS_EOVERFLOW) {
		char server[LKS_ERRMSG_MAX];
		memcpy(server, c->errmsg, sizeof server);
		lks_set_error(c, rc, "lease %s: its fence is at the maximum, no grant can"
		              " follow (use another name): %s", a->name, server);
	}
	if (rc)
		return acq_fail(a, rc, now);
	a->holding = a->room && g->baton;
	if (g->granted) {
		int64_t margin = (a->o.margin_ms < 0 ? a->ttl_us / 10 : a->o.margin_ms * 1000) +
		                 c->clock_offset_us;
		if (a->sent + g->remaining_us - margin > lks_now_us())
			return ACQ_GRANTED;
		/* the reply came too late to be of use: give it back, go on */
		if ((rc = c->ops->lease_release(c, a->t, a->name, a->holder, g->fence, false, a->key)) &&
		    rc != LKS_LOST && rc != LKS_ETRANSIENT) { /* else it expires on its own */
			if (a->holding)
				baton_give_quietly(c, a->key);
			a->rc = rc;
			return ACQ_DONE;
		}
		g->remaining_us = -1;
	}
	/* a lock wait around a name that is free is not "held": InnoDB
	 * locks the gap next to a key another grant updates, and a grant
	 * without time to wait fails on it at once. Look (no lock), and
	 * try again, a few times, quickly. */
	if (transient && (a->wait_ms == 0 || now >= a->deadline) && a->free_retries < 3 &&
	    name_is_free(c, a->t, a->name)) {
		lks_sleep_us(1000 << a->free_retries++);
		return ACQ_AGAIN;
	}
	/* a semaphore's slot went to a racing grant (or the first, random
	 * try missed): another may be free, look again at once */
	if (a->permits && a->quick++ < 3)
		return ACQ_AGAIN;
	if (a->wait_ms == 0 || now >= a->deadline)
		return acq_not_granted(a, now);
	return ACQ_WAIT;
}

/* Between polls: in line behind the baton's holder, or a backoff. */
static acquire_step acquire_wait(acquire_ctx *a, int attempt)
{
	lks_conn *c = a->c;
	int64_t delay, now = lks_now_us();
	int got = 0, rc;
	a->quick = 0;
	if (a->room && !a->holding) {
		/* someone else has the baton: line up behind it. Held: until
		 * the holder's expiry. Released: the baton went to the next in
		 * line, stay in the line. Expired with its baton kept: until a
		 * grant may go without it. */
		delay = lks_line_wait_us(a->g.remaining_us, a->g.released, a->deadline - now);
		a->st.queued++;
		if (lks_cancel_enter(a->o.cancel, c))
			return acq_canceled(a, false);
		rc = c->ops->baton_wait(c, a->key, delay, &got);
		lks_cancel_leave(a->o.cancel, c);
		if (lks_cancel_is_tripped(a->o.cancel))
			return acq_canceled(a, rc == LKS_OK && got);
		if (rc) {
			a->st.waited_us = lks_now_us() - a->start;
			put_stats(&a->o, &a->st);
			a->rc = rc;
			return ACQ_DONE;
		}
		a->holding = a->woken = got;
		return ACQ_AGAIN;
	}
	if (!a->rng && lks_random_bytes(&a->rng, sizeof a->rng))
		a->rng = (uint64_t)lks_now_us();
	delay = lks_poll_delay_us(attempt, a->holding, a->o.base_delay_us, a->o.max_delay_us,
	                          a->g.remaining_us, a->deadline - now, &a->rng);
	if (lks_cancel_sleep(a->o.cancel, delay))
		return acq_canceled(a, a->holding);
	return ACQ_AGAIN;
}

/* The grant as a lease object for the caller. */
static int acquire_granted(acquire_ctx *a, lks_lease **out)
{
	lks_conn *c = a->c;
	lks_lease *l;
	a->st.waited_us = lks_now_us() - a->start;
	put_stats(&a->o, &a->st);
	l = calloc(1, sizeof *l);
	if (!l) {
		/* granted but cannot be represented: give it back */
		c->ops->lease_release(c, a->t, a->name, a->holder, a->g.fence, a->holding, a->key);
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	}
	snprintf(l->name, sizeof l->name, "%s", a->name);
	memcpy(l->holder, a->holder, sizeof a->holder);
	snprintf(l->owner, sizeof l->owner, "%s", a->o.owner ? a->o.owner : "");
	memcpy(l->table_q, a->t, sizeof l->table_q);
	l->fence = a->g.fence;
	l->ttl_us = a->ttl_us;
	l->margin_us = a->o.margin_ms < 0 ? -1 : a->o.margin_ms * 1000;
	l->clock_offset_us = c->clock_offset_us;
	l->baton = a->key;
	l->slot = a->permits ? a->slot : -1;
	if (a->holding && a->permits)
		baton_give_quietly(c, a->key); /* the next in line is the head now */
	else if (a->holding)
		baton_register(c, l);
	set_deadline(l, a->sent, a->g.remaining_us);
	l->granted_at_us = a->sent;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	lks_emit(c, LKS_EVENT_ACQUIRED, a->name, a->g.fence, a->st.waited_us, a->st.attempts, 0, LKS_OK);
	return LKS_OK;
}

static int acquire_run(lks_lease **out, lks_conn *c, const char *name, int permits,
                       int64_t ttl_ms, int64_t wait_ms,
                       const lks_lease_acquire_options *opts)
{
	acquire_ctx a;
	acquire_step step = ACQ_AGAIN;
	int rc;
	if (out)
		*out = NULL;
	/* stats are filled on every return, as far as their version has fields */
	if (opts && opts->stats && opts->version >= 1 && opts->version <= LKS_LEASE_ACQUIRE_OPTIONS_VERSION)
		memset(opts->stats, 0, opts->version == 1 ? offsetof(lks_lease_acquire_stats, queued)
		                                           : sizeof(lks_lease_acquire_stats));
	if ((rc = lks_conn_check(c)))
		return rc;
	if (!out)
		return lks_set_error(c, LKS_EINVAL, "out is NULL");
	if ((rc = acquire_begin(&a, c, name, permits, ttl_ms, wait_ms, opts)))
		return rc;
	if (a.o.payload && (rc = lks_payload_column(c, a.t)))
		return rc;
	for (int attempt = 0; step == ACQ_AGAIN; attempt++) {
		step = acquire_poll(&a, attempt);
		if (step == ACQ_WAIT)
			step = acquire_wait(&a, attempt);
	}
	if (step != ACQ_GRANTED)
		return a.rc;
	if ((rc = acquire_granted(&a, out)) || !a.o.payload)
		return rc;
	/* the payload, right after the grant (see the header) */
	if ((rc = lks_lease_set_payload(c, *out, a.o.payload, a.o.payload_len))) {
		lks_error_saved saved;
		lks_error_save(c, &saved);
		lks_lease_release(c, *out);
		lks_lease_free(*out);
		*out = NULL;
		lks_error_restore(c, &saved);
	}
	return rc;
}

int lks_lease_acquire(lks_lease **out, lks_conn *c, const char *name,
                      int64_t ttl_ms, int64_t wait_ms,
                      const lks_lease_acquire_options *opts)
{
	return acquire_run(out, c, name, 0, ttl_ms, wait_ms, opts);
}

int lks_semaphore_acquire(lks_lease **out, lks_conn *c, const char *name, int permits,
                          int64_t ttl_ms, int64_t wait_ms,
                          const lks_lease_acquire_options *opts)
{
	if (permits == 0) /* 0 would mean "a plain lease" below */
		permits = -1;
	return acquire_run(out, c, name, permits, ttl_ms, wait_ms, opts);
}

static int check_lease(lks_conn *c, const lks_lease *lease)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!lease)
		return lks_set_error(c, LKS_EINVAL, "lease is NULL");
	return LKS_OK;
}

void lks_lease_mark_lost(lks_lease *lease)
{
	atomic_store(&lease->lost, 1);
}

/* Renew and release are conditional UPDATEs of one row: one that failed
 * transiently (deadlock, serialization failure, a Galera certification
 * conflict while the cluster changes) wrote nothing and may simply run
 * again. A few quick tries, then the error is the caller's. */
#define SETTLE_TRIES 3

int lks_lease_renew_on(lks_conn *c, lks_lease *l, int64_t ttl_us)
{
	int64_t remaining = 0, sent = lks_now_us();
	int rc = LKS_ETRANSIENT;
	for (int i = 0; i < SETTLE_TRIES && rc == LKS_ETRANSIENT; i++) {
		if (i)
			lks_sleep_us(1000 << (2 * i)); /* 4 ms, 16 ms */
		sent = lks_now_us();
		rc = c->ops->lease_renew(c, l->table_q, l->name, l->holder, l->fence, ttl_us, &remaining);
	}
	int64_t took = lks_now_us() - sent;
	if (rc == LKS_OK) {
		l->ttl_us = ttl_us;
		set_deadline(l, sent, remaining);
	} else if (rc == LKS_LOST) {
		lks_lease_mark_lost(l);
		lks_set_error(c, rc, "lease %s (fence %lld) expired or was taken over", l->name,
		              (long long)l->fence);
		lks_log(c, 1, "%s", c->errmsg);
	}
	/* last: nothing touches the lease or c after the hook */
	lks_emit(c, rc == LKS_OK ? LKS_EVENT_RENEWED : rc == LKS_LOST ? LKS_EVENT_LOST : LKS_EVENT_RENEW_FAILED,
	         l->name, l->fence, took, 0, 0, rc);
	return rc;
}

int lks_lease_renew(lks_conn *c, lks_lease *lease, int64_t ttl_ms)
{
	int rc = check_lease(c, lease);
	if (rc || (rc = check_ttl(c, ttl_ms)))
		return rc;
	if (margin_of(lease, ttl_ms * 1000) >= ttl_ms * 1000)
		return lks_set_error(c, LKS_EINVAL, "TTL must be longer than the lease's margin");
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL, "renew needs a handle without an open transaction");
	return lks_lease_renew_on(c, lease, ttl_ms * 1000);
}

int lks_lease_release(lks_conn *c, lks_lease *lease)
{
	bool give;
	int rc = check_lease(c, lease);
	if (rc)
		return rc;
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "release needs a handle without an open transaction");
	lks_lease_autorenew_stop(lease);
	give = lease->baton_conn == c;
	rc = LKS_ETRANSIENT;
	for (int i = 0; i < SETTLE_TRIES && rc == LKS_ETRANSIENT; i++) {
		if (i)
			lks_sleep_us(1000 << (2 * i));
		rc = c->ops->lease_release(c, lease->table_q, lease->name, lease->holder, lease->fence,
		                           give, lease->baton);
	}
	/* a release that handed the baton on had a line behind it */
	c->handed_on = give && rc == LKS_OK ? lease->baton
	               : c->handed_on == lease->baton ? 0 : c->handed_on;
	if (give) {
		/* an error other than a lost connection may have left it held */
		if (rc != LKS_OK && rc != LKS_LOST && rc != LKS_ECONN)
			baton_give_quietly(c, lease->baton);
		baton_unregister(lease);
	}
	if (rc == LKS_OK || rc == LKS_LOST)
		lks_lease_mark_lost(lease); /* no longer ours either way */
	if (rc == LKS_LOST) {
		lks_set_error(c, rc, "lease %s (fence %lld) was already lost when released",
		              lease->name, (long long)lease->fence);
		lks_log(c, 1, "%s", c->errmsg);
	}
	/* last: nothing touches the lease or c after the hook */
	if (rc == LKS_OK || rc == LKS_LOST)
		lks_emit(c, rc == LKS_OK ? LKS_EVENT_RELEASED : LKS_EVENT_LOST, lease->name, lease->fence,
		         lks_now_us() - lease->granted_at_us, 0, 0, rc);
	return rc;
}

void lks_lease_free(lks_lease *lease)
{
	if (!lease)
		return;
	lks_lease_autorenew_stop(lease);
	if (lease->baton_conn) {
		lks_conn *c = lease->baton_conn;
		baton_unregister(lease);
		baton_give_quietly(c, lease->baton);
	}
	pthread_mutex_destroy(&lease->mu);
	free(lease);
}

const char *lks_lease_name(const lks_lease *l) { return l ? l->name : NULL; }
int lks_lease_slot(const lks_lease *l) { return l ? l->slot : -1; }
const char *lks_lease_holder(const lks_lease *l) { return l ? l->holder : NULL; }
const char *lks_lease_owner(const lks_lease *l) { return l ? l->owner : NULL; }
int64_t lks_lease_fence(const lks_lease *l) { return l ? l->fence : 0; }
int64_t lks_lease_granted_ms(const lks_lease *l)
{
	return l ? atomic_load(&l->granted_us) / 1000 : 0;
}

int64_t lks_lease_remaining_ms(const lks_lease *l)
{
	int64_t left;
	if (!l)
		return 0;
	left = atomic_load(&l->deadline_us) - lks_now_us();
	return left > 0 ? left / 1000 : left < 0 ? -1 : 0;
}

int lks_lease_is_lost(const lks_lease *l)
{
	if (!l)
		return 1;
	return atomic_load(&l->lost) || lks_now_us() >= atomic_load(&l->deadline_us);
}

/*
 * A fenced write that failed transiently (deadlock, serialization failure,
 * and on Galera a certification failure at COMMIT or a takeover applied
 * while it ran) wrote nothing. When the lease is no longer this grant, that
 * is why: LKS_LOST. Otherwise the caller may retry: LKS_ETRANSIENT.
 */
static int fill_info(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info);

static int transient_or_lost(lks_conn *c, const lks_lease *lease)
{
	char cause[LKS_ERRMSG_MAX];
	lks_lease_info info;
	lks_rows r;
	bool current = true; /* cannot tell: keep the transient error */
	memcpy(cause, c->errmsg, sizeof cause);
	if (c->ops->lease_select(c, lease->table_q, lease->name, false, &r) == LKS_OK) {
		current = r.nrows == 1 && fill_info(c, &r, 0, &info) == LKS_OK && info.held &&
		          !strcmp(info.holder, lease->holder) && info.fence == lease->fence;
		lks_rows_clear(&r);
	}
	if (!current)
		return lks_set_error(c, LKS_LOST,
		                     "lease %s (fence %lld) was taken over; its fenced write was refused"
		                     " and wrote nothing: %s", lease->name, (long long)lease->fence, cause);
	return lks_set_error(c, LKS_ETRANSIENT, "%s", cause);
}

/* One transaction: every lease row held in the order given, fn, commit. */
static int fenced_run(lks_conn *c, lks_lease *const *ordered, lks_lease *const *given, size_t n,
                      lks_fenced_all_fn fn, void *arg);

typedef struct one_write {
	lks_fenced_fn fn;
	void *arg;
} one_write;

static int one_write_fn(lks_conn *c, lks_lease *const *leases, size_t n, void *arg)
{
	one_write *w = arg;
	(void)n;
	return w->fn(c, leases[0]->fence, w->arg);
}

int lks_lease_fenced_write(lks_conn *c, const lks_lease *lease, lks_fenced_fn fn, void *arg)
{
	lks_lease *one[1] = {(lks_lease *)lease}; /* only read */
	one_write w = {fn, arg};
	int rc = check_lease(c, lease);
	if (rc)
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	return fenced_run(c, one, one, 1, one_write_fn, &w);
}

static int cmp_lease_names(const void *x, const void *y)
{
	const lks_lease *a = *(lks_lease *const *)x, *b = *(lks_lease *const *)y;
	return strcmp(a->name, b->name);
}

/* A transient failure over a set: LKS_LOST if any lease was taken over. */
static int any_lost(lks_conn *c, lks_lease *const *leases, size_t n)
{
	lks_error_saved saved;
	int rc = LKS_ETRANSIENT;
	lks_error_save(c, &saved);
	for (size_t i = 0; i < n; i++) {
		lks_error_restore(c, &saved);
		if ((rc = transient_or_lost(c, leases[i])) == LKS_LOST)
			break;
	}
	return rc;
}

int lks_lease_fenced_write_all(lks_conn *c, lks_lease *const *leases, size_t n,
                               lks_fenced_all_fn fn, void *arg)
{
	lks_lease *sorted[LKS_LEASE_SET_MAX];
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!leases || n == 0 || n > LKS_LEASE_SET_MAX)
		return lks_set_error(c, LKS_EINVAL, "leases must be 1..%d non-NULL leases",
		                     LKS_LEASE_SET_MAX);
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	for (size_t i = 0; i < n; i++)
		if (!(sorted[i] = leases[i]))
			return lks_set_error(c, LKS_EINVAL, "leases[%zu] is NULL", i);
	/* row locks in one order: two writers over overlapping sets queue
	 * instead of deadlocking */
	qsort(sorted, n, sizeof *sorted, cmp_lease_names);
	return fenced_run(c, sorted, leases, n, fn, arg);
}

static int fenced_run(lks_conn *c, lks_lease *const *ordered, lks_lease *const *given, size_t n,
                      lks_fenced_all_fn fn, void *arg)
{
	int rc;
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "fenced write needs a handle without an open transaction");
	if ((rc = c->ops->exec(c, "BEGIN")))
		return rc;
	for (size_t i = 0; i < n && rc == LKS_OK; i++) {
		const lks_lease *l = ordered[i];
		rc = c->ops->lease_guard(c, l->table_q, l->name, l->holder, l->fence);
		if (rc == LKS_LOST)
			lks_set_error(c, rc, "lease %s (fence %lld) is no longer the current grant",
			              l->name, (long long)l->fence);
	}
	if (rc == LKS_OK)
		rc = fn(c, given, n, arg);
	if (rc != LKS_OK) {
		bool transient = rc == LKS_ETRANSIENT && c->err == LKS_ETRANSIENT;
		if (c->native && c->ops->in_transaction(c)) {
			/* keep the first error: rollback must not overwrite it */
			lks_error_saved saved;
			lks_error_save(c, &saved);
			c->ops->exec(c, "ROLLBACK");
			lks_error_restore(c, &saved);
		}
		return transient ? any_lost(c, ordered, n) : rc;
	}
	rc = c->ops->commit(c);
	if (rc == LKS_ETRANSIENT)
		return any_lost(c, ordered, n);
	if (rc == LKS_ECONN) {
		char cause[LKS_ERRMSG_MAX];
		memcpy(cause, c->errmsg, sizeof cause);
		rc = lks_set_error(c, LKS_EUNKNOWN, "connection lost during COMMIT of fenced write: %s",
		                   cause);
	}
	return rc;
}

static int fill_info(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info)
{
	int64_t held = 0;
	const char *tag;
	memset(info, 0, sizeof *info);
	info->version = LKS_LEASE_INFO_VERSION;
	snprintf(info->name, sizeof info->name, "%s", lks_rows_get(r, row, 0) ? lks_rows_get(r, row, 0) : "");
	snprintf(info->holder, sizeof info->holder, "%s", lks_rows_get(r, row, 1) ? lks_rows_get(r, row, 1) : "");
	if (lks_parse_i64(lks_rows_get(r, row, 2), &info->fence) ||
	    lks_parse_i64(lks_rows_get(r, row, 3), &info->remaining_ms) ||
	    lks_parse_i64(lks_rows_get(r, row, 4), &held))
		return lks_set_error(c, LKS_EDB, "lease table row is malformed");
	info->remaining_ms /= 1000;
	info->held = held != 0;
	if (!info->held)
		info->holder[0] = '\0';
	/* the label counts only while the grant that wrote it holds the lease */
	tag = r->ncols > 5 ? lks_rows_get(r, row, 5) : NULL;
	if (info->held && tag && strlen(tag) > LKS_HOLDER_LEN &&
	    !strncmp(tag, info->holder, LKS_HOLDER_LEN) && tag[LKS_HOLDER_LEN] == ':')
		snprintf(info->owner, sizeof info->owner, "%s", tag + LKS_HOLDER_LEN + 1);
	return LKS_OK;
}

/* what each version of lks_lease_info has */
static const size_t info_sizes[] = {sizeof(lks_lease_info)};

/* The caller's struct says its version: one this library knows. */
static int check_info_version(lks_conn *c, const lks_lease_info *info)
{
	if (info->version < 1 || info->version > LKS_LEASE_INFO_VERSION)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease info: unknown version %u (1..%u; use LKS_LEASE_INFO_INIT)",
		                     info->version, LKS_LEASE_INFO_VERSION);
	return LKS_OK;
}

/* The row of a name never granted: free, fence 0. */
static void free_info(lks_lease_info *info, const char *name)
{
	memset(info, 0, sizeof *info);
	info->version = LKS_LEASE_INFO_VERSION;
	snprintf(info->name, sizeof info->name, "%s", name);
}

/* Writes the fields of the caller's version only. */
static void put_info(lks_lease_info *out, const lks_lease_info *info)
{
	unsigned int version = out->version;
	memcpy(out, info, info_sizes[version - 1]);
	out->version = version;
}

int lks_lease_inspect(lks_conn *c, const char *name, lks_lease_info *info)
{
	char t[QMAX];
	bool owner;
	lks_lease_info got;
	lks_rows r;
	int rc = lks_conn_check(c);
	if (rc || (rc = check_name(c, name)) || (rc = table_q(c, t)))
		return rc;
	if (!info)
		return lks_set_error(c, LKS_EINVAL, "info is NULL");
	if ((rc = check_info_version(c, info)))
		return rc;
	if ((rc = owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, name, owner, &r)))
		return rc;
	if (r.nrows == 0)
		free_info(&got, name);
	else
		rc = fill_info(c, &r, 0, &got);
	lks_rows_clear(&r);
	if (rc == LKS_OK)
		put_info(info, &got);
	return rc;
}

int lks_lease_list(lks_conn *c, int (*fn)(const lks_lease_info *, void *), void *arg)
{
	char t[QMAX];
	lks_rows r;
	lks_lease_info info;
	bool owner;
	int rc = lks_conn_check(c);
	if (rc || (rc = table_q(c, t)))
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	if ((rc = owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, NULL, owner, &r)))
		return rc;
	for (int i = 0; i < r.nrows && rc == LKS_OK; i++)
		if ((rc = fill_info(c, &r, i, &info)) == LKS_OK)
			rc = fn(&info, arg);
	lks_rows_clear(&r);
	return rc;
}

int lks_semaphore_list(lks_conn *c, const char *name, int permits,
                       int (*fn)(const lks_lease_info *, void *), void *arg)
{
	char t[QMAX], prefix[LKS_LEASE_NAME_MAX + 1];
	lks_lease_info *info;
	lks_rows r;
	bool owner;
	int rc = lks_conn_check(c);
	if (rc || (rc = lks_semaphore_check(c, name, permits)) || (rc = table_q(c, t)))
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	lks_semaphore_prefix(name, prefix, sizeof prefix);
	if ((rc = owner_column(c, t, &owner)) ||
	    (rc = c->ops->lease_select_slots(c, t, prefix, permits, owner, &r)))
		return rc;
	if (!(info = calloc((size_t)permits, sizeof *info))) {
		lks_rows_clear(&r);
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows && rc == LKS_OK; i++) {
		lks_lease_info one;
		int k;
		if ((rc = fill_info(c, &r, i, &one)) == LKS_OK && one.held &&
		    (k = lks_slot_of(one.name)) >= 0 && k < permits) {
			info[k] = one;
		}
	}
	lks_rows_clear(&r);
	/* in slot order, whatever order the server returned */
	for (int k = 0; k < permits && rc == LKS_OK; k++)
		if (info[k].held)
			rc = fn(&info[k], arg);
	free(info);
	return rc;
}

int lks_lease_force_release(lks_conn *c, const char *name, lks_lease_info *released)
{
	char t[QMAX];
	bool owner;
	lks_lease_info info;
	lks_rows r;
	int rc = lks_conn_check(c);
	if (rc || (rc = check_name(c, name)) || (rc = table_q(c, t)))
		return rc;
	if (released && (rc = check_info_version(c, released)))
		return rc;
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "force release needs a handle without an open transaction");
	if ((rc = owner_column(c, t, &owner)) ||
	    (rc = c->ops->lease_force_release(c, t, name, owner, &r)))
		return rc;
	if (r.nrows == 0)
		free_info(&info, name);
	else
		rc = fill_info(c, &r, 0, &info);
	lks_rows_clear(&r);
	if (released)
		put_info(released, &info);
	if (rc == LKS_OK && !info.held)
		rc = lks_set_error(c, LKS_NOT_FOUND, "lease %s is not held (last fence %lld)", name,
		                   (long long)info.fence);
	return rc;
}

int lks_lease_ddl(lks_backend backend, const char *table, char *out, size_t outsz)
{
	char t[QMAX];
	lks_sql q = {.len = 0};
	const lks_backend_ops *ops;
	if (!out || outsz == 0)
		return LKS_EINVAL;
	out[0] = '\0';
	if (!table)
		table = LKS_LEASE_TABLE_DEFAULT;
	if (!lks_backend_known(backend))
		return LKS_EINVAL;
	if (!(ops = lks_backend_find(backend)))
		return LKS_EUNSUPPORTED;
	if (lks_ident_quote(table, ops->quote, t, sizeof t))
		return LKS_EINVAL;
	ops->lease_ddl(t, &q);
	if (q.overflow || q.len + 2 > outsz)
		return LKS_EINVAL;
	snprintf(out, outsz, "%s;", q.buf);
	return LKS_OK;
}

int lks_lease_adopt(lks_lease **out, lks_conn *c, const char *name, const char *holder,
                    int64_t fence)
{
	char t[QMAX];
	bool owner;
	lks_lease_info info;
	lks_lease *l;
	lks_rows r;
	int64_t sent;
	int rc;
	if (out)
		*out = NULL;
	if ((rc = lks_conn_check(c)))
		return rc;
	if (!out)
		return lks_set_error(c, LKS_EINVAL, "out is NULL");
	if ((rc = check_name(c, name)) || (rc = table_q(c, t)))
		return rc;
	if (!holder || strlen(holder) != LKS_HOLDER_LEN || strspn(holder, "0123456789abcdef") != LKS_HOLDER_LEN)
		return lks_set_error(c, LKS_EINVAL, "holder must be the grant's 32 lower-case hex characters");
	if (fence < 1)
		return lks_set_error(c, LKS_EINVAL, "fence must be >= 1");
	sent = lks_now_us();
	if ((rc = owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, name, owner, &r)))
		return rc;
	rc = r.nrows == 1 ? fill_info(c, &r, 0, &info) : LKS_OK;
	if (rc == LKS_OK && (r.nrows != 1 || !info.held || info.fence != fence ||
	                     strcmp(info.holder, holder)))
		rc = lks_set_error(c, LKS_LOST, "lease %s is not held by that grant (fence %lld)", name,
		                   (long long)fence);
	lks_rows_clear(&r);
	if (rc)
		return rc;
	if (!(l = calloc(1, sizeof *l)))
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	snprintf(l->name, sizeof l->name, "%s", name);
	l->slot = lks_slot_of(name);
	memcpy(l->holder, holder, LKS_HOLDER_LEN + 1);
	snprintf(l->owner, sizeof l->owner, "%s", info.owner);
	memcpy(l->table_q, t, sizeof l->table_q);
	l->fence = fence;
	l->ttl_us = info.remaining_ms > 0 ? info.remaining_ms * 1000 : 1000;
	l->margin_us = -1;
	l->clock_offset_us = c->clock_offset_us;
	l->granted_at_us = sent;
	set_deadline(l, sent, info.remaining_ms * 1000);
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return LKS_OK;
}

int lks_lease_acquire_options_init(lks_lease_acquire_options *opts, unsigned int version)
{
	static const lks_lease_acquire_options defaults = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	return lks_options_init(opts, &defaults, version, acquire_sizes, LKS_LEASE_ACQUIRE_OPTIONS_VERSION);
}
