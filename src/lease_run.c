/* A function under a lease (lks_lease_run): acquired, renewed in the
 * background while the function runs, released after it, or kept until a
 * minimum hold has passed (ShedLock's lockAtLeastFor). */
#include "lease.h"

int lks_lease_run(lks_conn *c, const char *name, int64_t ttl_ms, int64_t wait_ms,
                  int64_t at_least_ms, const lks_lease_acquire_options *opts, lks_lease_fn fn,
                  void *arg)
{
	lks_lease *l = NULL;
	lks_lease_autorenew_options ro = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	int64_t start;
	int rc = lks_conn_check(c), fn_rc;
	if (rc)
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "lease run: fn is NULL");
	if (at_least_ms < 0 || at_least_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "lease run: at_least_ms must be 0..%lld, got %lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS, (long long)at_least_ms);
	start = lks_now_us();
	if ((rc = lks_lease_acquire(&l, c, name, ttl_ms, wait_ms, opts)))
		return rc;
	/* renewed on a connection of its own, so fn has c to itself; a handle
	 * adopted from a native connection has no URL: fn then runs within
	 * the TTL, and the result says whether the lease outlived it */
	if (c->url && (rc = lks_lease_autorenew_start(l, c, NULL, &ro))) {
		lks_error_saved saved;
		lks_error_save(c, &saved);
		lks_lease_release(c, l);
		lks_lease_free(l);
		lks_error_restore(c, &saved);
		return rc;
	}
	fn_rc = fn(c, l, arg);
	lks_lease_autorenew_stop(l);
	if (lks_lease_is_lost(l)) {
		/* fn's effects were not guarded past the loss: say so, unless fn
		 * failed on its own */
		rc = fn_rc ? fn_rc
		           : lks_set_error(c, LKS_LOST, "lease %s (fence %lld) was lost while the function"
		                                        " ran", name, (long long)lks_lease_fence(l));
		lks_lease_free(l);
		return rc;
	}
	int64_t left_us = start + at_least_ms * 1000 - lks_now_us();
	lks_error_saved saved;
	lks_error_save(c, &saved);
	if (left_us > 1000)
		/* held at least that long from the call, on the server's clock:
		 * shortened to what is left, then it runs out on its own */
		rc = lks_lease_renew(c, l, left_us / 1000);
	else
		rc = lks_lease_release(c, l);
	lks_lease_free(l);
	if (fn_rc) {
		lks_error_restore(c, &saved);
		return fn_rc;
	}
	return rc == LKS_LOST ? lks_set_error(c, LKS_LOST, "lease %s was lost before the function"
	                                                   " ended", name)
	                      : rc;
}
