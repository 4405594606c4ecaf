/* Integration: event and log hooks (issue #10, item 4). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "it.h"

typedef struct seen {
	pthread_mutex_t mu;
	lks_event ev[256];
	char names[256][32];
	int n;
	char log[512];
	int logs;
} seen;

static void on_event(const lks_event *ev, void *arg)
{
	seen *s = arg;
	pthread_mutex_lock(&s->mu);
	if (s->n < 256) {
		s->ev[s->n] = *ev;
		snprintf(s->names[s->n], sizeof s->names[0], "%s", ev->name ? ev->name : "");
		s->ev[s->n].name = NULL; /* valid only during the call */
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
}

static void on_log(int level, const char *msg, void *arg)
{
	seen *s = arg;
	pthread_mutex_lock(&s->mu);
	if (level <= 1)
		snprintf(s->log, sizeof s->log, "%s", msg);
	s->logs++;
	pthread_mutex_unlock(&s->mu);
}

/* the last event of a kind, or NULL */
static const lks_event *last(seen *s, lks_event_kind kind, const char **name)
{
	for (int i = s->n - 1; i >= 0; i--)
		if (s->ev[i].kind == kind) {
			if (name)
				*name = s->names[i];
			return &s->ev[i];
		}
	return NULL;
}

static int conflicts_twice(lks_conn *c, int attempt, void *arg)
{
	(void)c;
	(void)arg;
	return attempt < 3 ? LKS_CONFLICT : LKS_OK;
}

void events_reach_the_hooks(void **state)
{
	fx *f = *state;
	seen s = {.mu = PTHREAD_MUTEX_INITIALIZER}, r = {.mu = PTHREAD_MUTEX_INITIALIZER};
	lks_conn *other = t_open(f->url);
	lks_row_ref row = {"ev_items", "id", "version", LKS_INT(1)}, none = {"ev_items", "id", "version", LKS_INT(9)};
	const char *cols[] = {"qty"}, *name = NULL;
	lks_value one = LKS_INT(1);
	lks_lease *a = NULL, *b = NULL;
	lks_retry_options ro = LKS_RETRY_OPTIONS_INIT;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	const lks_event *e;
	int64_t v;
	t_exec(f->c, "CREATE TABLE ev_items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO ev_items VALUES (1, 0, 0)");
	assert_int_equal(lks_conn_set_event_hook(f->c, on_event, &s), LKS_OK);
	assert_int_equal(lks_conn_set_event_hook(other, on_event, &s), LKS_OK);
	/* CAS: applied, conflict, not found */
	assert_int_equal(lks_cas_update(f->c, &row, 0, cols, &one, 1, &v), LKS_OK);
	assert_non_null(e = last(&s, LKS_EVENT_CAS_APPLIED, &name));
	assert_string_equal(name, "ev_items");
	assert_int_equal(e->status, LKS_OK);
	assert_true(e->duration_us > 0);
	assert_int_equal(lks_cas_update(f->c, &row, 0, cols, &one, 1, &v), LKS_CONFLICT);
	assert_non_null(last(&s, LKS_EVENT_CAS_CONFLICT, NULL));
	assert_int_equal(lks_cas_update(f->c, &none, 0, cols, &one, 1, &v), LKS_NOT_FOUND);
	assert_non_null(last(&s, LKS_EVENT_CAS_NOT_FOUND, NULL));
	/* leases: acquired, busy, timed out, renewed, released, lost */
	assert_int_equal(lks_lease_acquire(&a, f->c, "ev", 10000, 0, NULL), LKS_OK);
	assert_non_null(e = last(&s, LKS_EVENT_ACQUIRED, &name));
	assert_string_equal(name, "ev");
	assert_int_equal(e->fence, lks_lease_fence(a));
	assert_true(e->polls >= 1);
	assert_int_equal(lks_lease_acquire(&b, other, "ev", 10000, 0, NULL), LKS_BUSY);
	assert_non_null(e = last(&s, LKS_EVENT_BUSY, NULL));
	assert_int_equal(e->status, LKS_BUSY);
	assert_int_equal(lks_lease_acquire(&b, other, "ev", 10000, 200, NULL), LKS_TIMEOUT);
	assert_non_null(e = last(&s, LKS_EVENT_TIMED_OUT, NULL));
	assert_true(e->duration_us >= 200000);
	assert_int_equal(lks_lease_renew(f->c, a, 10000), LKS_OK);
	assert_non_null(e = last(&s, LKS_EVENT_RENEWED, NULL));
	assert_int_equal(e->fence, lks_lease_fence(a));
	usleep(20 * 1000);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	assert_non_null(e = last(&s, LKS_EVENT_RELEASED, NULL));
	assert_true(e->duration_us >= 20000); /* held that long */
	assert_int_equal(lks_conn_set_log_hook(f->c, on_log, &s), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, a), LKS_LOST);
	assert_non_null(e = last(&s, LKS_EVENT_LOST, NULL));
	assert_non_null(strstr(s.log, "already lost when released")); /* and a log line */
	lks_lease_free(a);
	/* retry: each failed attempt with its backoff */
	int before = s.n;
	ro.base_delay_us = 1000;
	ro.max_delay_us = 2000;
	assert_int_equal(lks_retry(f->c, &ro, conflicts_twice, NULL, NULL), LKS_OK);
	int retries = 0;
	for (int i = before; i < s.n; i++)
		if (s.ev[i].kind == LKS_EVENT_RETRY) {
			retries++;
			assert_int_equal(s.ev[i].attempt, retries);
			assert_int_equal(s.ev[i].status, LKS_CONFLICT);
			assert_true(s.ev[i].duration_us >= 0 && s.ev[i].duration_us <= 2000);
		}
	assert_int_equal(retries, 2);
	/* unset: nothing more arrives */
	assert_int_equal(lks_conn_set_event_hook(f->c, NULL, NULL), LKS_OK);
	before = s.n;
	assert_int_equal(lks_cas_update(f->c, &row, 1, cols, &one, 1, &v), LKS_OK);
	assert_int_equal(s.n, before);
	/* the renew thread: renewals, then the loss (forced), as events and a log line */
	assert_int_equal(lks_lease_acquire(&a, f->c, "ev-renew", 1500, 0, NULL), LKS_OK);
	ao.interval_ms = 200;
	ao.on_event = on_event;
	ao.on_log = on_log;
	ao.arg = &r;
	assert_int_equal(lks_lease_autorenew_start(a, f->c, NULL, &ao), LKS_OK);
	for (;;) { /* the renew thread's first renewal, as observed */
		pthread_mutex_lock(&r.mu);
		if ((e = last(&r, LKS_EVENT_RENEWED, NULL)))
			break;
		pthread_mutex_unlock(&r.mu);
		usleep(10 * 1000);
	}
	assert_int_equal(e->fence, lks_lease_fence(a));
	pthread_mutex_unlock(&r.mu);
	assert_int_equal(lks_lease_force_release(other, "ev-renew", &info), LKS_OK);
	for (;;) { /* the renew thread's LOST and then its log line, as observed */
		pthread_mutex_lock(&r.mu);
		if (last(&r, LKS_EVENT_LOST, NULL) && strstr(r.log, "lease lost"))
			break;
		pthread_mutex_unlock(&r.mu);
		usleep(10 * 1000);
	}
	print_message("    renew thread's log: %s\n", r.log);
	assert_non_null(strstr(r.log, "ev-renew"));
	pthread_mutex_unlock(&r.mu);
	lks_lease_free(a);
	lks_conn_close(other);
}

/* Hardening 3, item 10: the documented hook rule, followed. Hooks that call
 * lockstock on another handle (inspect, from a BUSY hook, a release's LOST
 * hook and the renew thread's LOST hook) work, the event is the call's last
 * use of the lease, and the caller frees the lease after the call; under
 * ASan and valgrind nothing is touched after it is freed. */
typedef struct other_handle {
	lks_conn *other;
	atomic_int calls, ok;
	int64_t fence_seen;
} other_handle;

static void inspect_from_hook(const lks_event *ev, void *arg)
{
	other_handle *o = arg;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	if (ev->kind != LKS_EVENT_BUSY && ev->kind != LKS_EVENT_LOST)
		return;
	if (lks_lease_inspect(o->other, ev->name, &info) == LKS_OK && info.fence >= ev->fence) {
		o->fence_seen = info.fence;
		atomic_fetch_add(&o->ok, 1);
	}
	atomic_fetch_add(&o->calls, 1); /* last: the test reads ok after it */
}

void hooks_may_call_other_handles(void **state)
{
	fx *f = *state;
	other_handle oh = {.other = t_open(f->url)}, rh = {.other = t_open(f->url)};
	lks_conn *c = t_open(f->url);
	lks_lease *a = NULL, *b = NULL;
	lks_lease_autorenew_options ro = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	assert_int_equal(lks_conn_set_event_hook(c, inspect_from_hook, &oh), LKS_OK);
	/* BUSY: acquire on c finds f->c's grant */
	assert_int_equal(lks_lease_acquire(&a, f->c, "hooked", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&b, c, "hooked", 60000, 0, NULL), LKS_BUSY);
	assert_int_equal(atomic_load(&oh.ok), 1);
	assert_int_equal(oh.fence_seen, lks_lease_fence(a));
	/* LOST at release: taken away, then released by its holder on c */
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	assert_int_equal(lks_lease_acquire(&b, c, "hooked", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_force_release(f->c, "hooked", &info), LKS_OK);
	assert_int_equal(lks_lease_release(c, b), LKS_LOST);
	assert_int_equal(atomic_load(&oh.ok), 2);
	lks_lease_free(b); /* after the call, as the rule says */
	/* LOST on the renew thread */
	b = NULL;
	assert_int_equal(lks_lease_acquire(&b, c, "hooked", 3000, 0, NULL), LKS_OK);
	ro.interval_ms = 100;
	ro.on_event = inspect_from_hook;
	ro.arg = &rh;
	assert_int_equal(lks_lease_autorenew_start(b, c, NULL, &ro), LKS_OK);
	T_OK(f->c, lks_lease_force_release(f->c, "hooked", &info));
	for (int i = 0; i < 6000 && !atomic_load(&rh.calls); i++)
		usleep(10000); /* observed state: the renew thread's LOST; 60 s means hung */
	assert_int_equal(atomic_load(&rh.calls), 1);
	assert_int_equal(atomic_load(&rh.ok), 1);
	assert_true(lks_lease_is_lost(b));
	lks_lease_free(b);
	lks_conn_close(c);
	lks_conn_close(oh.other);
	lks_conn_close(rh.other);
}

/* #29 item 11: an auto-renew hook that stops or frees its own lease (the
 * renew thread cannot join itself) is harmless: stop ends the renewals
 * after the hook, free frees the lease once the hook has returned. Under
 * ASan and valgrind a use after free fails the test. */
typedef struct self_hook {
	lks_lease *l;
	bool free_it;
	atomic_int calls;
} self_hook;

static void stop_own_lease(const lks_event *ev, void *arg)
{
	self_hook *h = arg;
	if (ev->kind != LKS_EVENT_RENEWED || atomic_load(&h->calls))
		return;
	if (h->free_it)
		lks_lease_free(h->l);
	else
		lks_lease_autorenew_stop(h->l);
	atomic_fetch_add(&h->calls, 1);
}

void hooks_may_stop_or_free_their_lease(void **state)
{
	fx *f = *state;
	lks_lease_autorenew_options ro = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	for (int free_it = 0; free_it < 2; free_it++) {
		self_hook h = {.free_it = free_it};
		T_OK(f->c, lks_lease_acquire(&h.l, f->c, "selfhook", 30000, 0, NULL));
		ro.interval_ms = 50;
		ro.on_event = stop_own_lease;
		ro.arg = &h;
		T_OK(f->c, lks_lease_autorenew_start(h.l, f->c, NULL, &ro));
		for (int i = 0; i < 6000 && !atomic_load(&h.calls); i++)
			usleep(10000); /* observed state: the hook ran; 60 s means hung */
		assert_int_equal(atomic_load(&h.calls), 1);
		if (!free_it) {
			/* still held: the release joins the stopped thread */
			T_OK(f->c, lks_lease_release(f->c, h.l));
			lks_lease_free(h.l);
		} else {
			/* freed by its thread; the grant runs out or is forced */
			T_OK(f->c, lks_lease_force_release(f->c, "selfhook", &info));
		}
	}
}

/* #30: on_lost comes for a lease that ran out by its local deadline even
 * when the caller saw lks_lease_is_lost and freed it before the renew
 * thread's next turn (a margin of 4.5 s of a 6 s TTL, renewals every
 * 5.9 s: the local deadline passes 4.4 s before the thread wakes). */
static void count_lost(const lks_lease *l, int status, void *arg)
{
	(void)l;
	(void)status;
	atomic_fetch_add((atomic_int *)arg, 1);
}

void on_lost_comes_after_a_local_expiry(void **state)
{
	fx *f = *state;
	atomic_int lost = 0;
	lks_lease *l = NULL;
	lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_autorenew_options ro = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	ao.margin_ms = 4500; /* the local deadline 1.5 s after the grant */
	T_OK(f->c, lks_lease_acquire(&l, f->c, "lostlocal", 6000, 0, &ao));
	ro.interval_ms = 5900;
	ro.on_lost = count_lost;
	ro.arg = &lost;
	T_OK(f->c, lks_lease_autorenew_start(l, f->c, NULL, &ro));
	for (int i = 0; i < 6000 && !lks_lease_is_lost(l); i++)
		usleep(1000); /* observed: the local deadline passes */
	assert_true(lks_lease_is_lost(l));
	assert_int_equal(atomic_load(&lost), 0);
	lks_lease_free(l);
	assert_int_equal(atomic_load(&lost), 1);
}
