/*
 * Several names at once, all or nothing (lks_lease_acquire_all).
 *
 * Names are taken in byte order, so two callers with overlapping sets never
 * wait for each other in a circle: the classic ordered-locking argument. Only
 * the next name in order is waited for (in its waiting room, as a single
 * acquire waits), and while it is, the leases already taken are renewed
 * often enough that none expires before the set is complete. The first
 * names are tried without waiting when the set starts: an uncontended set
 * costs one grant per name.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "lockstock.h"

typedef struct set_entry {
	const char *name;
	size_t index; /* in the caller's order */
} set_entry;

static int cmp_entries(const void *x, const void *y)
{
	return strcmp(((const set_entry *)x)->name, ((const set_entry *)y)->name);
}

static void add_stats(lks_lease_acquire_stats *sum, const lks_lease_acquire_stats *one)
{
	sum->attempts += one->attempts;
	sum->waited_us += one->waited_us;
	sum->queued += one->queued;
}

/* Gives back everything taken; keeps the first error on the handle. */
static void release_taken(lks_conn *c, lks_lease **out, size_t n)
{
	lks_error_saved saved;
	lks_error_save(c, &saved);
	for (size_t i = 0; i < n; i++)
		if (out[i]) {
			lks_lease_release(c, out[i]);
			lks_lease_free(out[i]);
			out[i] = NULL;
		}
	lks_error_restore(c, &saved);
}

/* How long one wait for the next name may last before the leases already
 * held need renewing: a third of the shortest time they have left. */
static int64_t renew_horizon_ms(lks_lease **out, const set_entry *e, size_t taken)
{
	int64_t h = -1;
	for (size_t i = 0; i < taken; i++) {
		int64_t left = lks_lease_remaining_ms(out[e[i].index]) / 3;
		if (h < 0 || left < h)
			h = left;
	}
	return h;
}

/* Renew the members taken so far that have less than two thirds of their
 * TTL left (all of them with every_one). LKS_LOST when one ran out or was
 * taken over meanwhile (a pause between members, a stall): the set is not
 * whole and must start again. */
static int keep_alive(lks_conn *c, lks_lease **out, const set_entry *e, size_t taken,
                      int64_t ttl_ms, bool every_one)
{
	int rc = LKS_OK;
	for (size_t i = 0; i < taken && rc == LKS_OK; i++) {
		lks_lease *l = out[e[i].index];
		if (every_one || lks_lease_is_lost(l) || lks_lease_remaining_ms(l) < ttl_ms * 2 / 3)
			rc = lks_lease_renew(c, l, ttl_ms);
	}
	return rc;
}

int lks_lease_acquire_all(lks_lease **out, lks_conn *c, const char *const *names, size_t n,
                          int64_t ttl_ms, int64_t wait_ms, const lks_lease_acquire_options *opts)
{
	set_entry e[LKS_LEASE_SET_MAX];
	lks_lease_acquire_options o;
	lks_lease_acquire_stats sum = {0}, one;
	int64_t deadline;
	size_t taken = 0;
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!out)
		return lks_set_error(c, LKS_EINVAL, "out is NULL");
	if (!names || n == 0 || n > LKS_LEASE_SET_MAX)
		return lks_set_error(c, LKS_EINVAL, "names must be 1..%d names", LKS_LEASE_SET_MAX);
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (wait_ms < 0 || wait_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "wait must be 0..%lld ms, got %lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS, (long long)wait_ms);
	for (size_t i = 0; i < n; i++) {
		if (!names[i])
			return lks_set_error(c, LKS_EINVAL, "names[%zu] is NULL", i);
		e[i].name = names[i];
		e[i].index = i;
	}
	qsort(e, n, sizeof *e, cmp_entries);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(e[i - 1].name, e[i].name))
			return lks_set_error(c, LKS_EINVAL, "name %s is in the set twice", e[i].name);
	if ((rc = lks_acquire_options_copy(c, opts, &o)))
		return rc;
	o.stats = &one;
	deadline = lks_now_us() + wait_ms * 1000;
	for (;;) {
		int64_t left_ms = (deadline - lks_now_us()) / 1000, horizon, this_wait;
		if (left_ms < 0)
			left_ms = 0;
		if (taken == n) {
			/* the whole set, checked before it is handed out: a member
			 * that ran out while the others were taken (the process
			 * paused) is renewed, or the set starts again */
			if ((rc = keep_alive(c, out, e, n - 1, ttl_ms, false)) != LKS_LOST)
				break;
		} else {
			lks_lease **slot = &out[e[taken].index];
			horizon = renew_horizon_ms(out, e, taken);
			this_wait = horizon >= 0 && horizon < left_ms ? horizon : left_ms;
			rc = lks_lease_acquire(slot, c, e[taken].name, ttl_ms, this_wait, &o);
			add_stats(&sum, &one);
			if (rc == LKS_OK) {
				taken++;
				continue;
			}
			if ((rc != LKS_TIMEOUT && rc != LKS_BUSY) || this_wait >= left_ms)
				break;
			/* the held leases need their renewal before waiting on */
			if ((rc = keep_alive(c, out, e, taken, ttl_ms, true)) == LKS_OK)
				continue;
			if (rc != LKS_LOST)
				break;
		}
		/* a member was lost before the set was whole: give back the rest
		 * and start again while there is time */
		release_taken(c, out, n);
		taken = 0;
		if (lks_now_us() >= deadline) {
			rc = lks_set_error(c, wait_ms > 0 ? LKS_TIMEOUT : LKS_BUSY,
			                   "a member of the set ran out before the set was whole, and the"
			                   " wait ended");
			break;
		}
	}
	if (opts && opts->stats && opts->version >= 1 && opts->version <= LKS_LEASE_ACQUIRE_OPTIONS_VERSION)
		memcpy(opts->stats, &sum, opts->version == 1 ? offsetof(lks_lease_acquire_stats, queued)
		                                            : sizeof sum);
	if (taken == n && rc == LKS_OK)
		return LKS_OK;
	if (rc == LKS_BUSY && wait_ms > 0)
		rc = lks_set_error(c, LKS_TIMEOUT, "%s", lks_conn_errmsg(c));
	release_taken(c, out, n);
	return rc;
}

int lks_lease_release_all(lks_conn *c, lks_lease *const *leases, size_t n)
{
	lks_error_saved first;
	int rc = lks_conn_check(c), first_rc = LKS_OK;
	if (rc)
		return rc;
	if (!leases && n)
		return lks_set_error(c, LKS_EINVAL, "leases is NULL");
	for (size_t i = 0; i < n; i++) {
		if (!leases[i])
			continue;
		rc = lks_lease_release(c, leases[i]);
		if (rc != LKS_OK && first_rc == LKS_OK) {
			first_rc = rc;
			lks_error_save(c, &first);
		}
	}
	if (first_rc != LKS_OK)
		lks_error_restore(c, &first);
	return first_rc;
}
