/* Pessimistic leases: the acquire loop (a context struct, one step at a
 * time: poll, wait in line or back off, grant) and its pure delay
 * functions. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lease.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)

/* A waiter in the server's line polls once on its own after this long, so a
 * stalled head or a baton left behind costs at most this per hand-off. */
#define QUEUE_PATIENCE_MAX_US 1000000
#define DELAY_MAX_US 60000000LL

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
		lks_baton_give_quietly(c, key);
		if (c->ops->baton_held(c, key, &held) || held)
			lks_baton_give_quietly(c, key);
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
	} else if ((rc = lks_lease_check_name(c, name))) {
		return rc;
	} else if (strstr(name, LKS_SLOT_SEPARATOR)) {
		return lks_set_error(c, LKS_EINVAL,
		                     "lease name contains U+241F, which names semaphore slots"
		                     " (lks_semaphore_acquire)");
	}
	if ((rc = lks_lease_check_ttl(c, ttl_ms)) || (rc = lks_lease_table_q(c, a->t)))
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
	if ((rc = lks_lease_owner_column(c, a->t, &has_owner)))
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
		lks_baton_give_quietly(a->c, a->key);
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
		lks_baton_give_quietly(c, a->key);
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
	g->stale_ms = a->permits ? LKS_SEMAPHORE_LINE_STALE_MS : 0;
	if (a->permits) {
		/* one statement grabs any free slot where the backend can (as a
		 * hand-written slot table would); a read of all slots finds the
		 * ones never used, which the lease grant inserts */
		int extra = 0, existing = a->permits;
		bool grabbed = false;
		/* one line for all permits: the head (holding the baton) takes
		 * the next free one; a newcomer only while the line is empty, so
		 * it never overtakes a worker that waited longer */
		lks_baton_mode line = a->holding ? LKS_BATON_HELD : a->room ? LKS_BATON_PEEK : LKS_BATON_NONE;
		rc = LKS_OK;
		if (c->ops->semaphore_grab) {
			rc = c->ops->semaphore_grab(c, a->t, a->prefix, a->permits, a->holder,
			                            a->o.owner ? a->owner_tag : NULL, a->ttl_us, line, a->key,
			                            &a->slot, &existing, g);
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
			                       a->ttl_us, line, a->key, left > 0 ? left : 0, g);
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
	if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
		lks_untold_note(c, a->t, a->permits ? a->prefix : a->name, a->permits > 0, a->holder);
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
				lks_baton_give_quietly(c, a->key);
			a->rc = rc;
			return ACQ_DONE;
		}
		g->remaining_us = -1;
	}
	/* a lock wait around a name that is free is not "held": InnoDB
	 * locks the gap next to a key another grant updates, and a grant
	 * without time to wait fails on it at once. Look (no lock), and
	 * try again, quickly: 1 to 32 ms, 63 ms in all, which outlasts a
	 * renewer's batch of 100 rows on a loaded machine (3 tries, 7 ms,
	 * once answered busy for a free name beside one) */
	if (transient && (a->wait_ms == 0 || now >= a->deadline) && a->free_retries < 6 &&
	    name_is_free(c, a->t, a->name)) {
		lks_sleep_us(1000 << a->free_retries++);
		return ACQ_AGAIN;
	}
	/* a semaphore's slot went to a racing grant (or the first, random
	 * try missed): another may be free, look again at once; a newcomer
	 * whom the line held back (the slot free, yet not granted) waits in
	 * it instead */
	if (a->permits && (a->holding || !a->room || g->remaining_us > 0) && a->quick++ < 3)
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
		/* a semaphore's line moves by the head's grants, not by one
		 * holder's expiry: stay in it (a waiter whose wait ran out would
		 * line up again at the back, behind later arrivals) */
		if (a->permits)
			delay = lks_line_wait_us(QUEUE_PATIENCE_MAX_US, false, a->deadline - now);
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
		lks_baton_give_quietly(c, a->key); /* the next in line is the head now */
	else if (a->holding)
		lks_baton_register(c, l);
	lks_lease_set_deadline(l, a->sent, a->g.remaining_us);
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
	if (permits < 1) { /* 0 would mean "a plain lease" below: refused here, as passed */
		if (out)
			*out = NULL;
		int rc = lks_conn_check(c);
		return rc ? rc : lks_semaphore_check(c, name, permits);
	}
	return acquire_run(out, c, name, permits, ttl_ms, wait_ms, opts);
}

int lks_lease_acquire_options_init(lks_lease_acquire_options *opts, unsigned int version)
{
	static const lks_lease_acquire_options defaults = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	return lks_options_init(opts, &defaults, version, acquire_sizes, LKS_LEASE_ACQUIRE_OPTIONS_VERSION);
}

/* A grant statement cut off by a lost connection (the server may still
 * commit it after the client gave up): remembered on the handle, given back
 * by its next lks_conn_reset, which the caller needs before using the
 * handle again. The holder id is this acquire's own, so nothing else can
 * match it. */
void lks_untold_note(lks_conn *c, const char *t, const char *name, bool prefix, const char *holder)
{
	struct lks_untold *u = &c->untold;
	snprintf(u->table_q, sizeof u->table_q, "%s", t);
	snprintf(u->name, sizeof u->name, "%s", name);
	u->prefix = prefix;
	snprintf(u->holder, sizeof u->holder, "%s", holder);
	u->session = c->ops->session_id ? c->ops->session_id(c, u->server, sizeof u->server) : 0;
}

void lks_untold_give_back(lks_conn *c)
{
	struct lks_untold u = c->untold;
	char server[sizeof u.server] = "";
	int rc;
	if (!u.holder[0] || !c->ops->give_back_untold)
		return;
	memset(&c->untold, 0, sizeof c->untold);
	/* an id is only the old session's on the same server: a multi-host
	 * URL may have reconnected elsewhere, where that id is someone else's */
	if (u.session && (c->ops->session_id(c, server, sizeof server), strcmp(server, u.server)))
		u.session = 0;
	if ((rc = c->ops->give_back_untold(c, u.table_q, u.name, u.prefix, u.holder, u.session))) {
		lks_log(c, 1, "a grant of %s cut off by a lost connection could not be given back (%s):"
		              " it expires at its TTL", u.name, c->errmsg);
		lks_clear_error(c);
	}
}
