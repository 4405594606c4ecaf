/* Integration: leases under contention, expiry, takeover, fencing, crashes,
 * restarts and auto-renew. */
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "it.h"

static lks_lease *must_acquire(lks_conn *c, const char *name, int64_t ttl, int64_t wait)
{
	lks_lease *l = NULL;
	int rc = lks_lease_acquire(&l, c, name, ttl, wait, NULL);
	if (rc)
		fail_msg("acquire %s: %s (%s)", name, lks_strerror(rc), lks_conn_errmsg(c));
	return l;
}

void lease_basic_cycle(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a, *b = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int64_t fences[4];

	a = must_acquire(f->c, "job:nightly", 10000, 0);
	fences[0] = lks_lease_fence(a);
	assert_true(fences[0] >= 1);
	assert_int_equal(strlen(lks_lease_holder(a)), 32);
	/* the local deadline keeps the margin (TTL/10) off the TTL; how much
	 * of it is left depends on how long the test took, so only its bounds */
	assert_true(lks_lease_remaining_ms(a) > 0 && lks_lease_remaining_ms(a) <= 9000);
	/* the server's own view of the TTL left at the grant, and the local
	 * deadline is earlier */
	assert_true(lks_lease_granted_ms(a) > 0 && lks_lease_granted_ms(a) <= 10000);
	assert_true(lks_lease_remaining_ms(a) < lks_lease_granted_ms(a));
	assert_false(lks_lease_is_lost(a));
	/* held: a second caller is told busy, with nothing changed */
	assert_int_equal(lks_lease_acquire(&b, other, "job:nightly", 10000, 0, NULL), LKS_BUSY);
	assert_null(b);
	assert_int_equal(lks_lease_inspect(other, "job:nightly", &info), LKS_OK);
	assert_true(info.held);
	assert_string_equal(info.holder, lks_lease_holder(a));
	assert_int_equal(info.fence, fences[0]);
	assert_true(info.remaining_ms > 0 && info.remaining_ms <= 10000);
	/* renew keeps holder and fence, and the server counts the new TTL from
	 * the renewal: more than the first grant could have left */
	assert_int_equal(lks_lease_renew(f->c, a, 20000), LKS_OK);
	assert_true(lks_lease_granted_ms(a) > 10000 && lks_lease_granted_ms(a) <= 20000);
	assert_true(lks_lease_remaining_ms(a) <= 18000);
	assert_int_equal(lks_lease_inspect(other, "job:nightly", &info), LKS_OK);
	assert_int_equal(info.fence, fences[0]);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	/* released: free, and a second release says it was lost */
	assert_int_equal(lks_lease_inspect(other, "job:nightly", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(info.fence, fences[0]);
	assert_int_equal(lks_lease_release(f->c, a), LKS_LOST);
	assert_int_equal(lks_lease_renew(f->c, a, 1000), LKS_LOST);
	lks_lease_free(a);
	/* tokens keep growing across release */
	for (int i = 1; i < 4; i++) {
		b = must_acquire(i % 2 ? other : f->c, "job:nightly", 5000, 0);
		fences[i] = lks_lease_fence(b);
		assert_true(fences[i] > fences[i - 1]);
		assert_int_equal(lks_lease_release(i % 2 ? other : f->c, b), LKS_OK);
		lks_lease_free(b);
	}
	/* never granted: free, fence 0 */
	assert_int_equal(lks_lease_inspect(other, "never", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(info.fence, 0);
	lks_conn_close(other);
}

static int collect(const lks_lease_info *i, void *arg)
{
	char *names = arg;
	strcat(names, i->name);
	strcat(names, ",");
	return 0;
}

void lease_list_and_names(void **state)
{
	fx *f = *state;
	char names[256] = "";
	char longname[LKS_LEASE_NAME_MAX + 1];
	lks_lease *a = must_acquire(f->c, "b", 10000, 0);
	lks_lease *b = must_acquire(f->c, "a", 10000, 0);
	lks_lease *c = must_acquire(f->c, "c", 10000, 0);
	lks_lease *d, *e;
	/* names are exact bytes: no case folding, no trailing-space padding */
	d = must_acquire(f->c, "A", 10000, 0);
	e = must_acquire(f->c, "a ", 10000, 0);
	memset(longname, 'n', LKS_LEASE_NAME_MAX);
	longname[LKS_LEASE_NAME_MAX] = '\0';
	lks_lease *g = must_acquire(f->c, longname, 10000, 0);
	assert_int_equal(lks_lease_release(f->c, c), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, g), LKS_OK);
	assert_int_equal(lks_lease_list(f->c, collect, names), LKS_OK);
	assert_string_equal(names, "A,a,a ,b,");
	lks_lease_free(a); lks_lease_free(b); lks_lease_free(c);
	lks_lease_free(d); lks_lease_free(e); lks_lease_free(g);
}

/* ---- 16 threads contend for one name ---- */

typedef struct contend {
	const char *url;
	pthread_barrier_t *bar;
	atomic_int *inside;
	pthread_mutex_t *mu;
	int64_t *last_fence;
	int iters;
	int overlaps, regressions, errors, waits;
} contend;

static void *contend_thread(void *arg)
{
	contend *w = arg;
	lks_conn *c = NULL;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	o.base_delay_us = 200;
	o.max_delay_us = 5000;
	o.stats = &st;
	if (lks_conn_open(&c, w->url))
		w->errors = w->iters;
	pthread_barrier_wait(w->bar);
	for (int i = 0; i < w->iters && !w->errors; i++) {
		lks_lease *l = NULL;
		int64_t n = 0;
		if (lks_lease_acquire(&l, c, "hot", 30000, 60000, &o) != LKS_OK) {
			w->errors++;
			break;
		}
		w->waits += st.attempts > 1;
		if (atomic_fetch_add(w->inside, 1) != 0)
			w->overlaps++;
		pthread_mutex_lock(w->mu);
		if (lks_lease_fence(l) <= *w->last_fence)
			w->regressions++;
		*w->last_fence = lks_lease_fence(l);
		pthread_mutex_unlock(w->mu);
		/* an unprotected read-modify-write: safe only if exclusive */
		if (t_int(c, &n, "SELECT n FROM counter", NULL, 0) != LKS_OK) {
			w->errors++;
		} else {
			lks_value p = LKS_INT(n + 1);
			if (t_int(c, &n, "UPDATE counter SET n = ?", &p, 1) != LKS_OK)
				w->errors++;
		}
		atomic_fetch_sub(w->inside, 1);
		if (lks_lease_release(c, l) != LKS_OK)
			w->errors++;
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

void lease_contention_never_two_holders(void **state)
{
	enum { N = 16 };
	fx *f = *state;
	const char *env = getenv("LKS_TEST_LEASE_ITERS");
	int iters = env ? atoi(env) : 150;
	pthread_t th[N];
	contend w[N];
	pthread_barrier_t bar;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	atomic_int inside = 0;
	int64_t last_fence = 0;
	int waits = 0;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	t_exec(f->c, "CREATE TABLE counter (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO counter VALUES (0)");
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (contend){.url = f->url, .bar = &bar, .inside = &inside, .mu = &mu,
		                 .last_fence = &last_fence, .iters = iters};
		pthread_create(&th[i], NULL, contend_thread, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].overlaps, 0);
		assert_int_equal(w[i].regressions, 0);
		waits += w[i].waits;
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(t_int1(f->c, "SELECT n FROM counter"), N * iters);
	assert_int_equal(lks_lease_inspect(f->c, "hot", &info), LKS_OK);
	assert_int_equal(info.fence, N * iters); /* one token per grant, no gaps */
	assert_true(waits > 0);                   /* there was contention */
	print_message("    %d grants, %d had to wait, last fence %lld\n", N * iters, waits,
	              (long long)info.fence);
}

void lease_expired_is_taken_over(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	lks_lease *a = must_acquire(f->c, "tk", 2000, 0), *b = NULL;
	o.stats = &st;
	/* waiting: granted once the server says it expired, not before (both
	 * instants on the server's clock: no local timing is compared) */
	t_exec(f->c, "CREATE TABLE tk_expiry AS SELECT expires_at FROM lks_lease WHERE name = 'tk'");
	assert_int_equal(lks_lease_acquire(&b, other, "tk", 5000, 60000, &o), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease l, tk_expiry e WHERE"
	                              " l.name = 'tk' AND l.acquired_at >= e.expires_at"),
	                 1);
	t_exec(f->c, "DROP TABLE tk_expiry");
	assert_true(st.attempts >= 2);
	assert_true(lks_lease_fence(b) == lks_lease_fence(a) + 1);
	assert_true(lks_lease_is_lost(a));
	/* the old holder can do nothing any more */
	assert_int_equal(lks_lease_renew(f->c, a, 5000), LKS_LOST);
	assert_int_equal(lks_lease_release(f->c, a), LKS_LOST);
	assert_int_equal(lks_lease_release(other, b), LKS_OK);
	lks_lease_free(a);
	lks_lease_free(b);
	lks_conn_close(other);
}

void lease_timeout_when_held(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a = must_acquire(f->c, "held", 10000, 0), *b = NULL;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	o.stats = &st;
	/* the holder keeps no baton (nobody waited): the head of the line polls */
	assert_int_equal(lks_lease_acquire(&b, other, "held", 1000, 300, &o), LKS_TIMEOUT);
	assert_null(b);
	assert_true(st.waited_us >= 300000); /* it waited its whole wait */
	assert_true(st.attempts >= 3);
	assert_int_equal(st.queued, T_POOLED ? 0 : 1); /* pooled: no waiting room, it polls */
	/* without the waiting room: polling with backoff */
	o.waiting_room = 0;
	assert_int_equal(lks_lease_acquire(&b, other, "held", 1000, 300, &o), LKS_TIMEOUT);
	assert_null(b);
	assert_true(st.waited_us >= 300000); /* it waited its whole wait */
	assert_true(st.attempts >= 3);
	assert_int_equal(st.queued, 0);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	/* a holder that keeps its baton: the waiter blocks in line, sends no polls */
	o.waiting_room = 1;
	o.wake_on_release = 1;
	a = NULL;
	assert_int_equal(lks_lease_acquire(&a, f->c, "held", 10000, 0, &o), LKS_OK);
	o.wake_on_release = 0;
	assert_int_equal(lks_lease_acquire(&b, other, "held", 1000, 300, &o), LKS_TIMEOUT);
	assert_true(st.waited_us >= 300000); /* it waited its whole wait */
	if (!T_POOLED) { /* pooled: no line to wait in, it polls (asserted above) */
		assert_true(st.attempts <= 4); /* a first poll and one at the deadline */
		assert_int_equal(st.queued, 1);
	}
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_conn_close(other);
}

typedef struct write_arg {
	const char *who;
	int64_t sleep_ms;
} write_arg;

static int write_owner(lks_conn *c, int64_t fence, void *arg)
{
	write_arg *w = arg;
	lks_value p[2] = {LKS_TEXT(w->who), LKS_INT(fence)};
	int64_t n;
	if (w->sleep_ms)
		usleep((useconds_t)(w->sleep_ms * 1000));
	return t_int(c, &n, "UPDATE resource SET owner = ?, fence = ?", p, 2);
}

void lease_paused_holder_cannot_write(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a, *b;
	write_arg wa = {"A", 0}, wb = {"B", 0};
	t_exec(f->c, "CREATE TABLE resource (owner varchar(8), fence bigint)");
	t_exec(f->c, "INSERT INTO resource VALUES ('none', 0)");
	a = must_acquire(f->c, "res", 300, 0);
	assert_int_equal(lks_lease_fenced_write(f->c, a, write_owner, &wa), LKS_OK);
	usleep(450 * 1000); /* A stalls past its TTL */
	b = must_acquire(other, "res", 5000, 60000); /* at A's expiry */
	assert_int_equal(lks_lease_fenced_write(other, b, write_owner, &wb), LKS_OK);
	/* A wakes up and writes: rejected, nothing changes */
	assert_int_equal(lks_lease_fenced_write(f->c, a, write_owner, &wa), LKS_LOST);
	assert_int_equal(lks_conn_errcode(f->c), LKS_LOST);
	assert_int_equal(t_int1(f->c, "SELECT fence FROM resource"), lks_lease_fence(b));
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM resource WHERE owner = 'B'"), 1);
	assert_int_equal(lks_lease_release(other, b), LKS_OK);
	lks_lease_free(a);
	lks_lease_free(b);
	lks_conn_close(other);
}

/* A write in flight when the TTL passes is ordered before the takeover: the
 * taker waits for its commit. */
typedef struct taker {
	const char *url;
	lks_lease *l;
	int rc;
} taker;

static void *take(void *arg)
{
	taker *t = arg;
	lks_conn *c = NULL;
	lks_conn_open(&c, t->url);
	t->rc = lks_lease_acquire(&t->l, c, "res", 5000, 5000, NULL);
	lks_conn_close(c);
	return NULL;
}

void lease_takeover_waits_for_inflight_fenced_write(void **state)
{
	fx *f = *state;
	lks_lease *a;
	pthread_t th;
	taker t = {.url = f->url};
	write_arg slow = {"A", 600};
	t_exec(f->c, "CREATE TABLE resource (owner varchar(8), fence bigint)");
	t_exec(f->c, "INSERT INTO resource VALUES ('none', 0)");
	a = must_acquire(f->c, "res", 300, 0);
	pthread_create(&th, NULL, take, &t);
	/* locked in share mode at once, then sleeps past the TTL and writes */
	assert_int_equal(lks_lease_fenced_write(f->c, a, write_owner, &slow), LKS_OK);
	pthread_join(th, NULL);
	assert_int_equal(t.rc, LKS_OK);
	assert_true(lks_lease_fence(t.l) > lks_lease_fence(a));
	assert_int_equal(t_int1(f->c, "SELECT fence FROM resource"), lks_lease_fence(a));
	lks_lease_free(t.l);
	lks_lease_free(a);
}

void lease_sigkilled_holder_is_replaced(void **state)
{
	fx *f = *state;
	int fds[2];
	pid_t pid;
	int64_t child_fence = 0;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	lks_lease *l;
	int status;
	o.stats = &st;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lks_conn *c = NULL;
		lks_lease *cl = NULL;
		close(fds[0]);
		int64_t fence = -1; /* the parent fails on it instead of hanging */
		if (lks_conn_open(&c, f->url) == LKS_OK &&
		    lks_lease_acquire(&cl, c, "crashy", 800, 0, NULL) == LKS_OK)
			fence = lks_lease_fence(cl);
		if (write(fds[1], &fence, sizeof fence) != sizeof fence)
			_exit(3);
		for (;;)
			pause(); /* holding the lease until killed */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &child_fence, sizeof child_fence), (ssize_t)sizeof child_fence);
	close(fds[0]);
	assert_true(child_fence > 0);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status));
	t_exec(f->c, "CREATE TABLE crashy_expiry AS SELECT expires_at FROM lks_lease WHERE name = 'crashy'");
	assert_int_equal(lks_lease_acquire(&l, f->c, "crashy", 1000, 60000, &o), LKS_OK);
	assert_true(lks_lease_fence(l) > child_fence);
	/* it had to wait for the expiry: granted at or after it, on the server's clock */
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease l, crashy_expiry e WHERE"
	                              " l.name = 'crashy' AND l.acquired_at >= e.expires_at"),
	                 1);
	t_exec(f->c, "DROP TABLE crashy_expiry");
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

void lease_tokens_survive_server_restart(void **state)
{
	fx *f = *state;
	int64_t last = 0;
	lks_lease *l;
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL to restart the server");
	for (int i = 0; i < 3; i++) {
		l = must_acquire(f->c, "durable", 5000, 0);
		assert_true(lks_lease_fence(l) > last);
		last = lks_lease_fence(l);
		assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
		lks_lease_free(l);
	}
	l = must_acquire(f->c, "durable", 60000, 0);
	last = lks_lease_fence(l);
	t_ctl("restart"); /* a crash restart: immediate stop / SIGKILL */
	/* the old connection is gone, and says so (behind a pooler the next
	 * transaction just gets a new server connection) */
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int rc = lks_lease_inspect(f->c, "durable", &info);
	if (rc != LKS_ECONN && !(T_POOLED && rc == LKS_OK))
		fail_msg("after restart: %s (%s)", lks_strerror(rc), lks_conn_errmsg(f->c));
	/* the handle reconnects itself with its URL */
	assert_int_equal(lks_conn_reset(f->c), LKS_OK);
	/* the lease survived the restart: still held by us */
	rc = lks_lease_inspect(f->c, "durable", &info);
	if (rc != LKS_OK)
		fail_msg("after restart: %s (%s)", lks_strerror(rc), lks_conn_errmsg(f->c));
	assert_true(info.held);
	assert_int_equal(info.fence, last);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	l = must_acquire(f->c, "durable", 5000, 0);
	assert_true(lks_lease_fence(l) == last + 1);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

static atomic_int lost_calls, lost_status;
static void on_lost(const lks_lease *l, int status, void *arg)
{
	(void)l;
	(void)arg;
	atomic_store(&lost_status, status);
	atomic_fetch_add(&lost_calls, 1);
}

void autorenew_keeps_lease_alive(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	/* a TTL long enough for valgrind beside a busy core, where opening the
	 * renew connection (SCRAM) alone takes a few hundred ms and a renewal
	 * more than a third of 1 s (a CI-like run lost the lease at 1 s) */
	lks_lease *l = must_acquire(f->c, "renewed", 3000, 0), *b = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	atomic_store(&lost_calls, 0);
	ao.on_lost = on_lost;
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_OK);
	for (int i = 0; i < 15; i++) { /* 9 s: three TTLs */
		usleep(600 * 1000);
		assert_false(lks_lease_is_lost(l));
		assert_int_equal(lks_lease_acquire(&b, other, "renewed", 1000, 0, NULL), LKS_BUSY);
	}
	assert_int_equal(lks_lease_inspect(other, "renewed", &info), LKS_OK);
	assert_string_equal(info.holder, lks_lease_holder(l));
	assert_int_equal(info.fence, lks_lease_fence(l));
	assert_int_equal(atomic_load(&lost_calls), 0);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	lks_conn_close(other);
}

void autorenew_reports_takeover(void **state)
{
	fx *f = *state;
	lks_lease *l = must_acquire(f->c, "stolen", 600, 0);
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	atomic_store(&lost_calls, 0);
	ao.on_lost = on_lost;
	ao.interval_ms = 100;
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_OK);
	/* an operator force-expires it and somebody else takes it */
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "UPDATE lks_lease SET expires_at = clock_timestamp() WHERE name = 'stolen'"
	                 : "UPDATE lks_lease SET expires_at = UTC_TIMESTAMP(6) WHERE name = 'stolen'");
	lks_lease *b = must_acquire(f->c, "stolen", 5000, 0);
	for (int i = 0; i < 100 && !atomic_load(&lost_calls); i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&lost_calls), 1);
	assert_int_equal(atomic_load(&lost_status), LKS_LOST);
	assert_true(lks_lease_is_lost(l));
	assert_int_equal(lks_lease_release(f->c, l), LKS_LOST);
	assert_int_equal(lks_lease_release(f->c, b), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(b);
}

void autorenew_reports_server_gone(void **state)
{
	fx *f = *state;
	lks_lease *l = must_acquire(f->c, "fragile", 1500, 0);
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL to stop the server");
	atomic_store(&lost_calls, 0);
	ao.on_lost = on_lost;
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_OK);
	/* at least one renewal: the time left jumps up (60 s means hung) */
	int64_t left = lks_lease_remaining_ms(l);
	for (int i = 0; i < 6000 && lks_lease_remaining_ms(l) <= left; i++) {
		left = lks_lease_remaining_ms(l) < left ? lks_lease_remaining_ms(l) : left;
		usleep(10 * 1000);
	}
	assert_false(lks_lease_is_lost(l));
	t_ctl("stop");
	/* behind PgBouncer the renewal waits for a server connection until
	 * query_wait_timeout (2 s in scripts/common.sh) */
	for (int i = 0; i < (T_POOLED ? 600 : 300) && !atomic_load(&lost_calls); i++)
		usleep(10 * 1000);
	int calls = atomic_load(&lost_calls), status = atomic_load(&lost_status);
	t_ctl("start");
	assert_int_equal(calls, 1);
	assert_int_equal(status, LKS_ECONN);
	assert_true(lks_lease_is_lost(l));
	lks_lease_free(l);
	lks_conn_close(f->c);
	f->c = t_open(f->url);
}

/* The DDL in sql/ is the one lks_lease_install runs: a table created from
 * the file works, and installing again is a no-op. */
void lease_table_from_sql_file(void **state)
{
	fx *f = *state;
	char path[1024], sql[4096];
	size_t n;
	FILE *fp;
	snprintf(path, sizeof path, "%s/sql/%s/lease.sql", LKS_SOURCE_DIR,
	         T_BACKEND == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql");
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(sql, 1, sizeof sql - 1, fp);
	fclose(fp);
	sql[n] = '\0';
	t_exec(f->c, "DROP TABLE lks_lease");
	t_exec(f->c, sql);
	{ /* the file's table has the owner column: labels work before install */
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		lks_lease *owned = NULL;
		o.owner = "from-file";
		assert_int_equal(lks_lease_acquire(&owned, f->c, "owned", 30000, 0, &o), LKS_OK);
		assert_int_equal(lks_lease_release(f->c, owned), LKS_OK);
		lks_lease_free(owned);
	}
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) /* no CHECK: each costs every UPDATE */
		assert_int_equal(t_int1(f->c, "SELECT count(*) FROM pg_constraint"
		                              " WHERE conrelid = 'lks_lease'::regclass AND contype = 'c'"),
		                 0);
	lks_lease *l = must_acquire(f->c, "from-file", 30000, 0);
	assert_int_equal(lks_lease_fence(l), 1);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

typedef struct waiter {
	const char *url;
	pthread_barrier_t ready; /* connected: the wait is about to start */
	int rc;
	int64_t waited_us, queued;
	lks_lease *l;
} waiter;

static void *wait_for_lease(void *arg)
{
	waiter *w = arg;
	lks_conn *c = NULL;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	/* polls alone would be slow: the first one after the wait's start comes
	 * at its deadline (30 s; behind a pooler, 2 s apart) */
	o.base_delay_us = o.max_delay_us = T_POOLED ? 2000000 : 60000000;
	o.stats = &st;
	lks_conn_open(&c, w->url); /* slow under valgrind (SCRAM): not timed */
	pthread_barrier_wait(&w->ready);
	w->rc = lks_lease_acquire(&w->l, c, "handoff", 5000, 30000, &o);
	w->waited_us = st.waited_us;
	w->queued = st.queued;
	lks_conn_close(c);
	return NULL;
}

/* A holder that keeps its baton (wake_on_release) hands the lease to the
 * waiter in line at release, without NOTIFY and without the next poll. */
void lease_release_wakes_waiter(void **state)
{
	fx *f = *state;
	lks_lease_acquire_options keep = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *a = NULL;
	waiter w = {.url = f->url};
	pthread_t th;
	keep.wake_on_release = 1;
	assert_int_equal(lks_lease_acquire(&a, f->c, "handoff", 60000, 0, &keep), LKS_OK);
	pthread_barrier_init(&w.ready, NULL, 2);
	pthread_create(&th, NULL, wait_for_lease, &w);
	pthread_barrier_wait(&w.ready);
	/* released once the waiter is seen in line (behind a pooler it polls,
	 * which the server cannot show apart from other statements) */
	if (!T_POOLED)
		t_wait_in_line(f->c, 1);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&w.ready);
	assert_int_equal(w.rc, LKS_OK);
	assert_true(lks_lease_fence(w.l) == lks_lease_fence(a) + 1);
	if (!T_POOLED)
		assert_true(w.queued >= 1); /* it did wait in line for the release */
	print_message("    acquired %lld ms after it started waiting\n", (long long)w.waited_us / 1000);
	/* the release woke it, long before the poll at its deadline (30 s);
	 * the bound tells the two paths apart, it times nothing. Behind a
	 * pooler wake_on_release falls back to polls */
	if (!T_POOLED)
		assert_true(w.waited_us < 15000000);
	lks_lease_free(a);
	lks_lease_free(w.l);
}

/* A handle remembers the fence it released (MariaDB's one-UPDATE grant of a
 * lease it released last). The guess must never decide: another grant since,
 * held or expired, makes the guess miss and the full statement rule. */
void lease_fence_guess_never_decides(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a = must_acquire(f->c, "guess", 5000, 0), *b, *c = NULL;
	int64_t f0 = lks_lease_fence(a);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	/* taken by another handle and held: busy, whatever f->c remembers */
	b = must_acquire(other, "guess", 5000, 0);
	assert_int_equal(lks_lease_fence(b), f0 + 1);
	assert_int_equal(lks_lease_acquire(&c, f->c, "guess", 5000, 0, NULL), LKS_BUSY);
	assert_int_equal(lks_lease_release(other, b), LKS_OK);
	lks_lease_free(b);
	/* released by the other handle: the old guess misses, the grant is right */
	a = must_acquire(f->c, "guess", 5000, 0);
	assert_int_equal(lks_lease_fence(a), f0 + 2);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	/* taken by the other and left to expire: taken over with the next fence */
	b = must_acquire(other, "guess", 300, 0);
	assert_int_equal(lks_lease_fence(b), f0 + 3);
	a = must_acquire(f->c, "guess", 5000, 60000); /* at b's expiry */
	assert_int_equal(lks_lease_fence(a), f0 + 4);
	assert_int_equal(lks_lease_release(other, b), LKS_LOST);
	lks_lease_free(b);
	/* the guess is right: one statement, the next fence */
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	a = must_acquire(f->c, "guess", 5000, 0);
	assert_int_equal(lks_lease_fence(a), f0 + 5);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_conn_close(other);
}

typedef struct free_cycles {
	const char *url;
	int id, iters, busy, errors;
	bool fresh;
	pthread_barrier_t *bar;
} free_cycles;

static void *free_cycles_thread(void *arg)
{
	free_cycles *w = arg;
	lks_conn *c = t_open(w->url);
	char name[32];
	snprintf(name, sizeof name, "own:%d", w->id);
	pthread_barrier_wait(w->bar);
	for (int i = 0; i < w->iters; i++) {
		lks_lease *l = NULL;
		if (w->fresh) /* a new name each time: a row that does not exist yet */
			snprintf(name, sizeof name, "fresh:%d:%d", w->id, i);
		int rc = lks_lease_acquire(&l, c, name, 10000, 0, NULL);
		if (rc == LKS_BUSY)
			w->busy++;
		else if (rc || lks_lease_release(c, l))
			w->errors++;
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

/* A lease nobody else wants is never busy: 16 threads each cycle their own
 * name with wait 0. (PostgreSQL's 1 ms row-lock bound once turned a short
 * relation-extension lock wait into LKS_BUSY.) */
/* 16 threads cycling (own name, or a new one each time); busy count */
static int cycles_busy(fx *f, bool fresh, int iters)
{
	enum { N = 16 };
	pthread_t th[N];
	free_cycles w[N];
	pthread_barrier_t bar;
	int busy = 0;
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (free_cycles){.url = f->url, .id = i, .iters = iters, .bar = &bar, .fresh = fresh};
		pthread_create(&th[i], NULL, free_cycles_thread, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
		busy += w[i].busy;
	}
	pthread_barrier_destroy(&bar);
	return busy;
}

void lease_free_name_is_never_busy(void **state)
{
	fx *f = *state;
	assert_int_equal(cycles_busy(f, false, 300), 0);
	for (int i = 0; i < 16; i++) {
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		char name[32];
		snprintf(name, sizeof name, "own:%d", i);
		assert_int_equal(lks_lease_inspect(f->c, name, &info), LKS_OK);
		assert_int_equal(info.fence, 300);
	}
	/* new names, which the others' grants and releases lock around (InnoDB
	 * locks the gap before a duplicate key it updates): never busy either */
	assert_int_equal(cycles_busy(f, true, 200), 0);
}

/* #20 item 3: with the waiting room off, no statement a handle prepares
 * names an advisory-lock function (CockroachDB has none), read back from
 * the server's own list of the session's prepared statements. */
void lease_without_waiting_room_names_no_advisory_lock(void **state)
{
	fx *f = *state;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_conn *c, *other;
	lks_lease *l = NULL, *held = NULL;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL || T_POOLED) {
		print_message("    PostgreSQL with prepared statements only\n");
		return;
	}
	c = t_open(f->url);
	other = t_open(f->url);
	o.waiting_room = 0;
	for (int i = 0; i < 3; i++) { /* a new name, then the lean path */
		assert_int_equal(lks_lease_acquire(&l, c, "no-room", 10000, 0, &o), LKS_OK);
		assert_int_equal(lks_lease_renew(c, l, 10000), LKS_OK);
		assert_int_equal(lks_lease_release(c, l), LKS_OK);
		lks_lease_free(l);
		l = NULL;
	}
	/* polling a held lease until the wait runs out */
	assert_int_equal(lks_lease_acquire(&held, other, "no-room-held", 10000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&l, c, "no-room-held", 10000, 300, &o), LKS_TIMEOUT);
	assert_true(t_int1(c, "SELECT count(*) FROM pg_prepared_statements") >= 3);
	/* (this query is prepared too: it leaves itself out) */
	assert_int_equal(t_int1(c, "SELECT count(*) FROM pg_prepared_statements"
	                           " WHERE statement ILIKE '%advisory%'"
	                           " AND statement NOT ILIKE '%pg_prepared_statements%'"), 0);
	assert_int_equal(lks_lease_release(other, held), LKS_OK);
	lks_lease_free(held);
	lks_conn_close(other);
	lks_conn_close(c);
}

/* #20 item 3: grant=single on a postgresql:// URL, for engines that refuse
 * two modifications of one table in a statement (CockroachDB's default):
 * the same guarantees (8 threads, never two holders, one fence per grant,
 * no gaps, the counter exact; a new name after a purge above the floor; a
 * takeover of an expired lease), and no statement the handle prepared
 * modifies the lease table twice (FOR UPDATE and ON CONFLICT DO UPDATE are
 * no second modification), read back from the server. */
void lease_single_modification_grants(void **state)
{
	enum { N = 8 };
	fx *f = *state;
	char url[1200];
	pthread_t th[N];
	contend w[N];
	pthread_barrier_t bar;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	atomic_int inside = 0;
	int64_t last_fence = 0, fence, deleted = 0;
	int iters = 40;
	lks_conn *c, *other;
	lks_lease *l = NULL, *b = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL) {
		print_message("    a postgresql:// URL parameter\n");
		return;
	}
	snprintf(url, sizeof url, "%s%cgrant=single", f->url, strchr(f->url, '?') ? '&' : '?');
	assert_int_equal(lks_conn_open(&c, "postgresql://u@127.0.0.1:1/x?grant=twice"), LKS_EINVAL);
	lks_conn_close(c);
	c = t_open(url);
	other = t_open(url);
	t_exec(f->c, "CREATE TABLE counter (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO counter VALUES (0)");
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (contend){.url = url, .bar = &bar, .inside = &inside, .mu = &mu,
		                 .last_fence = &last_fence, .iters = iters};
		pthread_create(&th[i], NULL, contend_thread, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].overlaps, 0);
		assert_int_equal(w[i].regressions, 0);
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(t_int1(f->c, "SELECT n FROM counter"), N * iters);
	assert_int_equal(lks_lease_inspect(f->c, "hot", &info), LKS_OK);
	assert_int_equal(info.fence, N * iters);
	/* takeover of an expired lease; the stale holder is refused */
	assert_int_equal(lks_lease_acquire(&l, c, "single-tk", 300, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&b, other, "single-tk", 5000, 3000, NULL), LKS_OK);
	assert_int_equal(lks_lease_fence(b), lks_lease_fence(l) + 1);
	assert_int_equal(lks_lease_release(c, l), LKS_LOST);
	fence = lks_lease_fence(b);
	assert_int_equal(lks_lease_release(other, b), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(b);
	/* deleted by a purge, then granted again: above the fence floor */
	assert_int_equal(lks_lease_purge(c, 0, 100, &deleted), LKS_OK);
	assert_true(deleted >= 1);
	assert_int_equal(lks_lease_acquire(&l, c, "single-tk", 5000, 0, NULL), LKS_OK);
	assert_true(lks_lease_fence(l) > fence);
	assert_int_equal(lks_lease_release(c, l), LKS_OK);
	lks_lease_free(l);
	if (!T_POOLED) /* prepared statements: only without a pooler */
		assert_int_equal(t_int1(c, "SELECT count(*) FROM pg_prepared_statements"
		                           " WHERE regexp_replace(statement, '(for|do|key) update', '', 'gi')"
		                           " ~* '(update|insert|delete)\\M.*(update|insert|delete)\\M'"
		                           " AND statement NOT ILIKE '%pg_prepared_statements%'"), 0);
	lks_conn_close(other);
	lks_conn_close(c);
}

/* A clock-offset bound (lks_conn_set_clock_offset) moves the holder's own
 * deadline earlier by that much, at the grant and at each renewal; the
 * server's expiry does not move. Time left only shrinks, so the bounds
 * below hold however slow the machine is: b, granted after a with a 3 s
 * offset, has at least a's time left minus 3 s, and at most 6 s of 10. */
void clock_offset_shortens_the_holders_deadline(void **state)
{
	fx *f = *state;
	lks_lease *a = NULL, *b = NULL, *none = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int64_t left_a, left_b;
	assert_int_equal(lks_conn_set_clock_offset(f->c, -1), LKS_EINVAL);
	assert_int_equal(lks_conn_set_clock_offset(f->c, 60001), LKS_EINVAL);
	assert_int_equal(lks_conn_set_clock_offset(NULL, 10), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&a, f->c, "offset-a", 10000, 0, NULL), LKS_OK);
	assert_int_equal(lks_conn_set_clock_offset(f->c, 3000), LKS_OK);
	assert_int_equal(lks_lease_acquire(&b, f->c, "offset-b", 10000, 0, NULL), LKS_OK);
	left_b = lks_lease_remaining_ms(b);
	left_a = lks_lease_remaining_ms(a);
	print_message("    time left: %lld ms without the offset, %lld ms with 3000 ms\n",
	              (long long)left_a, (long long)left_b);
	assert_true(left_a <= 9000); /* the margin alone: a tenth */
	assert_true(left_b <= 6000);
	assert_true(left_b >= left_a - 3000 - 1);
	/* renewals keep it */
	assert_int_equal(lks_lease_renew(f->c, b, 10000), LKS_OK);
	assert_true(lks_lease_remaining_ms(b) <= 6000);
	/* the server's expiry is the TTL, as before: margin (1 s) + offset
	 * (3 s) after the holder's deadline, or later (rounding: 2 ms) */
	assert_int_equal(lks_lease_inspect(f->c, "offset-b", &info), LKS_OK);
	assert_true(info.held);
	assert_true(info.remaining_ms - lks_lease_remaining_ms(b) >= 4000 - 2);
	/* a TTL not longer than margin + offset is refused, and nothing is granted */
	assert_int_equal(lks_lease_acquire(&none, f->c, "offset-c", 3300, 0, NULL), LKS_EINVAL);
	assert_null(none);
	assert_int_equal(lks_lease_inspect(f->c, "offset-c", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(lks_conn_set_clock_offset(f->c, 0), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, b), LKS_OK);
	lks_lease_free(a);
	lks_lease_free(b);
}

/* #30: lks_lease_run: a function under a lease, renewed while it runs and
 * released after it (or held at least a given time). Two threads run the
 * same job 10 times each: never both inside, every fenced write lands; a
 * function that runs longer than the TTL keeps its lease; at_least keeps
 * the lease after a quick function; fn's error comes back with the lease
 * released; bad input runs nothing. */
typedef struct run_job {
	const char *url;
	atomic_int *inside, *overlaps;
	int64_t hold_ms;
	int rc_fn, errors;
} run_job;

static int count_write(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence, (void)arg;
	return lks_conn_exec(c, "UPDATE run_counter SET n = n + 1");
}

static int the_job(lks_conn *c, lks_lease *l, void *arg)
{
	run_job *j = arg;
	if (j->inside && atomic_fetch_add(j->inside, 1) != 0)
		atomic_fetch_add(j->overlaps, 1);
	if (j->hold_ms)
		usleep((useconds_t)j->hold_ms * 1000); /* the job's own work */
	int rc = lks_lease_fenced_write(c, l, count_write, NULL);
	if (j->inside)
		atomic_fetch_sub(j->inside, 1);
	return rc ? rc : j->rc_fn;
}

static void *run_job_thread(void *arg)
{
	run_job *j = arg;
	lks_conn *c = t_open(j->url);
	for (int i = 0; i < 10; i++)
		if (lks_lease_run(c, "run-job", 30000, 60000, 0, NULL, the_job, j) != LKS_OK)
			j->errors++;
	lks_conn_close(c);
	return NULL;
}

void lease_run_guards_a_function(void **state)
{
	fx *f = *state;
	atomic_int inside = 0, overlaps = 0;
	run_job a = {.url = f->url, .inside = &inside, .overlaps = &overlaps, .hold_ms = 10};
	run_job b = a, quick = {.url = f->url}, failing = {.url = f->url, .rc_fn = LKS_CONFLICT};
	run_job longer = {.url = f->url, .hold_ms = 4000}; /* past a 3 s TTL */
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	pthread_t ta, tb;
	t_exec(f->c, "CREATE TABLE run_counter (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO run_counter VALUES (0)");
	pthread_create(&ta, NULL, run_job_thread, &a);
	pthread_create(&tb, NULL, run_job_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.errors + b.errors, 0);
	assert_int_equal(atomic_load(&overlaps), 0);
	assert_int_equal(t_int1(f->c, "SELECT n FROM run_counter"), 20);
	/* longer than the TTL: renewed meanwhile, the fenced write at the end
	 * lands (a TTL of seconds: valgrind beside a busy core renews slowly) */
	T_OK(f->c, lks_lease_run(f->c, "run-long", 3000, 0, 0, NULL, the_job, &longer));
	assert_int_equal(t_int1(f->c, "SELECT n FROM run_counter"), 21);
	/* at least 30 s: still held after a quick function, so a second run is busy */
	T_OK(f->c, lks_lease_run(f->c, "run-daily", 30000, 0, 30000, NULL, the_job, &quick));
	assert_int_equal(lks_lease_run(f->c, "run-daily", 30000, 0, 0, NULL, the_job, &quick), LKS_BUSY);
	assert_int_equal(lks_lease_inspect(f->c, "run-daily", &info), LKS_OK);
	assert_true(info.held);
	/* fn's error comes back; the lease is released */
	assert_int_equal(lks_lease_run(f->c, "run-fail", 30000, 0, 0, NULL, the_job, &failing),
	                 LKS_CONFLICT);
	assert_int_equal(lks_lease_inspect(f->c, "run-fail", &info), LKS_OK);
	assert_false(info.held);
	/* bad input: nothing runs */
	assert_int_equal(lks_lease_run(f->c, "run-bad", 30000, 0, 0, NULL, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_run(f->c, "run-bad", 30000, 0, -1, NULL, the_job, &quick), LKS_EINVAL);
	assert_int_equal(lks_lease_run(f->c, "", 30000, 0, 0, NULL, the_job, &quick), LKS_EINVAL);
	assert_int_equal(lks_lease_run(NULL, "run-bad", 30000, 0, 0, NULL, the_job, &quick), LKS_EINVAL);
	assert_int_equal(t_int1(f->c, "SELECT n FROM run_counter"), 23); /* the failing fn wrote before it failed */
}
