/* Integration: one renewer for many leases (lks_renewer_*). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "it.h"

/* 1,000 leases (200 when LKS_TEST_QUEUE_THREADS says the pass is slow:
 * valgrind) */
enum { MANY_MAX = 1000, STOPPED = 100 };

static int many(void)
{
	return getenv("LKS_TEST_QUEUE_THREADS") ? 200 : MANY_MAX;
}

typedef struct seen {
	atomic_int renewed, failed, lost_events, lost_calls, widest, last_status;
	_Atomic(const lks_lease *) last_lost;
} seen;

static void on_event(const lks_event *ev, void *arg)
{
	seen *s = arg;
	if (ev->kind == LKS_EVENT_RENEWED) {
		atomic_fetch_add(&s->renewed, 1);
		for (int w = atomic_load(&s->widest); ev->polls > w;)
			if (atomic_compare_exchange_weak(&s->widest, &w, ev->polls))
				break;
	} else if (ev->kind == LKS_EVENT_RENEW_FAILED) {
		atomic_fetch_add(&s->failed, 1);
	} else if (ev->kind == LKS_EVENT_LOST) {
		atomic_fetch_add(&s->lost_events, 1);
	}
}

static void on_lost(const lks_lease *l, int status, void *arg)
{
	seen *s = arg;
	atomic_store(&s->last_status, status);
	atomic_store(&s->last_lost, l);
	atomic_fetch_add(&s->lost_calls, 1);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait (polling what the renewer did, at most 60 s) until cond holds. */
#define WAIT_UNTIL(cond)                                                   \
	do {                                                                   \
		int64_t t0_ = mono_ms();                                           \
		while (!(cond) && mono_ms() - t0_ < 60000)                         \
			usleep(5000);                                                  \
		assert_true(cond);                                                 \
	} while (0)

/* 1,000 leases of a 3 s TTL on one renewer: every one renewed on time for
 * three TTLs, in batched statements; then releases take them out. */
void renewer_keeps_many_leases(void **state)
{
	fx *f = *state;
	static seen s;
	static lks_lease *l[MANY_MAX];
	const int MANY = many();
	lks_renewer *r = NULL;
	lks_renewer_options o = LKS_RENEWER_OPTIONS_INIT;
	char name[32];
	int64_t t0;
	memset(&s, 0, sizeof s);
	o.on_event = on_event;
	o.on_lost = on_lost;
	o.arg = &s;
	assert_int_equal(lks_renewer_start(&r, f->c, NULL, &o), LKS_OK);
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof name, "many:%d", i);
		assert_int_equal(lks_lease_acquire(&l[i], f->c, name, 3000, 0, NULL), LKS_OK);
		assert_int_equal(lks_renewer_add(r, l[i]), LKS_OK);
	}
	assert_int_equal(lks_renewer_count(r), MANY);
	/* three TTLs: each lease would have expired twice over without it */
	t0 = mono_ms();
	WAIT_UNTIL(mono_ms() - t0 >= 9000 && atomic_load(&s.renewed) >= 3 * MANY);
	assert_int_equal(atomic_load(&s.lost_calls), 0);
	for (int i = 0; i < MANY; i++) {
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		assert_false(lks_lease_is_lost(l[i]));
		assert_int_equal(lks_lease_inspect(f->c, lks_lease_name(l[i]), &info), LKS_OK);
		assert_true(info.held);
		assert_int_equal(info.fence, lks_lease_fence(l[i])); /* renewed, not granted again */
	}
	/* batched: statements carried many leases each */
	assert_true(atomic_load(&s.widest) >= MANY / 20);
	print_message("    %d renewals of %d leases, up to %d per statement\n", atomic_load(&s.renewed), MANY,
	              atomic_load(&s.widest));
	/* release takes a lease out; the others go on */
	for (int i = 0; i < MANY; i += 2)
		assert_int_equal(lks_lease_release(f->c, l[i]), LKS_OK);
	assert_int_equal(lks_renewer_count(r), MANY / 2);
	for (int i = 0; i < MANY; i++)
		lks_lease_free(l[i]); /* free takes the rest out */
	assert_int_equal(lks_renewer_count(r), 0);
	assert_int_equal(atomic_load(&s.lost_calls), 0);
	lks_renewer_stop(r);
}

/* A lease taken away on the server is reported lost by the next renewal,
 * once; the others are not affected. */
void renewer_reports_takeover(void **state)
{
	fx *f = *state;
	static seen s;
	lks_conn *other = t_open(f->url);
	lks_renewer *r = NULL;
	lks_renewer_options o = LKS_RENEWER_OPTIONS_INIT;
	lks_lease *a = NULL, *b = NULL;
	memset(&s, 0, sizeof s);
	o.on_event = on_event;
	o.on_lost = on_lost;
	o.arg = &s;
	assert_int_equal(lks_renewer_start(&r, f->c, NULL, &o), LKS_OK);
	assert_int_equal(lks_lease_acquire(&a, f->c, "taken", 900, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&b, f->c, "kept", 900, 0, NULL), LKS_OK);
	assert_int_equal(lks_renewer_add(r, a), LKS_OK);
	assert_int_equal(lks_renewer_add(r, b), LKS_OK);
	assert_int_equal(lks_lease_force_release(other, "taken", NULL), LKS_OK);
	WAIT_UNTIL(atomic_load(&s.lost_calls) == 1);
	assert_ptr_equal(atomic_load(&s.last_lost), a);
	assert_int_equal(atomic_load(&s.last_status), LKS_LOST);
	assert_true(lks_lease_is_lost(a));
	assert_int_equal(lks_renewer_count(r), 1);
	assert_int_equal(lks_renewer_remove(r, a), LKS_NOT_FOUND);
	/* b goes on being renewed past its TTL */
	int before = atomic_load(&s.renewed);
	WAIT_UNTIL(atomic_load(&s.renewed) >= before + 3);
	assert_false(lks_lease_is_lost(b));
	assert_int_equal(atomic_load(&s.lost_calls), 1);
	assert_int_equal(lks_renewer_remove(r, b), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, b), LKS_OK);
	lks_lease_free(a);
	lks_lease_free(b);
	lks_renewer_stop(r);
	lks_conn_close(other);
}

void renewer_bad_input(void **state)
{
	fx *f = *state;
	lks_renewer *r = NULL, *r2 = NULL;
	lks_lease *l = NULL;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	lks_renewer_options bad = LKS_RENEWER_OPTIONS_INIT;
	bad.version = 99;
	assert_int_equal(lks_renewer_start(NULL, f->c, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_renewer_start(&r, NULL, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_renewer_start(&r, f->c, NULL, &bad), LKS_EINVAL);
	assert_null(r);
	assert_int_equal(lks_renewer_start(&r, f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                                                 ? "mysql://u@127.0.0.1/x"
	                                                 : "postgresql://u@127.0.0.1/x",
	                                   NULL),
	                 LKS_EINVAL);
	assert_int_not_equal(lks_renewer_start(&r, f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                                                     ? "postgresql://u@127.0.0.1:1/x"
	                                                     : "mysql://u@127.0.0.1:1/x",
	                                       NULL),
	                     LKS_OK);
	assert_null(r);
	assert_int_equal(lks_renewer_start(&r, f->c, NULL, NULL), LKS_OK);
	assert_int_equal(lks_renewer_start(&r2, f->c, NULL, NULL), LKS_OK);
	assert_int_equal(lks_renewer_add(NULL, l), LKS_EINVAL);
	assert_int_equal(lks_renewer_add(r, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "once-only", 5000, 0, NULL), LKS_OK);
	assert_int_equal(lks_renewer_add(r, l), LKS_OK);
	assert_int_equal(lks_renewer_add(r, l), LKS_EINVAL);  /* twice */
	assert_int_equal(lks_renewer_add(r2, l), LKS_EINVAL); /* in another */
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_EINVAL);
	assert_int_equal(lks_renewer_remove(r2, l), LKS_NOT_FOUND);
	assert_int_equal(lks_renewer_remove(r, l), LKS_OK);
	/* auto-renewed: not added */
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_OK);
	assert_int_equal(lks_renewer_add(r, l), LKS_EINVAL);
	lks_lease_autorenew_stop(l);
	/* released: lost, not added */
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	assert_int_equal(lks_renewer_add(r, l), LKS_EINVAL);
	assert_int_equal(lks_renewer_count(r), 0);
	lks_lease_free(l);
	lks_renewer_stop(r);
	lks_renewer_stop(r2);
	lks_renewer_stop(NULL);
}

/* The server stops answering: each lease is reported lost by its local
 * deadline (not renewed, not kept silently), none before a renewal
 * failed. */
void renewer_lost_on_time_when_server_stops(void **state)
{
	fx *f = *state;
	static seen s;
	lks_renewer *r = NULL;
	lks_renewer_options o = LKS_RENEWER_OPTIONS_INIT;
	static lks_lease *l[STOPPED];
	char name[32];
	int64_t t0, deadline_ms;
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL (start|stop|pause|resume)");
	memset(&s, 0, sizeof s);
	o.on_event = on_event;
	o.on_lost = on_lost;
	o.arg = &s;
	assert_int_equal(lks_renewer_start(&r, f->c, NULL, &o), LKS_OK);
	for (int i = 0; i < STOPPED; i++) {
		snprintf(name, sizeof name, "stop:%d", i);
		assert_int_equal(lks_lease_acquire(&l[i], f->c, name, 3000, 0, NULL), LKS_OK);
		assert_int_equal(lks_renewer_add(r, l[i]), LKS_OK);
	}
	WAIT_UNTIL(atomic_load(&s.renewed) >= STOPPED);
	t_ctl("pause");
	t0 = mono_ms();
	deadline_ms = lks_lease_remaining_ms(l[0]);
	for (int i = 1; i < STOPPED; i++)
		if (lks_lease_remaining_ms(l[i]) > deadline_ms)
			deadline_ms = lks_lease_remaining_ms(l[i]);
	while (atomic_load(&s.lost_calls) < STOPPED && mono_ms() - t0 < deadline_ms + 60000)
		usleep(10000);
	int64_t took = mono_ms() - t0;
	t_ctl("resume");
	print_message("    %d leases reported lost %lld ms after the stop (latest local deadline %lld ms"
	              " away)\n", STOPPED, (long long)took, (long long)deadline_ms);
	assert_int_equal(atomic_load(&s.lost_calls), STOPPED);
	assert_int_not_equal(atomic_load(&s.last_status), LKS_OK);
	for (int i = 0; i < STOPPED; i++) {
		assert_true(lks_lease_is_lost(l[i]));
		lks_lease_free(l[i]);
	}
	assert_int_equal(lks_renewer_count(r), 0);
	lks_renewer_stop(r);
	lks_conn_close(f->c);
	f->c = t_open(f->url);
}
