/* Integration: the waiting room under load and under faults, bounded waits,
 * no NOTIFY on release, and statement counts measured on the server. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "it.h"
#ifdef LKS_WITH_PG
#include "lockstock-pg.h"
#endif

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- many waiters, one lease, a deadline ------------------------------ */

#define WAIT_MS 3000

typedef struct crowd {
	const char *url;
	pthread_barrier_t ready;
	atomic_int holders, max_holders, timeouts, early, grants, errors;
	pthread_mutex_t mu;
	int64_t last_fence;
	int fence_order_broken;
	int iters;
} crowd;

static void *crowd_thread(void *arg)
{
	crowd *cr = arg;
	lks_conn *c = t_open(cr->url);
	pthread_barrier_wait(&cr->ready);
	for (int i = 0; i < cr->iters; i++) {
		lks_lease *l = NULL;
		int64_t start = now_ms(), v = 0;
		int rc = lks_lease_acquire(&l, c, "crowd", 10000, WAIT_MS, NULL);
		if (rc == LKS_TIMEOUT) {
			int64_t took = now_ms() - start;
			atomic_fetch_add(&cr->timeouts, 1);
			if (took < WAIT_MS - 5) /* a timeout before the wait was up */
				atomic_fetch_add(&cr->early, 1);
			continue;
		}
		if (rc) {
			atomic_fetch_add(&cr->errors, 1);
			print_message("    acquire: %s\n", lks_conn_errmsg(c));
			continue;
		}
		int h = atomic_fetch_add(&cr->holders, 1) + 1;
		if (h > atomic_load(&cr->max_holders))
			atomic_store(&cr->max_holders, h);
		pthread_mutex_lock(&cr->mu);
		if (lks_lease_fence(l) <= cr->last_fence)
			cr->fence_order_broken = 1;
		cr->last_fence = lks_lease_fence(l);
		pthread_mutex_unlock(&cr->mu);
		/* an unprotected read-modify-write: exact only if never two holders */
		if (t_int(c, &v, "SELECT n FROM crowd_counter", NULL, 0) == LKS_OK) {
			lks_value p = LKS_INT(v + 1);
			t_int(c, &v, "UPDATE crowd_counter SET n = ?", &p, 1);
		}
		atomic_fetch_sub(&cr->holders, 1);
		atomic_fetch_add(&cr->grants, 1);
		if (lks_lease_release(c, l) != LKS_OK)
			atomic_fetch_add(&cr->errors, 1);
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

void queue_many_waiters_with_deadline(void **state)
{
	fx *f = *state;
	const char *env = getenv("LKS_TEST_QUEUE_THREADS");
	int threads = env ? atoi(env) : 64;
	pthread_t th[64];
	crowd cr = {.url = f->url, .iters = 4};
	if (threads < 2 || threads > 64)
		threads = 64;
	t_exec(f->c, "CREATE TABLE crowd_counter (n bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO crowd_counter VALUES (0)");
	pthread_barrier_init(&cr.ready, NULL, (unsigned)threads);
	pthread_mutex_init(&cr.mu, NULL);
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, crowd_thread, &cr);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	print_message("    %d threads x %d: %d grants, %d timeouts, fence %lld\n", threads, cr.iters,
	              atomic_load(&cr.grants), atomic_load(&cr.timeouts), (long long)cr.last_fence);
	assert_int_equal(atomic_load(&cr.errors), 0);
	assert_int_equal(atomic_load(&cr.max_holders), 1);
	assert_false(cr.fence_order_broken);
	assert_int_equal(atomic_load(&cr.early), 0); /* a timeout never comes before the wait is up */
	assert_int_equal(atomic_load(&cr.grants) + atomic_load(&cr.timeouts), threads * cr.iters);
	assert_true(atomic_load(&cr.grants) > 0);
	assert_int_equal(t_int1(f->c, "SELECT n FROM crowd_counter"), atomic_load(&cr.grants));
	pthread_mutex_destroy(&cr.mu);
	pthread_barrier_destroy(&cr.ready);
}

/* ---- faults while queued ---------------------------------------------- */

typedef struct queued {
	const char *url;
	lks_conn *c;
	int64_t session;
	pthread_barrier_t *ready;
	int rc;
	int64_t waited_ms;
	lks_lease *l;
} queued;

static void *queued_thread(void *arg)
{
	queued *q = arg;
	int64_t start;
	q->c = t_open(q->url);
	q->session = t_session_id(q->c);
	pthread_barrier_wait(q->ready);
	start = now_ms();
	q->rc = lks_lease_acquire(&q->l, q->c, "qfault", 10000, 15000, NULL);
	q->waited_ms = now_ms() - start;
	return NULL;
}

/* A waiter killed in the line and a holder whose session dies: the others
 * still get the lease, within the dead holder's TTL plus a little. */
void queue_survives_killed_waiter_and_holder(void **state)
{
	fx *f = *state;
	if (T_POOLED) /* kills chosen server sessions in the waiting room: behind a
	                 pooler neither is there (waiters poll) */
		skip();
	lks_conn *hc = t_open(f->url);
	lks_lease_acquire_options keep = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *a = NULL;
	pthread_barrier_t ready;
	pthread_t tb, tc;
	queued b = {.url = f->url, .ready = &ready}, c = {.url = f->url, .ready = &ready};
	int64_t killed_at;
	keep.wake_on_release = 1; /* the holder keeps its baton: the line blocks on it */
	/* a TTL long enough that it cannot expire while the line forms, even
	 * under valgrind (connections take a second there) */
	assert_int_equal(lks_lease_acquire(&a, hc, "qfault", 5000, 0, &keep), LKS_OK);
	pthread_barrier_init(&ready, NULL, 2); /* main + one waiter, twice */
	pthread_create(&tb, NULL, queued_thread, &b);
	pthread_barrier_wait(&ready);
	t_wait_in_line(f->c, 1); /* b in the line, then c behind it */
	pthread_create(&tc, NULL, queued_thread, &c);
	pthread_barrier_wait(&ready);
	t_wait_in_line(f->c, 2);
	t_kill_session(f->url, b.session);
	pthread_join(tb, NULL);
	assert_int_equal(b.rc, LKS_ECONN);
	/* the holder's session dies too: its baton goes, its lease stays until the TTL */
	t_kill_session(f->url, t_session_id(hc));
	killed_at = now_ms();
	pthread_join(tc, NULL);
	assert_int_equal(c.rc, LKS_OK);
	assert_true(lks_lease_fence(c.l) > lks_lease_fence(a));
	print_message("    the last waiter got the lease %lld ms after the holder died (TTL 5000)\n",
	              (long long)(now_ms() - killed_at));
	assert_int_equal(lks_lease_release(c.c, c.l), LKS_OK);
	lks_lease_free(c.l);
	lks_conn_close(c.c);
	lks_conn_close(b.c);
	lks_lease_free(a);
	lks_conn_close(hc);
	pthread_barrier_destroy(&ready);
}

/* ---- a holder stalled inside a fenced write ---------------------------- */

static int stall_3s(lks_conn *c, int64_t fence, void *arg)
{
	int64_t n;
	(void)fence;
	atomic_store((atomic_int *)arg, 1); /* the guard holds the lease row now */
	sleep(3);
	return lks_conn_query_int(c, "UPDATE stall_target SET n = n + 1", NULL, 0, &n);
}

typedef struct staller {
	const char *url;
	lks_lease *l;
	lks_conn *c;
	pthread_barrier_t *in;
	int rc;
	atomic_int inside, done;
} staller;

static void *stall_thread(void *arg)
{
	staller *s = arg;
	pthread_barrier_wait(s->in);
	s->rc = lks_lease_fenced_write(s->c, s->l, stall_3s, &s->inside);
	atomic_store(&s->done, 1);
	return NULL;
}

/* The holder (TTL 300 ms) stalls 3 s inside a fenced write. Another acquire
 * with wait 1000 returns while the stall goes on (it does not queue behind
 * the holder's share lock): a timeout, or a lease that is not already
 * lost; never later with a lost one. */
void queue_wait_is_bounded_by_deadline(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	staller s = {.url = f->url};
	pthread_barrier_t in;
	pthread_t th;
	lks_lease *b = NULL;
	int64_t start, took;
	int rc, stall_over;
	t_exec(f->c, "CREATE TABLE stall_target (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO stall_target VALUES (0)");
	s.c = f->c;
	assert_int_equal(lks_lease_acquire(&s.l, f->c, "stall", 300, 0, NULL), LKS_OK);
	pthread_barrier_init(&in, NULL, 2);
	s.in = &in;
	pthread_create(&th, NULL, stall_thread, &s);
	pthread_barrier_wait(&in);
	/* the fenced write holds the lease row: its callback has begun */
	for (int i = 0; i < 6000 && !atomic_load(&s.inside); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&s.inside), 1);
	start = now_ms();
	rc = lks_lease_acquire(&b, other, "stall", 5000, 1000, NULL);
	stall_over = atomic_load(&s.done);
	took = now_ms() - start;
	print_message("    acquire returned %s after %lld ms (%s)\n", lks_strerror(rc), (long long)took,
	              rc ? lks_conn_errmsg(other) : "");
	if (rc && rc != LKS_TIMEOUT)
		print_message("    errno %u sqlstate %s\n", lks_conn_errno(other), lks_conn_sqlstate(other));
	assert_false(stall_over);
	if (rc == LKS_OK) {
		assert_false(lks_lease_is_lost(b));
		assert_true(lks_lease_remaining_ms(b) > 0);
	} else {
		assert_int_equal(rc, LKS_TIMEOUT);
	}
	pthread_join(th, NULL);
	/* the stalled holder's write lands only if nobody took over meanwhile */
	assert_true(s.rc == LKS_OK || s.rc == LKS_LOST);
	if (b) {
		assert_int_equal(s.rc, LKS_LOST);
		lks_lease_release(other, b);
		lks_lease_free(b);
	}
	lks_lease_free(s.l);
	lks_conn_close(other);
	pthread_barrier_destroy(&in);
}

/* ---- round trips and NOTIFY, counted by the server --------------------- */

/* Statements this session has executed (PostgreSQL: plans of its prepared
 * statements; MySQL: Com_stmt_execute). Each reading counts itself once. */
static int64_t executed(lks_conn *c)
{
	return t_int1(c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                     ? "SELECT coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements"
	                     : "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS"
	                       " WHERE VARIABLE_NAME = 'COM_STMT_EXECUTE'");
}

static int64_t count_statements(lks_conn *c, int64_t *before)
{
	int64_t now = executed(c), n = now - *before - 1;
	*before = now;
	return n;
}

/* prepare=off behind a transaction pooler: lockstock leaves no named
 * statement on any server connection (each reading lands on one of them). */
static void pooled_leaves_no_statements(fx *f)
{
	lks_lease *a = NULL;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(lks_lease_acquire(&a, f->c, "rt-pooled", 5000, 0, NULL), LKS_OK);
		assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
		lks_lease_free(a);
		assert_int_equal(t_int1(f->c, "SELECT count(*) FROM pg_prepared_statements"), 0);
	}
}

void lease_round_trips_counted_on_server(void **state)
{
	fx *f = *state;
	if (T_POOLED) {
		pooled_leaves_no_statements(f);
		return;
	}
	bool pg = T_BACKEND == LKS_BACKEND_POSTGRESQL;
	/* the plan counts of pg_prepared_statements came with PostgreSQL 14 */
	if (pg && t_int1(f->c, "SELECT current_setting('server_version_num')::int") < 140000)
		skip();
	lks_conn *other = t_open(f->url);
	lks_lease *a = NULL, *b = NULL;
	int64_t mark, n_new, n_free, n_busy, n_release;
	/* warm the statement cache: counts are of executions, not prepares */
	assert_int_equal(lks_lease_acquire(&a, f->c, "rt-warm", 5000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&b, f->c, "rt-warm", 5000, 0, NULL), LKS_BUSY);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	mark = executed(f->c);
	assert_int_equal(lks_lease_acquire(&a, f->c, "rt-new", 5000, 0, NULL), LKS_OK);
	n_new = count_statements(f->c, &mark);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	n_release = count_statements(f->c, &mark);
	lks_lease_free(a);
	assert_int_equal(lks_lease_acquire(&a, f->c, "rt-new", 5000, 0, NULL), LKS_OK);
	n_free = count_statements(f->c, &mark);
	/* held by another handle: a try-once poll */
	lks_lease_free(b);
	b = NULL;
	assert_int_equal(lks_lease_acquire(&b, other, "rt-new", 5000, 0, NULL), LKS_BUSY);
	{
		/* counted on the polling handle, warm now */
		int64_t m = executed(other);
		assert_int_equal(lks_lease_acquire(&b, other, "rt-new", 5000, 0, NULL), LKS_BUSY);
		n_busy = count_statements(other, &m);
	}
	print_message("    statements: never-seen name %lld, free %lld, held (poll) %lld, release %lld\n",
	              (long long)n_new, (long long)n_free, (long long)n_busy, (long long)n_release);
	assert_int_equal(n_free, 1);
	assert_int_equal(n_release, 1);
	assert_int_equal(n_new, pg ? 2 : 1);
	assert_int_equal(n_busy, pg ? 2 : 1);
	{
		/* a release that handed the baton on (wake_on_release keeps it)
		 * had a line behind it: this handle's next poll of that lease goes
		 * straight to the line, one statement, no lean try first */
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		lks_lease *c1 = NULL, *c2 = NULL;
		int64_t n_after_line;
		o.wake_on_release = 1;
		assert_int_equal(lks_lease_acquire(&c1, f->c, "rt-line", 5000, 0, &o), LKS_OK);
		assert_int_equal(lks_lease_release(f->c, c1), LKS_OK);
		lks_lease_free(c1);
		c1 = NULL;
		assert_int_equal(lks_lease_acquire(&c2, other, "rt-line", 5000, 0, NULL), LKS_OK);
		mark = executed(f->c);
		assert_int_equal(lks_lease_acquire(&c1, f->c, "rt-line", 5000, 0, NULL), LKS_BUSY);
		n_after_line = count_statements(f->c, &mark);
		print_message("    statements: held, polled after handing it on %lld\n",
		              (long long)n_after_line);
		assert_int_equal(n_after_line, 1);
		assert_int_equal(lks_lease_release(other, c2), LKS_OK);
		lks_lease_free(c2);
	}
	if (pg) /* no statement this handle prepared notifies */
		assert_int_equal(t_int1(f->c, "SELECT count(*) FROM pg_prepared_statements"
		                              " WHERE position('pg_' || 'notify' in statement) > 0"),
		                 0);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_conn_close(other);
}

/* PostgreSQL: a listener on the channel releases used to notify hears
 * nothing, with waiters lined up and the lease handed on. */
void release_sends_no_notify(void **state)
{
	fx *f = *state;
	lks_conn *listener = t_open(f->url), *w = t_open(f->url);
	lks_lease *a = NULL, *b = NULL;
	lks_lease_acquire_options keep = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	int64_t seen = 0;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL) {
		lks_conn_close(listener);
		lks_conn_close(w);
		skip(); /* MySQL has no NOTIFY */
	}
	t_exec(listener, "LISTEN lks_lease_release");
	keep.wake_on_release = 1;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(lks_lease_acquire(&a, f->c, "quiet", 5000, 0, &keep), LKS_OK);
		assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
		lks_lease_free(a);
		assert_int_equal(lks_lease_acquire(&b, w, "quiet", 5000, 1000, NULL), LKS_OK);
		assert_int_equal(lks_lease_release(w, b), LKS_OK);
		lks_lease_free(b);
	}
	/* a round trip on the listener delivers anything queued for it */
	t_exec(listener, "SELECT 1");
	assert_int_equal(t_int1(listener, "SELECT count(*) FROM pg_listening_channels()"), 1);
#ifdef LKS_WITH_PG
	{
		PGnotify *note;
		PQconsumeInput(lks_conn_pg(listener));
		while ((note = PQnotifies(lks_conn_pg(listener)))) {
			seen++;
			PQfreemem(note);
		}
	}
#endif
	assert_int_equal(seen, 0);
	lks_conn_close(listener);
	lks_conn_close(w);
}
