/* Pessimistic leases: the table, names and TTLs, local deadlines, the
 * batons a connection holds, renew, release and free. The acquire loop is
 * in lease_acquire.c, fenced writes in lease_fenced.c, inspection and
 * administration in lease_admin.c. */
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
	c->owner_col = c->payload_col = c->base_col = -1;
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

int lks_lease_owner_column(lks_conn *c, const char *t, bool *has)
{
	return owner_column(c, t, has);
}

int lks_lease_check_name(lks_conn *c, const char *name)
{
	return check_name(c, name);
}

int lks_lease_install(lks_conn *c)
{
	char t[QMAX];
	int rc = lks_conn_check(c);
	if (rc || (rc = table_q(c, t)))
		return rc;
	c->owner_col = c->payload_col = c->base_col = -1;
	return c->ops->lease_install(c, t);
}

/* Whether the lease table has the owner column, asked once per handle and
 * table (lks_lease_install and lks_lease_set_table ask again). */
static int owner_column(lks_conn *c, const char *t, bool *has)
{
	int rc;
	if (c->owner_col < 0) {
		bool base = false;
		if ((rc = c->ops->lease_has_owner(c, t, has)) ||
		    (c->ops->lease_has_base && (rc = c->ops->lease_has_base(c, t, &base))))
			return rc;
		c->owner_col = *has;
		c->base_col = base;
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

int lks_lease_check_ttl(lks_conn *c, int64_t ttl_ms)
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

/* the session ended (close, reset): its batons are gone with it */
static void forget_batons(lks_conn *c)
{
	while (c->batons)
		baton_unregister(c->batons);
}

void lks_baton_register(lks_conn *c, lks_lease *l)
{
	c->session_end = forget_batons;
	l->baton_conn = c;
	l->baton_next = c->batons;
	c->batons = l;
}

/* Give the baton back without losing the error the caller will see. */
void lks_baton_give_quietly(lks_conn *c, uint64_t baton)
{
	lks_error_saved saved;
	if (!c->native)
		return;
	lks_error_save(c, &saved);
	c->ops->baton_give(c, baton);
	lks_error_restore(c, &saved);
}

int lks_lease_check(lks_conn *c, const lks_lease *lease)
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
	int rc = lks_lease_check(c, lease);
	if (rc || (rc = lks_lease_check_ttl(c, ttl_ms)))
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
	int rc = lks_lease_check(c, lease);
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
			lks_baton_give_quietly(c, lease->baton);
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
	if (!lease || lks_lease_autorenew_defer_free(lease))
		return;
	lks_lease_autorenew_stop(lease);
	if (lease->baton_conn) {
		lks_conn *c = lease->baton_conn;
		baton_unregister(lease);
		lks_baton_give_quietly(c, lease->baton);
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
