/*
 * One renewer for many leases: one thread, one connection, batched
 * statements (lks_renewer_*). Each lease is renewed every third of its TTL;
 * leases that fall due close together go in one statement (up to
 * BATCH_MAX), so 1,000 leases of a 30 s TTL cost about one statement every
 * few seconds instead of 1,000 threads and connections.
 *
 * A lease the statement did not renew is lost (taken over, expired, force
 * released): marked lost and reported at once. A statement that failed
 * (server gone, timeout) is retried quickly, with a reconnect, until each
 * lease's local deadline, where that lease is reported lost: the same
 * promise auto-renew makes, per lease. A second thread, the watchdog, keeps
 * that promise while a statement hangs (a server that stopped answering,
 * where the client library's read timeout may be longer than a TTL): it
 * reports every lease whose local deadline passed, and it alone calls
 * on_lost, so hooks never run on the renewing thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lease.h"

#define BATCH_MAX 256
/* leases due within this much of the first go in its statement */
#define GATHER_US 200000

typedef struct entry {
	lks_lease *l;
	int64_t interval_us, next_us;
	bool in_flight;
	int last_rc; /* the last renewal's failure, LKS_OK when none */
} entry;

/* a lost lease waiting for the watchdog to report it */
typedef struct lost_one {
	lks_lease *l;
	int status;
} lost_one;

struct lks_renewer {
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* work, stop, or a delivery finished */
	pthread_t thread, watchdog;
	bool stop;
	entry *e;
	size_t n, cap;
	lost_one *lost;         /* to report (watchdog) */
	size_t nlost, caplost;
	lks_lease *delivering; /* lease whose on_lost is running (mu released) */
	lks_conn *conn;
	char *url;
	int64_t connect_us;
	lks_renewer_options o;
	const lks_backend_ops *ops;
};

static void emit(lks_renewer *r, lks_event_kind kind, const lks_lease *l, int64_t us, int batch,
                 int status)
{
	lks_event ev = {kind, l->name, l->fence, us, batch, 0, status};
	if (r->o.on_event)
		r->o.on_event(&ev, r->o.arg);
}

static void log_line(lks_renewer *r, int level, const char *fmt, const char *what, const char *why)
{
	char msg[LKS_ERRMSG_MAX + 512];
	if (!r->o.on_log)
		return;
	snprintf(msg, sizeof msg, fmt, what, why);
	r->o.on_log(level, msg, r->o.arg);
}

/* JSON string: names are UTF-8 (checked at the grant); quote, backslash and
 * control characters escaped. */
static bool json_str(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t need = *len + 6 * strlen(s) + 3;
	if (need > *cap) {
		size_t cap2 = need * 2;
		char *b = realloc(*buf, cap2);
		if (!b)
			return false;
		*buf = b;
		*cap = cap2;
	}
	(*buf)[(*len)++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			(*buf)[(*len)++] = '\\';
			(*buf)[(*len)++] = (char)ch;
		} else if (ch < 0x20) {
			*len += (size_t)sprintf(*buf + *len, "\\u%04x", ch);
		} else {
			(*buf)[(*len)++] = (char)ch;
		}
	}
	(*buf)[(*len)++] = '"';
	(*buf)[*len] = '\0';
	return true;
}

static bool json_raw(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		size_t cap2 = (*len + n + 1) * 2;
		char *b = realloc(*buf, cap2);
		if (!b)
			return false;
		*buf = b;
		*cap = cap2;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	return true;
}

/* One batch as it left: the leases (still registered when the reply is
 * read, or they were removed meanwhile) and what was sent for each. */
typedef struct batch {
	lks_lease *l[BATCH_MAX];
	char table_q[2 * LKS_IDENT_MAX + 8];
	int64_t fence[BATCH_MAX];
	size_t n;
	char *json;
	/* when the batch's soonest lease can no longer be renewed (its local
	 * deadline plus the margin before the server's expiry) */
	int64_t until_us;
} batch;

/* Under mu: the due leases of one table, marked in flight; *wait_us until
 * the next is due when none is (-1: nothing registered). */
static bool gather(lks_renewer *r, batch *b, int64_t *wait_us)
{
	int64_t now = lks_now_us(), first = -1;
	size_t len = 0, cap = 0;
	b->n = 0;
	b->json = NULL;
	for (size_t i = 0; i < r->n; i++)
		if (!r->e[i].in_flight && (first < 0 || r->e[i].next_us < first))
			first = r->e[i].next_us;
	if (first < 0 || first > now) {
		*wait_us = first < 0 ? -1 : first - now;
		return false;
	}
	for (size_t i = 0; i < r->n && b->n < BATCH_MAX; i++) {
		entry *e = &r->e[i];
		char tail[96];
		if (e->in_flight || e->next_us > now + GATHER_US)
			continue;
		if (b->n == 0)
			memcpy(b->table_q, e->l->table_q, sizeof b->table_q);
		else if (strcmp(b->table_q, e->l->table_q))
			continue; /* another table: its own statement, next */
		snprintf(tail, sizeof tail, ",\"h\":\"%s\",\"f\":%lld,\"t\":%lld}", e->l->holder,
		         (long long)e->l->fence, (long long)atomic_load(&e->l->ttl_us));
		if (!json_raw(&b->json, &len, &cap, b->n ? ",{\"n\":" : "[{\"n\":") ||
		    !json_str(&b->json, &len, &cap, e->l->name) || !json_raw(&b->json, &len, &cap, tail))
			break; /* out of memory: what fits goes now, the rest next time */
		e->in_flight = true;
		int64_t until = atomic_load(&e->l->deadline_us) +
		                (e->l->margin_us < 0 ? atomic_load(&e->l->ttl_us) / 10 : e->l->margin_us);
		if (b->n == 0 || until < b->until_us)
			b->until_us = until;
		b->l[b->n] = e->l;
		b->fence[b->n] = e->l->fence;
		b->n++;
	}
	if (b->n == 0 || !json_raw(&b->json, &len, &cap, "]")) {
		for (size_t i = 0; i < r->n; i++)
			r->e[i].in_flight = false;
		free(b->json);
		b->json = NULL;
		b->n = 0;
		*wait_us = 1000;
		return false;
	}
	return true;
}

static entry *find(lks_renewer *r, const lks_lease *l)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->e[i].l == l)
			return &r->e[i];
	return NULL;
}

static void drop(lks_renewer *r, entry *e)
{
	*e = r->e[--r->n];
}

static void lose(lks_renewer *r, entry *e, int status);

/* Under mu: mark it lost, take it out, and queue it for the watchdog to
 * report. A full queue that cannot grow reports it without the hook. */
static void lose(lks_renewer *r, entry *e, int status)
{
	lks_lease *l = e->l;
	lks_lease_mark_lost(l);
	*e = r->e[--r->n];
	if (r->nlost == r->caplost) {
		size_t cap = r->caplost ? 2 * r->caplost : 16;
		lost_one *q = realloc(r->lost, cap * sizeof *q);
		if (!q) {
			atomic_store(&l->renewer, NULL);
			return;
		}
		r->lost = q;
		r->caplost = cap;
	}
	r->lost[r->nlost++] = (lost_one){l, status};
	pthread_cond_broadcast(&r->cv);
}

/* Watchdog, under mu: report one queued loss with mu released;
 * lks_renewer_remove on it waits until this returns. */
static void deliver_lost(lks_renewer *r)
{
	lost_one x = r->lost[0];
	memmove(r->lost, r->lost + 1, --r->nlost * sizeof *r->lost);
	r->delivering = x.l;
	pthread_mutex_unlock(&r->mu);
	emit(r, LKS_EVENT_LOST, x.l, 0, 0, x.status);
	log_line(r, 0, "renewer: lease %s lost: %s", x.l->name, lks_strerror(x.status));
	if (r->o.on_lost)
		r->o.on_lost(x.l, x.status, r->o.arg);
	pthread_mutex_lock(&r->mu);
	atomic_store(&x.l->renewer, NULL);
	r->delivering = NULL;
	pthread_cond_broadcast(&r->cv);
}

/* Leases whose local deadline passed without a renewal: lost, whatever the
 * renewing thread is doing; then wait until the next deadline or news. */
static void *watch_loop(void *arg)
{
	lks_renewer *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		int64_t now = lks_now_us(), next = -1;
		struct timespec ts;
		if (r->nlost) {
			deliver_lost(r);
			continue;
		}
		for (size_t i = 0; i < r->n;) {
			int64_t d = atomic_load(&r->e[i].l->deadline_us);
			if (d <= now) {
				lose(r, &r->e[i], r->e[i].last_rc ? r->e[i].last_rc : LKS_TIMEOUT);
				continue; /* the last entry moved into i */
			}
			if (next < 0 || d < next)
				next = d;
			i++;
		}
		if (r->nlost)
			continue;
		if (next < 0) {
			pthread_cond_wait(&r->cv, &r->mu);
		} else {
			lks_monotonic_deadline(next - now, &ts);
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* The renewer's statement is bounded by the batch's soonest lease (read
 * in gather: with mu released the leases may be freed). */
static void bound(lks_renewer *r, const batch *b)
{
	int64_t left = b->until_us - lks_now_us();
	if (r->conn->ops->caps & LKS_CAP_OP_TIMEOUT)
		r->conn->op_timeout_us = left < 500000 ? 500000 : left;
}

/* Send one batch (mu released) and apply the reply (mu held again). */
static void renew_batch(lks_renewer *r, batch *b)
{
	lks_rows rows = {0};
	int64_t sent = 0, took = 0;
	int rc;
	pthread_mutex_unlock(&r->mu);
	if (!r->conn && lks_conn_open(&r->conn, r->url) != LKS_OK) {
		lks_conn_close(r->conn);
		r->conn = NULL;
		rc = LKS_ECONN;
	} else {
		bound(r, b);
		sent = lks_now_us();
		rc = r->conn->ops->lease_renew_many(r->conn, b->table_q, b->json, &rows);
		took = lks_now_us() - sent;
		if (rc != LKS_OK)
			log_line(r, 1, "renewer: a renewal failed, retrying until the local deadline: %s%s",
			         lks_conn_errmsg(r->conn), "");
		if (rc == LKS_ECONN || rc == LKS_EUNKNOWN) {
			lks_conn_close(r->conn);
			r->conn = NULL;
		}
	}
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < b->n; i++) {
		lks_lease *l = b->l[i];
		entry *e = find(r, l);
		int row = -1;
		if (!e)
			continue; /* removed (maybe freed) while the statement ran */
		if (l->fence != b->fence[i] || !e->in_flight)
			continue; /* another lease since, at the same address */
		e->in_flight = false;
		if (rc == LKS_OK) {
			for (int k = 0; k < rows.nrows && row < 0; k++) {
				int64_t f = 0;
				if (!strcmp(lks_rows_get(&rows, k, 0), l->name) &&
				    !strcmp(lks_rows_get(&rows, k, 1), l->holder) &&
				    !lks_parse_i64(lks_rows_get(&rows, k, 2), &f) && f == l->fence)
					row = k;
			}
			if (row >= 0) {
				int64_t remaining = 0;
				lks_parse_i64(lks_rows_get(&rows, row, 3), &remaining);
				lks_lease_set_deadline(l, sent, remaining);
				e->next_us = sent + e->interval_us;
				e->last_rc = LKS_OK;
				emit(r, LKS_EVENT_RENEWED, l, took, (int)b->n, LKS_OK);
				continue;
			}
			lose(r, e, LKS_LOST);
			continue;
		}
		/* failed: again soon; the watchdog reports it at its local deadline */
		e->last_rc = rc;
		emit(r, LKS_EVENT_RENEW_FAILED, l, 0, (int)b->n, rc);
		e->next_us = lks_now_us() + (e->interval_us / 4 > 1000 ? e->interval_us / 4 : 1000);
	}
	pthread_cond_broadcast(&r->cv); /* the watchdog: later deadlines */
	lks_rows_clear(&rows);
}

static void *renew_loop(void *arg)
{
	lks_renewer *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		batch b;
		int64_t wait_us;
		if (gather(r, &b, &wait_us)) {
			renew_batch(r, &b);
			free(b.json);
			continue;
		}
		if (wait_us < 0) {
			pthread_cond_wait(&r->cv, &r->mu);
		} else {
			struct timespec ts;
			lks_monotonic_deadline(wait_us, &ts);
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Ends the renewing thread (the watchdog failed to start). */
static void stop_renewing(lks_renewer *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
}

static const size_t renewer_sizes[] = {sizeof(lks_renewer_options)};

int lks_renewer_options_init(lks_renewer_options *opts, unsigned int version)
{
	static const lks_renewer_options defaults = LKS_RENEWER_OPTIONS_INIT;
	return lks_options_init(opts, &defaults, version, renewer_sizes, LKS_RENEWER_OPTIONS_VERSION);
}

int lks_renewer_start(lks_renewer **out, lks_conn *c, const char *url,
                      const lks_renewer_options *opts)
{
	static const lks_renewer_options defaults = LKS_RENEWER_OPTIONS_INIT;
	pthread_condattr_t ca;
	lks_renewer *r;
	int rc = lks_conn_check(c);
	if (out)
		*out = NULL;
	if (rc)
		return rc;
	if (!out)
		return lks_set_error(c, LKS_EINVAL, "out is NULL");
	if (!url)
		url = c->url;
	if (!url)
		return lks_set_error(c, LKS_EINVAL,
		                     "the renewer needs a URL: the handle adopted a native connection");
	if (lks_url_backend(url) != c->ops->id)
		return lks_set_error(c, LKS_EINVAL, "renewer URL names another backend");
	if (!c->ops->lease_renew_many)
		return lks_set_error(c, LKS_EUNSUPPORTED, "this backend has no batched renewal");
	if (!(r = calloc(1, sizeof *r)))
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	r->o = defaults;
	if ((rc = lks_options_copy(c, "renewer", &r->o, opts, renewer_sizes, LKS_RENEWER_OPTIONS_VERSION))) {
		free(r);
		return rc;
	}
	r->ops = c->ops;
	/* connect timeout 2 s and, without per-call op timeouts, a read
	 * timeout of 4 s, unless the URL says otherwise: a reconnect or a
	 * hung statement costs little of any lease's TTL */
	if (!(r->url = lks_renew_url(c->ops, url, 8000000, &r->connect_us))) {
		free(r);
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	}
	if ((rc = lks_conn_open(&r->conn, r->url))) {
		lks_set_error(c, rc, "renewer connection: %s", lks_conn_errmsg(r->conn));
		lks_conn_close(r->conn);
		lks_free_secret(r->url);
		free(r);
		return rc;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&r->thread, NULL, renew_loop, r) ||
	    (pthread_create(&r->watchdog, NULL, watch_loop, r) && (stop_renewing(r), true))) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		lks_conn_close(r->conn);
		lks_free_secret(r->url);
		free(r);
		return lks_set_error(c, LKS_ENOMEM, "cannot start the renewer thread");
	}
	*out = r;
	return LKS_OK;
}

int lks_renewer_add(lks_renewer *r, lks_lease *l)
{
	lks_renewer *none = NULL;
	int64_t interval;
	if (!r || !l)
		return LKS_EINVAL;
	if (l->renewing || lks_lease_is_lost(l))
		return LKS_EINVAL; /* auto-renewed already, or nothing to renew */
	if (!atomic_compare_exchange_strong(&l->renewer, &none, r))
		return LKS_EINVAL; /* in a renewer already */
	interval = atomic_load(&l->ttl_us) / 3 > 1000 ? atomic_load(&l->ttl_us) / 3 : 1000;
	pthread_mutex_lock(&r->mu);
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		entry *e = realloc(r->e, cap * sizeof *e);
		if (!e) {
			pthread_mutex_unlock(&r->mu);
			atomic_store(&l->renewer, NULL);
			return LKS_ENOMEM;
		}
		r->e = e;
		r->cap = cap;
	}
	r->e[r->n++] = (entry){l, interval, l->granted_at_us + interval, false, LKS_OK};
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return LKS_OK;
}

int lks_renewer_remove(lks_renewer *r, lks_lease *l)
{
	entry *e;
	int rc = LKS_NOT_FOUND;
	if (!r || !l)
		return LKS_EINVAL;
	pthread_mutex_lock(&r->mu);
	/* its on_lost is running: wait for it (unless this is that call) */
	while (r->delivering == l && !pthread_equal(pthread_self(), r->watchdog))
		pthread_cond_wait(&r->cv, &r->mu);
	/* lost but not reported yet: it never will be now */
	for (size_t i = 0; i < r->nlost; i++)
		if (r->lost[i].l == l) {
			memmove(r->lost + i, r->lost + i + 1, (r->nlost - i - 1) * sizeof *r->lost);
			r->nlost--;
			break;
		}
	/* a statement in flight with it finds it gone and leaves it alone */
	if ((e = find(r, l))) {
		drop(r, e);
		rc = LKS_OK;
	}
	if (atomic_load(&l->renewer) == r)
		atomic_store(&l->renewer, NULL);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

size_t lks_renewer_count(lks_renewer *r)
{
	size_t n;
	if (!r)
		return 0;
	pthread_mutex_lock(&r->mu);
	n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

void lks_renewer_stop(lks_renewer *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_join(r->watchdog, NULL);
	for (size_t i = 0; i < r->n; i++)
		atomic_store(&r->e[i].l->renewer, NULL);
	for (size_t i = 0; i < r->nlost; i++)
		atomic_store(&r->lost[i].l->renewer, NULL);
	free(r->e);
	free(r->lost);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	lks_conn_close(r->conn);
	lks_free_secret(r->url); /* it may hold a password */
	free(r);
}

/* lks_lease_autorenew_stop, lks_lease_release and lks_lease_free take a
 * lease out of its renewer. */
void lks_renewer_forget(lks_lease *l)
{
	lks_renewer *r = atomic_load(&l->renewer);
	if (r)
		lks_renewer_remove(r, l);
}
