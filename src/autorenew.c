/* Background lease renewal on a connection of its own. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lease.h"

/* the renew thread's events and log lines go to the options' hooks */
static void renew_event(lks_lease *l, lks_event_kind kind, int64_t duration_us, int status)
{
	lks_event ev = {kind, l->name, l->fence, duration_us, 0, 0, status};
	if (l->ar.on_event)
		l->ar.on_event(&ev, l->ar.arg);
}

static void renew_log(lks_lease *l, int level, const char *what, int status)
{
	char msg[LKS_ERRMSG_MAX + 128];
	if (!l->ar.on_log)
		return;
	snprintf(msg, sizeof msg, "auto-renew of lease %s (fence %lld): %s: %s", l->name,
	         (long long)l->fence, what,
	         l->renew_conn && lks_conn_errmsg(l->renew_conn)[0] ? lks_conn_errmsg(l->renew_conn)
	                                                           : lks_strerror(status));
	l->ar.on_log(level, msg, l->ar.arg);
}

static void lost(lks_lease *l, int status)
{
	lks_lease_mark_lost(l);
	renew_event(l, LKS_EVENT_LOST, 0, status);
	renew_log(l, 0, "lease lost", status);
	l->lost_reported = true;
	if (l->ar.on_lost)
		l->ar.on_lost(l, status, l->ar.arg);
}

/* Wait up to us on the monotonic clock; true when asked to stop. */
static bool wait_stop(lks_lease *l, int64_t us)
{
	struct timespec ts;
	bool stop;
	lks_monotonic_deadline(us, &ts);
	pthread_mutex_lock(&l->mu);
	while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
		;
	stop = l->stop;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

/* A renewal that hangs must not outlive the lease: with per-call op
 * timeouts its wait ends at the local deadline (else the renew connection
 * gets a read timeout of half the TTL when it opens, see renew_url). */
static void bound_to_deadline(lks_lease *l)
{
	lks_conn *c = l->renew_conn;
	int64_t left = atomic_load(&l->deadline_us) - lks_now_us();
	if (!(c->ops->caps & LKS_CAP_OP_TIMEOUT))
		return;
	/* a renewal may still succeed until the server's expiry (a margin
	 * after the local deadline); and a floor, so a slow but answering
	 * server (valgrind, a busy host) still reports what it knows */
	left += l->margin_us < 0 ? l->ttl_us / 10 : l->margin_us;
	if (left < 500000)
		left = 500000;
	if (l->renew_op_timeout_us == 0 || left < l->renew_op_timeout_us)
		c->op_timeout_us = left;
	else
		c->op_timeout_us = l->renew_op_timeout_us;
}

/* A hook runs on the renew thread: calls it makes on its own lease must
 * not join or free the thread from under itself. The thread says which
 * lease it renews in a variable of its own (l->thread is written by
 * pthread_create, possibly after the thread has started). */
static _Thread_local const lks_lease *renewing_here;

static bool on_renew_thread(const lks_lease *l)
{
	return renewing_here == l;
}

static void stop_from_hook(lks_lease *l, bool free_after)
{
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	l->free_on_exit = l->free_on_exit || free_after;
	pthread_mutex_unlock(&l->mu);
}

bool lks_lease_autorenew_defer_free(lks_lease *l)
{
	if (!on_renew_thread(l))
		return false;
	stop_from_hook(l, true);
	return true;
}

static void release_renewal(lks_lease *l)
{
	pthread_cond_destroy(&l->cv);
	lks_conn_close(l->renew_conn);
	l->renew_conn = NULL;
	lks_free_secret(l->renew_url); /* it may hold a password */
	l->renew_url = NULL;
	l->renewing = false;
}

/* The loop ended after a hook freed the lease: nobody will join this
 * thread, and the lease is this thread's to free. */
static void *free_after_hook(lks_lease *l)
{
	pthread_detach(pthread_self());
	release_renewal(l);
	renewing_here = NULL;
	lks_lease_free(l);
	return NULL;
}

static void *renew_loop(void *arg)
{
	lks_lease *l = arg;
	renewing_here = l;
	int64_t interval = l->ar.interval_ms * 1000;
	int64_t pause = interval;
	while (!wait_stop(l, pause)) {
		int rc;
		if (!l->renew_conn && lks_conn_open(&l->renew_conn, l->renew_url) != LKS_OK) {
			lks_conn_close(l->renew_conn);
			l->renew_conn = NULL;
			rc = LKS_ECONN;
			renew_event(l, LKS_EVENT_RENEW_FAILED, 0, rc);
		} else {
			int64_t t0 = lks_now_us();
			bound_to_deadline(l);
			rc = lks_lease_renew_on(l->renew_conn, l, l->ttl_us);
			if (rc != LKS_LOST)
				renew_event(l, rc == LKS_OK ? LKS_EVENT_RENEWED : LKS_EVENT_RENEW_FAILED,
				            lks_now_us() - t0, rc);
		}
		if (wait_stop(l, 0)) /* a hook stopped or freed it */
			break;
		if (rc == LKS_OK) {
			pause = interval;
			continue;
		}
		if (rc != LKS_LOST)
			renew_log(l, 1, "renewal failed, retrying until the local deadline", rc);
		if (rc == LKS_LOST) {
			lost(l, rc);
			break;
		}
		/* server unreachable: reconnect and retry quickly until the local
		 * deadline, then report the lease lost */
		if (rc == LKS_ECONN) {
			lks_conn_close(l->renew_conn);
			l->renew_conn = NULL;
		}
		if (lks_now_us() >= atomic_load(&l->deadline_us)) {
			lost(l, rc);
			break;
		}
		pause = interval / 4 > 1000 ? interval / 4 : 1000;
		/* a reconnect to a server that does not answer takes its whole
		 * connect timeout: when that would pass the deadline, wait for the
		 * deadline instead and report the loss on time */
		int64_t left = atomic_load(&l->deadline_us) - lks_now_us();
		if (!l->renew_conn && left < l->renew_connect_us) {
			if (wait_stop(l, left > 0 ? left : 0))
				break;
			lost(l, rc);
			break;
		}
	}
	return l->free_on_exit ? free_after_hook(l) : NULL;
}

/* The renew connection's URL: the caller's, with a connect timeout of a
 * quarter of the TTL (at least what the client library honours) unless it
 * has one, and without per-call op timeouts a read and write timeout of
 * half the TTL, so neither a hung renewal nor a hung reconnect outlives the
 * lease by much (a later op-timeout wins over an earlier one).
 * *connect_us: that connect timeout. */
char *lks_renew_url(const lks_backend_ops *ops, const char *url, int64_t ttl_us,
                    int64_t *connect_us)
{
	size_t n = strlen(url) + 64, o;
	long long half = ttl_us / 2000000 > 0 ? ttl_us / 2000000 : 1;
	long long floor_s = ops->connect_timeout_min_s;
	long long quarter = ttl_us / 4000000 > floor_s ? ttl_us / 4000000 : floor_s;
	/* within what the URL parser accepts (connect-timeout 1..3600 s,
	 * op-timeout ..86400 s): leases run up to LKS_LEASE_TTL_MAX_MS (7 days) */
	if (quarter > 3600)
		quarter = 3600;
	if (half > 86400)
		half = 86400;
	char *u = malloc(n);
	if (!u)
		return NULL;
	o = (size_t)snprintf(u, n, "%s", url);
	*connect_us = quarter * 1000000;
	if (!strstr(url, "connect_timeout") && !strstr(url, "connect-timeout"))
		o += (size_t)snprintf(u + o, n - o, "%c%s=%lld", strchr(u, '?') ? '&' : '?',
		                      ops->connect_timeout_key, quarter);
	if (!(ops->caps & LKS_CAP_OP_TIMEOUT) && !strstr(url, "read-timeout") &&
	    !strstr(url, "read_timeout"))
		snprintf(u + o, n - o, "%cop-timeout=%lld", strchr(u, '?') ? '&' : '?', half);
	return u;
}

/* what each version of lks_lease_autorenew_options has (version 2: the hooks) */
static const size_t autorenew_sizes[] = {offsetof(lks_lease_autorenew_options, on_event),
                                         sizeof(lks_lease_autorenew_options)};

int lks_lease_autorenew_start(lks_lease *l, lks_conn *c, const char *url,
                              const lks_lease_autorenew_options *opts)
{
	static const lks_lease_autorenew_options defaults = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	lks_lease_autorenew_options o = defaults;
	pthread_condattr_t ca;
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!l)
		return lks_set_error(c, LKS_EINVAL, "lease is NULL");
	if ((rc = lks_options_copy(c, "autorenew", &o, opts, autorenew_sizes,
	                           LKS_LEASE_AUTORENEW_OPTIONS_VERSION)))
		return rc;
	if (l->renewing)
		return lks_set_error(c, LKS_EINVAL, "auto-renew is already running for this lease");
	if (atomic_load(&l->renewer))
		return lks_set_error(c, LKS_EINVAL, "this lease is in a renewer (lks_renewer_add)");
	if (!url)
		url = c->url;
	if (!url)
		return lks_set_error(c, LKS_EINVAL,
		                     "auto-renew needs a URL: the handle adopted a native connection");
	if (o.interval_ms == 0)
		o.interval_ms = l->ttl_us / 3000 > 0 ? l->ttl_us / 3000 : 1;
	/* compared in ms: interval_ms * 1000 could overflow */
	if (o.interval_ms < 0 || o.interval_ms >= l->ttl_us / 1000)
		return lks_set_error(c, LKS_EINVAL, "autorenew interval must be 1 ms .. TTL");
	l->ar = o;
	if (lks_url_backend(url) != c->ops->id)
		return lks_set_error(c, LKS_EINVAL, "auto-renew URL names another backend");
	l->renew_url = lks_renew_url(c->ops, url, l->ttl_us, &l->renew_connect_us);
	if (!l->renew_url)
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	if ((rc = lks_conn_open(&l->renew_conn, l->renew_url))) {
		lks_set_error(c, rc, "auto-renew connection: %s", lks_conn_errmsg(l->renew_conn));
		goto fail;
	}
	l->renew_op_timeout_us = l->renew_conn->op_timeout_us;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	l->stop = false;
	l->renewing = true; /* before the thread can read it (a hook) */
	if (pthread_create(&l->thread, NULL, renew_loop, l)) {
		l->renewing = false;
		pthread_cond_destroy(&l->cv);
		rc = lks_set_error(c, LKS_ENOMEM, "cannot start the auto-renew thread");
		goto fail;
	}
	return LKS_OK;
fail:
	lks_conn_close(l->renew_conn);
	l->renew_conn = NULL;
	lks_free_secret(l->renew_url); /* it may hold a password */
	l->renew_url = NULL;
	return rc;
}

void lks_lease_autorenew_stop(lks_lease *l)
{
	if (l)
		lks_renewer_forget(l);
	if (!l || !l->renewing)
		return;
	if (on_renew_thread(l)) {
		/* from the lease's own hook: the loop ends once the hook returns;
		 * the thread is joined by a later stop or free */
		stop_from_hook(l, false);
		return;
	}
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	release_renewal(l);
	/* lost by its local deadline before the thread noticed (the caller
	 * saw lks_lease_is_lost and stopped or freed it): on_lost still comes,
	 * once, here */
	if (!l->lost_reported && l->ar.on_lost && lks_lease_is_lost(l)) {
		l->lost_reported = true;
		l->ar.on_lost(l, LKS_LOST, l->ar.arg);
	}
}

int lks_lease_autorenew_options_init(lks_lease_autorenew_options *opts, unsigned int version)
{
	static const lks_lease_autorenew_options defaults = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	return lks_options_init(opts, &defaults, version, autorenew_sizes,
	                        LKS_LEASE_AUTORENEW_OPTIONS_VERSION);
}
