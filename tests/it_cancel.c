/* Integration: cancel tokens end a waiting acquire and a retry loop from
 * another thread, quickly and holding nothing (issue #10, item 1). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "it.h"

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the bound the issue sets; valgrind runs everything 20-50x slower */
static int64_t cancel_bound_us(void)
{
	return getenv("LKS_TEST_SLOW") ? 300000 : 10000;
}

typedef struct waiter {
	const char *url;
	lks_cancel *token;
	int waiting_room;
	int rc;
	int64_t returned_us;
	lks_conn *c;
} waiter;

static void *wait_60s(void *arg)
{
	waiter *w = arg;
	lks_acquire_options o = LKS_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	o.cancel = w->token;
	o.waiting_room = w->waiting_room;
	o.max_delay_us = 10000000; /* polling: long sleeps between polls */
	w->rc = lks_lease_acquire(&l, w->c, "cancel-me", 60000, 60000, &o);
	w->returned_us = mono_us();
	lks_lease_free(l);
	return NULL;
}

static void cancel_one_wait(fx *f, lks_conn *holder_c, int waiting_room)
{
	lks_cancel *token = NULL;
	waiter w = {.url = f->url, .waiting_room = waiting_room};
	pthread_t th;
	int64_t tripped;
	lks_lease_info info;
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	w.token = token;
	w.c = t_open(f->url);
	pthread_create(&th, NULL, wait_60s, &w);
	usleep(500 * 1000); /* in line, or asleep between polls */
	tripped = mono_us();
	lks_cancel_trip(token);
	pthread_join(th, NULL);
	print_message("    %s: LKS_CANCELED %lld us after the trip\n",
	              waiting_room ? "waiting room" : "polling", (long long)(w.returned_us - tripped));
	assert_int_equal(w.rc, LKS_CANCELED);
	assert_true(w.returned_us - tripped < cancel_bound_us());
	/* nothing changed hands: still the holder's */
	assert_int_equal(lks_lease_inspect(holder_c, "cancel-me", &info), LKS_OK);
	assert_true(info.held);
	/* the canceled handle is usable again (MariaDB: after a reset) */
	if (T_BACKEND == LKS_BACKEND_MYSQL && waiting_room)
		assert_int_equal(lks_conn_reset(w.c), LKS_OK);
	assert_int_equal(lks_lease_inspect(w.c, "cancel-me", &info), LKS_OK);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) /* and holds no session lock */
		assert_int_equal(t_int1(w.c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
		                              " AND pid = pg_backend_pid()"), 0);
	lks_conn_close(w.c);
	lks_cancel_free(token);
}

void acquire_wait_is_canceled(void **state)
{
	fx *f = *state;
	lks_acquire_options keep = LKS_ACQUIRE_OPTIONS_INIT;
	lks_cancel *token = NULL;
	lks_lease *a = NULL, *b = NULL, *next = NULL;
	lks_conn *other = t_open(f->url);
	/* the holder keeps its baton: a waiter blocks in the server's line */
	keep.wake_on_release = 1;
	assert_int_equal(lks_lease_acquire(&a, f->c, "cancel-me", 60000, 0, &keep), LKS_OK);
	if (!T_POOLED) /* behind a pooler there is no line: it polls */
		cancel_one_wait(f, f->c, 1);
	cancel_one_wait(f, f->c, 0);
	/* a token tripped before the call: nothing is sent */
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	lks_cancel_trip(token);
	keep.wake_on_release = 0;
	keep.cancel = token;
	assert_int_equal(lks_lease_acquire(&b, other, "cancel-me", 1000, 5000, &keep), LKS_CANCELED);
	assert_null(b);
	assert_true(lks_cancel_is_tripped(token));
	/* re-armed, it lets the next waiter through as usual at the release */
	lks_cancel_reset(token);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	assert_int_equal(lks_lease_acquire(&next, other, "cancel-me", 1000, 5000, &keep), LKS_OK);
	assert_int_equal(lks_lease_release(other, next), LKS_OK);
	lks_lease_free(next);
	lks_cancel_free(token);
	lks_conn_close(other);
}

static int always_conflict(lks_conn *c, int attempt, void *arg)
{
	(void)c;
	(void)attempt;
	(void)arg;
	return LKS_CONFLICT;
}

typedef struct retrier {
	lks_conn *c;
	lks_cancel *token;
	lks_retry_stats st;
	int rc;
	int64_t returned_us;
} retrier;

static void *retry_forever(void *arg)
{
	retrier *r = arg;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT;
	o.max_attempts = 1000;
	o.timeout_ms = 60000;
	o.base_delay_us = 2000000; /* long backoff sleeps */
	o.max_delay_us = 5000000;
	o.cancel = r->token;
	r->rc = lks_retry(r->c, &o, always_conflict, NULL, &r->st);
	r->returned_us = mono_us();
	return NULL;
}

void retry_loop_is_canceled(void **state)
{
	fx *f = *state;
	retrier r = {.c = f->c};
	pthread_t th;
	int64_t tripped;
	lks_retry_options v1 = LKS_RETRY_OPTIONS_INIT;
	lks_retry_stats st;
	assert_int_equal(lks_cancel_new(&r.token), LKS_OK);
	pthread_create(&th, NULL, retry_forever, &r);
	usleep(300 * 1000);
	tripped = mono_us();
	lks_cancel_trip(r.token);
	pthread_join(th, NULL);
	print_message("    retry: LKS_CANCELED %lld us after the trip, after %d attempts\n",
	              (long long)(r.returned_us - tripped), r.st.attempts);
	assert_int_equal(r.rc, LKS_CANCELED);
	assert_int_equal(r.st.gave_up, LKS_CANCELED);
	assert_true(r.returned_us - tripped < cancel_bound_us());
	lks_cancel_free(r.token);
	/* version 1 options (no token field) still work */
	v1.version = 1;
	v1.max_attempts = 2;
	v1.base_delay_us = 0;
	v1.max_delay_us = 0;
	assert_int_equal(lks_retry(f->c, &v1, always_conflict, NULL, &st), LKS_CONFLICT);
	assert_int_equal(st.attempts, 2);
}
