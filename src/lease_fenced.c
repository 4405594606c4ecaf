/* Fenced writes: one transaction that holds each lease row (FOR SHARE, or
 * an UPDATE of it where share locks are weak), runs the caller's writes and
 * commits, so a takeover is ordered after it and a stale holder writes
 * nothing. */
#include <stdlib.h>
#include <string.h>
#include "lease.h"

/*
 * A fenced write that failed transiently (deadlock, serialization failure,
 * and on Galera a certification failure at COMMIT or a takeover applied
 * while it ran) wrote nothing. When the lease is no longer this grant, that
 * is why: LKS_LOST. Otherwise the caller may retry: LKS_ETRANSIENT.
 */
static int transient_or_lost(lks_conn *c, const lks_lease *lease)
{
	char cause[LKS_ERRMSG_MAX];
	lks_lease_info info;
	lks_rows r;
	bool current = true; /* cannot tell: keep the transient error */
	memcpy(cause, c->errmsg, sizeof cause);
	if (c->ops->lease_select(c, lease->table_q, lease->name, false, &r) == LKS_OK) {
		current = r.nrows == 1 && lks_lease_info_fill(c, &r, 0, &info) == LKS_OK && info.held &&
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
	int rc = lks_lease_check(c, lease);
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
