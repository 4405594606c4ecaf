/* Integration: counting semaphores and sets of names taken all or nothing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "it.h"

#define SEP "\xe2\x90\x9f" /* U+241F: permit k of S is the row S␟k */

static lks_lease *must_sem(lks_conn *c, const char *name, int permits, int64_t ttl, int64_t wait)
{
	lks_lease *l = NULL;
	int rc = lks_semaphore_acquire(&l, c, name, permits, ttl, wait, NULL);
	if (rc)
		fail_msg("semaphore %s: %s (%s)", name, lks_strerror(rc), lks_conn_errmsg(c));
	return l;
}

static int count_held(const lks_lease_info *info, void *arg)
{
	(void)info;
	(*(int *)arg)++;
	return 0;
}

/* counters(name, n) += 1 for name; the caller's transaction */
static int bump(lks_conn *c, const char *name)
{
	lks_value p = LKS_TEXT(name);
	int64_t rows = 0;
	int rc = t_int(c, &rows, "UPDATE counters SET n = n + 1 WHERE name = ?", &p, 1);
	return rc ? rc : rows == 1 ? LKS_OK : LKS_NOT_FOUND;
}

static int add_one(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	return bump(c, arg);
}

void semaphore_permits_and_slots(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a = must_sem(f->c, "pool", 2, 10000, 0), *b = must_sem(f->c, "pool", 2, 10000, 0);
	lks_lease *x = NULL, *taken = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char row[64];
	int held = 0;
	/* two permits, two distinct slots, each an ordinary lease row */
	assert_true(lks_lease_slot(a) >= 0 && lks_lease_slot(a) < 2);
	assert_int_equal(lks_lease_slot(a) + lks_lease_slot(b), 1);
	snprintf(row, sizeof row, "pool" SEP "%d", lks_lease_slot(a));
	assert_string_equal(lks_lease_name(a), row);
	assert_int_equal(lks_lease_inspect(other, row, &info), LKS_OK);
	assert_true(info.held);
	assert_string_equal(info.holder, lks_lease_holder(a));
	/* full: busy at once, with the reason; nothing granted */
	assert_int_equal(lks_semaphore_acquire(&x, other, "pool", 2, 10000, 0, NULL), LKS_BUSY);
	assert_null(x);
	assert_non_null(strstr(lks_conn_errmsg(other), "all 2 permits are held"));
	assert_int_equal(lks_semaphore_list(other, "pool", 2, count_held, &held), LKS_OK);
	assert_int_equal(held, 2);
	/* a permit frees: the next caller gets exactly that slot */
	assert_int_equal(lks_semaphore_release(f->c, a), LKS_OK);
	x = must_sem(other, "pool", 2, 10000, 0);
	assert_int_equal(lks_lease_slot(x), lks_lease_slot(a));
	assert_true(lks_lease_fence(x) > lks_lease_fence(a)); /* that slot's fence grew */
	/* the semaphore's name is not a lease, and lease grants refuse slot rows */
	assert_int_equal(lks_lease_inspect(other, "pool", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(lks_lease_acquire(&taken, other, row, 10000, 0, NULL), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(other), "U+241F"));
	assert_null(taken);
	/* fenced writes on a permit: the current holder writes, a stale one is refused */
	t_exec(f->c, "CREATE TABLE counters (name varchar(64) PRIMARY KEY, n int NOT NULL)");
	t_exec(f->c, "INSERT INTO counters VALUES ('pool', 0)");
	assert_int_equal(lks_lease_fenced_write(other, x, add_one, "pool"), LKS_OK);
	assert_int_equal(lks_lease_fenced_write(f->c, a, add_one, "pool"), LKS_LOST);
	assert_int_equal(t_int1(f->c, "SELECT n FROM counters"), 1);
	lks_lease_free(a);
	assert_int_equal(lks_lease_release_all(f->c, (lks_lease *const[]){b, x}, 2), LKS_OK);
	assert_int_equal(lks_lease_is_lost(b), 1);
	lks_lease_free(b);
	lks_lease_free(x);
	lks_conn_close(other);
}

void semaphore_bad_input_changes_nothing(void **state)
{
	fx *f = *state;
	lks_lease *l = NULL;
	char longname[LKS_SEMAPHORE_NAME_MAX + 2];
	int held = 0;
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(lks_semaphore_acquire(NULL, f->c, "s", 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, NULL, 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "", 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, longname, 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "a" SEP "1", 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "\xff", 2, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "s", 0, 1000, 0, NULL), LKS_EINVAL);
	/* #30: the message says what was passed (it said -1 for 0) */
	assert_non_null(strstr(lks_conn_errmsg(f->c), "got 0"));
	assert_int_equal(lks_semaphore_release(f->c, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "s", -3, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "s", LKS_SEMAPHORE_PERMITS_MAX + 1, 1000, 0, NULL),
	                 LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "s", 2, 0, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_acquire(&l, f->c, "s", 2, 1000, -1, NULL), LKS_EINVAL);
	assert_int_equal(lks_semaphore_list(f->c, "s", 2, NULL, NULL), LKS_EINVAL);
	assert_null(l);
	/* nothing was written */
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM lks_lease WHERE name <> ''"), 0);
	/* the largest limit and name work */
	longname[LKS_SEMAPHORE_NAME_MAX] = '\0';
	l = must_sem(f->c, longname, LKS_SEMAPHORE_PERMITS_MAX, 60000, 0);
	assert_true(lks_lease_slot(l) >= 0 && lks_lease_slot(l) < LKS_SEMAPHORE_PERMITS_MAX);
	assert_int_equal(lks_semaphore_list(f->c, longname, LKS_SEMAPHORE_PERMITS_MAX, count_held, &held),
	                 LKS_OK);
	assert_int_equal(held, 1);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

/* A crashed holder's permit comes back at its TTL; a smaller limit never
 * evicts a holder of a higher permit, and only grants below it. */
void semaphore_expiry_and_changed_limit(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *h[4], *x = NULL;
	int high[2], n = 0;
	for (int i = 0; i < 4; i++)
		h[i] = must_sem(f->c, "lim", 4, i == 0 ? 400 : 20000, 0);
	/* all four held; slot of h[0] expires (its holder "crashed") */
	x = must_sem(other, "lim", 4, 20000, 5000);
	assert_int_equal(lks_lease_slot(x), lks_lease_slot(h[0]));
	assert_int_equal(lks_lease_renew(f->c, h[0], 1000), LKS_LOST);
	lks_lease_free(h[0]);
	h[0] = x;
	x = NULL;
	/* limit 2: its permits 0 and 1 are held, so busy, whoever holds 2 and 3 */
	assert_int_equal(lks_semaphore_acquire(&x, other, "lim", 2, 20000, 0, NULL), LKS_BUSY);
	for (int i = 0; i < 4; i++)
		if (lks_lease_slot(h[i]) >= 2)
			high[n++] = i;
	assert_int_equal(n, 2);
	/* the holders above the new limit keep their permits: renew, write */
	for (int i = 0; i < 2; i++)
		assert_int_equal(lks_lease_renew(f->c, h[high[i]], 20000), LKS_OK);
	/* a larger limit has room at once: permit 4 or 5 */
	x = must_sem(other, "lim", 6, 20000, 0);
	assert_true(lks_lease_slot(x) >= 4);
	assert_int_equal(lks_lease_release(other, x), LKS_OK);
	lks_lease_free(x);
	x = NULL;
	/* a high permit freed does not make room under limit 2 */
	assert_int_equal(lks_lease_release(f->c, h[high[0]]), LKS_OK);
	assert_int_equal(lks_semaphore_acquire(&x, other, "lim", 2, 20000, 0, NULL), LKS_BUSY);
	/* a low one does */
	for (int i = 0; i < 4; i++)
		if (lks_lease_slot(h[i]) == 1) {
			assert_int_equal(lks_lease_release(f->c, h[i]), LKS_OK);
			break;
		}
	x = must_sem(other, "lim", 2, 20000, 0);
	assert_int_equal(lks_lease_slot(x), 1);
	assert_int_equal(lks_lease_release(other, x), LKS_OK);
	lks_lease_free(x);
	for (int i = 0; i < 4; i++) {
		lks_lease_release(f->c, h[i]); /* some were released above: LKS_LOST then */
		lks_lease_free(h[i]);
	}
	lks_conn_close(other);
}

/* the child's part: a permit of "crash" (out: its slot and fence) */
static void take_permit(lks_conn *c, int64_t out[2], void *arg)
{
	lks_lease *l = NULL;
	(void)arg;
	if (lks_semaphore_acquire(&l, c, "crash", 2, 1500, 0, NULL) == LKS_OK) {
		out[0] = lks_lease_slot(l);
		out[1] = lks_lease_fence(l);
	}
}

/* A holder SIGKILLed while it holds a permit: its permit comes back at its
 * TTL on the server's clock (never before: the new grant starts at or after
 * the dead one's expiry), to the same slot, with a greater fence. */
void semaphore_killed_holders_permit_returns(void **state)
{
	fx *f = *state;
	int status;
	int64_t got[2]; /* slot, fence */
	lks_lease *mine = must_sem(f->c, "crash", 2, 60000, 0), *x = NULL;
	char sql[256];
	pid_t pid = t_fork_holder(f->url, take_permit, NULL, got);
	assert_true(got[1] > 0);
	assert_int_equal(got[0], 1 - lks_lease_slot(mine));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* the dead holder's expiry, as the server recorded it */
	snprintf(sql, sizeof sql, "CREATE TABLE dead_permit AS SELECT expires_at FROM lks_lease"
	         " WHERE name = 'crash" SEP "%d'", (int)got[0]);
	t_exec(f->c, sql);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM dead_permit"), 1);
	x = must_sem(f->c, "crash", 2, 60000, 60000);
	assert_int_equal(lks_lease_slot(x), got[0]);
	assert_true(lks_lease_fence(x) > got[1]);
	snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM lks_lease l, dead_permit d WHERE l.name ="
	         " 'crash" SEP "%d' AND l.acquired_at >= d.expires_at", (int)got[0]);
	assert_int_equal(t_int1(f->c, sql), 1);
	t_exec(f->c, "DROP TABLE dead_permit");
	assert_int_equal(lks_lease_release(f->c, x), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, mine), LKS_OK);
	lks_lease_free(x);
	lks_lease_free(mine);
}

/* ---- many workers on one semaphore --------------------------------------- */

/* 64 workers on 3 permits (LKS_TEST_QUEUE_THREADS: fewer, under valgrind) */
enum { SEM_PERMITS = 3, SEM_WORKERS_MAX = 64 };

typedef struct sem_shared {
	const char *url;
	int iters;
	pthread_barrier_t bar;
	pthread_mutex_t mu;
	atomic_int inside, max_inside;
	int64_t last_fence[SEM_PERMITS];
	int slot_inside[SEM_PERMITS];
	atomic_int errors, overlaps, regressions, grants;
} sem_shared;

static int count_write(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	(void)arg;
	return bump(c, "sem");
}

static void *sem_worker(void *arg)
{
	sem_shared *s = arg;
	lks_conn *c = NULL;
	if (lks_conn_open(&c, s->url) != LKS_OK) {
		atomic_fetch_add(&s->errors, 1);
		pthread_barrier_wait(&s->bar);
		lks_conn_close(c);
		return NULL;
	}
	pthread_barrier_wait(&s->bar);
	for (int i = 0; i < s->iters; i++) {
		lks_lease *l = NULL;
		int slot, now;
		if (lks_semaphore_acquire(&l, c, "sem", SEM_PERMITS, 30000, 60000, NULL) != LKS_OK) {
			fprintf(stderr, "# acquire: %s\n", lks_conn_errmsg(c));
			atomic_fetch_add(&s->errors, 1);
			continue;
		}
		slot = lks_lease_slot(l);
		now = atomic_fetch_add(&s->inside, 1) + 1;
		for (int m = atomic_load(&s->max_inside); now > m;)
			if (atomic_compare_exchange_weak(&s->max_inside, &m, now))
				break;
		pthread_mutex_lock(&s->mu);
		if (slot < 0 || slot >= SEM_PERMITS || s->slot_inside[slot]++)
			atomic_fetch_add(&s->overlaps, 1);
		else if (lks_lease_fence(l) <= s->last_fence[slot])
			atomic_fetch_add(&s->regressions, 1);
		else
			s->last_fence[slot] = lks_lease_fence(l);
		pthread_mutex_unlock(&s->mu);
		if (lks_lease_fenced_write(c, l, count_write, NULL) != LKS_OK)
			atomic_fetch_add(&s->errors, 1);
		pthread_mutex_lock(&s->mu);
		if (slot >= 0 && slot < SEM_PERMITS)
			s->slot_inside[slot]--;
		pthread_mutex_unlock(&s->mu);
		atomic_fetch_sub(&s->inside, 1);
		if (lks_lease_release(c, l) != LKS_OK)
			atomic_fetch_add(&s->errors, 1);
		lks_lease_free(l);
		atomic_fetch_add(&s->grants, 1);
	}
	lks_conn_close(c);
	return NULL;
}

void semaphore_never_more_than_permits(void **state)
{
	fx *f = *state;
	const char *env = getenv("LKS_TEST_LEASE_ITERS");
	static sem_shared s;
	pthread_t th[SEM_WORKERS_MAX];
	int64_t fences = 0;
	const char *threads = getenv("LKS_TEST_QUEUE_THREADS");
	int nworkers = threads ? atoi(threads) : SEM_WORKERS_MAX;
	if (nworkers < 2 || nworkers > SEM_WORKERS_MAX)
		nworkers = SEM_WORKERS_MAX;
	memset(&s, 0, sizeof s);
	s.url = f->url;
	s.iters = env ? atoi(env) : 20;
	pthread_barrier_init(&s.bar, NULL, (unsigned)nworkers);
	pthread_mutex_init(&s.mu, NULL);
	t_exec(f->c, "CREATE TABLE counters (name varchar(64) PRIMARY KEY, n int NOT NULL)");
	t_exec(f->c, "INSERT INTO counters VALUES ('sem', 0)");
	for (int i = 0; i < nworkers; i++)
		pthread_create(&th[i], NULL, sem_worker, &s);
	for (int i = 0; i < nworkers; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&s.bar);
	pthread_mutex_destroy(&s.mu);
	assert_int_equal(atomic_load(&s.errors), 0);
	assert_int_equal(atomic_load(&s.overlaps), 0);
	assert_int_equal(atomic_load(&s.regressions), 0);
	assert_true(atomic_load(&s.max_inside) <= SEM_PERMITS);
	assert_true(atomic_load(&s.max_inside) > 1); /* permits were used side by side */
	assert_int_equal(atomic_load(&s.grants), nworkers * s.iters);
	assert_int_equal(t_int1(f->c, "SELECT n FROM counters WHERE name = 'sem'"), nworkers * s.iters);
	/* one fence per grant, per slot, no gaps: the slots' fences add up */
	for (int k = 0; k < SEM_PERMITS; k++) {
		char row[32];
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		snprintf(row, sizeof row, "sem" SEP "%d", k);
		assert_int_equal(lks_lease_inspect(f->c, row, &info), LKS_OK);
		assert_false(info.held);
		fences += info.fence;
	}
	assert_int_equal(fences, nworkers * s.iters);
	print_message("    %d grants of %d permits by %d workers, at most %d at once\n",
	              nworkers * s.iters, SEM_PERMITS, nworkers, atomic_load(&s.max_inside));
}

/* ---- sets of names ------------------------------------------------------- */

static int add_each(lks_conn *c, lks_lease *const *leases, size_t n, void *arg)
{
	int rc = LKS_OK;
	(void)arg;
	for (size_t i = 0; i < n && rc == LKS_OK; i++)
		rc = bump(c, lks_lease_name(leases[i]));
	return rc;
}

void lease_set_all_or_nothing(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	const char *names[] = {"c", "a", "b"}, *dup[] = {"a", "b", "a"};
	lks_lease *out[3] = {NULL, NULL, NULL}, *b;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	int64_t fence_a;
	o.stats = &st;
	t_exec(f->c, "CREATE TABLE counters (name varchar(64) PRIMARY KEY, n int NOT NULL)");
	t_exec(f->c, "INSERT INTO counters VALUES ('a', 0), ('b', 0), ('c', 0)");
	assert_int_equal(lks_lease_acquire(&b, other, "b", 4000, 0, NULL), LKS_OK);
	/* b is held: busy without a wait, a timeout with one; nothing kept */
	assert_int_equal(lks_lease_acquire_all(out, f->c, names, 3, 1000, 0, NULL), LKS_BUSY);
	assert_int_equal(lks_lease_acquire_all(out, f->c, names, 3, 1000, 200, NULL), LKS_TIMEOUT);
	for (int i = 0; i < 3; i++)
		assert_null(out[i]);
	assert_int_equal(lks_lease_inspect(other, "a", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(lks_lease_inspect(other, "c", &info), LKS_OK);
	assert_false(info.held);
	/* bad sets change nothing */
	assert_int_equal(lks_lease_acquire_all(out, f->c, dup, 3, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire_all(out, f->c, names, 0, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire_all(out, f->c, names, LKS_LEASE_SET_MAX + 1, 1000, 0, NULL),
	                 LKS_EINVAL);
	assert_int_equal(lks_lease_acquire_all(NULL, f->c, names, 3, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire_all(out, f->c, (const char *[]){"a", NULL}, 2, 1000, 0, NULL),
	                 LKS_EINVAL);
	assert_int_equal(lks_lease_acquire_all(out, f->c, (const char *[]){"a", ""}, 2, 1000, 0, NULL),
	                 LKS_EINVAL);
	assert_int_equal(lks_lease_inspect(other, "a", &info), LKS_OK);
	assert_false(info.held);
	/* a set with a TTL shorter than b's hold: a (taken first, in name order)
	 * is renewed while b is waited for, so the whole set is current at the
	 * end (a TTL of seconds: a loaded machine must not make a miss its
	 * renewal) */
	assert_int_equal(lks_lease_acquire_all(out, f->c, names, 3, 2500, 60000, &o), LKS_OK);
	assert_true(st.attempts >= 3);
	for (int i = 0; i < 3; i++) {
		assert_non_null(out[i]);
		assert_string_equal(lks_lease_name(out[i]), names[i]);
		assert_false(lks_lease_is_lost(out[i]));
	}
	fence_a = lks_lease_fence(out[1]);
	assert_int_equal(lks_lease_inspect(other, "a", &info), LKS_OK);
	assert_int_equal(info.fence, fence_a); /* renewed, never granted again */
	assert_int_equal(lks_lease_fenced_write_all(f->c, out, 3, add_each, NULL), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT sum(n) FROM counters"), 3);
	/* one lease of the set taken away: the whole write is refused */
	assert_int_equal(lks_lease_force_release(other, "c", NULL), LKS_OK);
	assert_int_equal(lks_lease_fenced_write_all(f->c, out, 3, add_each, NULL), LKS_LOST);
	assert_int_equal(t_int1(f->c, "SELECT sum(n) FROM counters"), 3);
	assert_int_equal(lks_lease_fenced_write_all(f->c, out, 0, add_each, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_fenced_write_all(f->c, out, 3, NULL, NULL), LKS_EINVAL);
	/* release_all: the first error (c was lost), after trying every lease */
	assert_int_equal(lks_lease_release_all(f->c, out, 3), LKS_LOST);
	assert_int_equal(lks_lease_inspect(other, "a", &info), LKS_OK);
	assert_false(info.held);
	for (int i = 0; i < 3; i++)
		lks_lease_free(out[i]);
	lks_lease_release(other, b);
	lks_lease_free(b);
	lks_conn_close(other);
}

/* 16 workers, sets of 1..4 names out of 6 in random orders */
typedef struct canceled_set {
	const char *url;
	lks_cancel *token;
	lks_lease *out[2];
	int rc;
} canceled_set;

static void *acquire_set_until_canceled(void *arg)
{
	canceled_set *x = arg;
	lks_conn *c = NULL;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	const char *names[] = {"ca", "cb"};
	o.cancel = x->token;
	x->rc = lks_conn_open(&c, x->url);
	if (x->rc == LKS_OK)
		x->rc = lks_lease_acquire_all(x->out, c, names, 2, 20000, 60000, &o);
	lks_conn_close(c);
	return NULL;
}

/* A set whose second name is held: the wait is canceled once the first is
 * taken (seen on the server); the call returns LKS_CANCELED holding nothing. */
void lease_set_canceled_holds_nothing(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *held = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	canceled_set x = {.url = f->url};
	pthread_t th;
	assert_int_equal(lks_cancel_new(&x.token), LKS_OK);
	assert_int_equal(lks_lease_acquire(&held, other, "cb", 60000, 0, NULL), LKS_OK);
	pthread_create(&th, NULL, acquire_set_until_canceled, &x);
	for (int i = 0; i < 3000 && !info.held; i++) {
		assert_int_equal(lks_lease_inspect(f->c, "ca", &info), LKS_OK);
		if (!info.held)
			usleep(10000);
	}
	assert_true(info.held); /* the first name is taken; the second waited for */
	lks_cancel_trip(x.token);
	pthread_join(th, NULL);
	assert_int_equal(x.rc, LKS_CANCELED);
	assert_null(x.out[0]);
	assert_null(x.out[1]);
	assert_int_equal(lks_lease_inspect(f->c, "ca", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(lks_lease_release(other, held), LKS_OK);
	lks_lease_free(held);
	lks_cancel_free(x.token);
	lks_conn_close(other);
}

enum { SET_WORKERS = 16, SET_NAMES = 6, SET_SIZE_MAX = 4 };

typedef struct set_shared {
	const char *url;
	int iters;
	pthread_barrier_t bar;
	atomic_int inside[SET_NAMES];
	atomic_int errors, overlaps, count[SET_NAMES];
} set_shared;

static const char *const set_names[SET_NAMES] = {"n0", "n1", "n2", "n3", "n4", "n5"};

static void *set_worker(void *arg)
{
	set_shared *s = arg;
	lks_conn *c = NULL;
	unsigned seed = (unsigned)(uintptr_t)&c;
	int ok = lks_conn_open(&c, s->url) == LKS_OK;
	pthread_barrier_wait(&s->bar);
	if (!ok) {
		atomic_fetch_add(&s->errors, 1);
		lks_conn_close(c);
		return NULL;
	}
	for (int i = 0; i < s->iters; i++) {
		/* 1..SET_SIZE_MAX distinct names, in a random order */
		int pick[SET_NAMES] = {0, 1, 2, 3, 4, 5};
		int size = 1 + (int)(rand_r(&seed) % SET_SIZE_MAX);
		const char *names[SET_SIZE_MAX];
		lks_lease *out[SET_SIZE_MAX];
		for (int k = SET_NAMES - 1; k > 0; k--) {
			int j = (int)(rand_r(&seed) % (unsigned)(k + 1)), t = pick[k];
			pick[k] = pick[j];
			pick[j] = t;
		}
		for (int k = 0; k < size; k++)
			names[k] = set_names[pick[k]];
		if (lks_lease_acquire_all(out, c, names, size, 20000, 60000, NULL) != LKS_OK) {
			fprintf(stderr, "# acquire_all: %s\n", lks_conn_errmsg(c));
			atomic_fetch_add(&s->errors, 1);
			continue;
		}
		for (int k = 0; k < size; k++)
			if (atomic_fetch_add(&s->inside[pick[k]], 1) != 0)
				atomic_fetch_add(&s->overlaps, 1);
		if (lks_lease_fenced_write_all(c, out, size, add_each, NULL) != LKS_OK)
			atomic_fetch_add(&s->errors, 1);
		for (int k = 0; k < size; k++) {
			atomic_fetch_sub(&s->inside[pick[k]], 1);
			atomic_fetch_add(&s->count[pick[k]], 1);
		}
		if (lks_lease_release_all(c, out, size) != LKS_OK)
			atomic_fetch_add(&s->errors, 1);
		for (int k = 0; k < size; k++)
			lks_lease_free(out[k]);
	}
	lks_conn_close(c);
	return NULL;
}

/* Overlapping sets in every order: no deadlock, no name held twice, every
 * write counted. */
void lease_sets_overlap_without_deadlock(void **state)
{
	fx *f = *state;
	const char *env = getenv("LKS_TEST_LEASE_ITERS");
	static set_shared s;
	pthread_t th[SET_WORKERS];
	memset(&s, 0, sizeof s);
	s.url = f->url;
	s.iters = env ? atoi(env) : 30;
	pthread_barrier_init(&s.bar, NULL, SET_WORKERS);
	t_exec(f->c, "CREATE TABLE counters (name varchar(64) PRIMARY KEY, n int NOT NULL)");
	for (int k = 0; k < SET_NAMES; k++) {
		lks_value p = LKS_TEXT(set_names[k]);
		int64_t rows = 0;
		assert_int_equal(t_int(f->c, &rows, "INSERT INTO counters VALUES (?, 0)", &p, 1), LKS_OK);
	}
	for (int i = 0; i < SET_WORKERS; i++)
		pthread_create(&th[i], NULL, set_worker, &s);
	for (int i = 0; i < SET_WORKERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&s.bar);
	assert_int_equal(atomic_load(&s.errors), 0);
	assert_int_equal(atomic_load(&s.overlaps), 0);
	for (int k = 0; k < SET_NAMES; k++) {
		lks_value p = LKS_TEXT(set_names[k]);
		int64_t n = -1;
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		assert_int_equal(t_int(f->c, &n, "SELECT n FROM counters WHERE name = ?", &p, 1), LKS_OK);
		assert_int_equal(n, atomic_load(&s.count[k]));
		assert_int_equal(lks_lease_inspect(f->c, set_names[k], &info), LKS_OK);
		assert_false(info.held);
		assert_int_equal(info.fence, n); /* one grant per set that held it */
	}
	print_message("    %d sets of 1..%d names out of %d by %d workers\n", SET_WORKERS * s.iters,
	              SET_SIZE_MAX, SET_NAMES, SET_WORKERS);
}

/* #29 item 7: the process pauses between members (here: in the event hook
 * after the first grant, past its TTL) and another holder takes the first
 * member over meanwhile. The set is checked before it is returned: the lost
 * member is taken again, never handed out run out, never LKS_LOST. */
typedef struct pause_after_first {
	const char *url;
	int64_t taken_over_fence;
	int paused;
} pause_after_first;

static void pause_and_take_over(const lks_event *ev, void *arg)
{
	pause_after_first *p = arg;
	lks_lease *l = NULL;
	if (ev->kind != LKS_EVENT_ACQUIRED || strcmp(ev->name, "m-a") || p->paused++)
		return;
	lks_conn *other = t_open(p->url);
	/* the pause: the member's grant runs out on the server while this
	 * process does nothing; the other holder waits for the expiry */
	assert_int_equal(lks_lease_acquire(&l, other, "m-a", 30000, 30000, NULL), LKS_OK);
	p->taken_over_fence = lks_lease_fence(l);
	assert_int_equal(lks_lease_release(other, l), LKS_OK);
	lks_lease_free(l);
	lks_conn_close(other);
	/* the set's local deadline for m-a is past too: never later than the
	 * server's expiry, which the takeover waited for */
}

void lease_set_member_lost_midway_is_taken_again(void **state)
{
	fx *f = *state;
	const char *names[] = {"m-b", "m-a"};
	lks_lease *out[2] = {NULL, NULL};
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	pause_after_first p = {.url = f->url};
	assert_int_equal(lks_conn_set_event_hook(f->c, pause_and_take_over, &p), LKS_OK);
	T_OK(f->c, lks_lease_acquire_all(out, f->c, names, 2, 3000, 60000, NULL));
	assert_int_equal(lks_conn_set_event_hook(f->c, NULL, NULL), LKS_OK);
	assert_true(p.paused >= 2); /* m-a was granted again */
	assert_true(p.taken_over_fence > 0);
	assert_true(lks_lease_fence(out[1]) > p.taken_over_fence);
	for (int i = 0; i < 2; i++) {
		assert_false(lks_lease_is_lost(out[i]));
		assert_int_equal(lks_lease_inspect(f->c, names[i], &info), LKS_OK);
		assert_true(info.held);
		assert_int_equal(info.fence, lks_lease_fence(out[i]));
	}
	T_OK(f->c, lks_lease_release_all(f->c, out, 2));
	for (int i = 0; i < 2; i++)
		lks_lease_free(out[i]);
}

/* #30 item 4: one line for all permits. 8 workers take one of 3 permits
 * in turn, 25 times each, holding it 10 ms and coming back at once (the
 * releasing worker used to take its permit back ahead of the line: 137-157
 * of 200 grants overtook a worker that had waited longer). An overtake:
 * a grant to a worker that asked more than 20 ms after another worker,
 * who was granted more than 20 ms later (timestamps taken in the workers,
 * which a loaded machine delays). The line lets a newcomer take a permit
 * only when it has been free for LKS_SEMAPHORE_LINE_STALE_MS while a head
 * waits (a stalled head), and MariaDB's GET_LOCK does not hand its lock
 * on in strict arrival order, so a few may happen on a machine that
 * stalls threads: at most 10% (25% under TSan and valgrind, whose
 * clients run many times slower: LKS_TEST_OVERTAKES_PERCENT); here 0-2 of
 * 200 on PostgreSQL and 0-7 on MariaDB beside a busy core, 13-36 on
 * MariaDB under TSan (91-160 without the line; 131-160 through a pooler,
 * which has no line: skipped there). */
enum { FAIR_WORKERS = 8, FAIR_ROUNDS = 25 };

typedef struct fair_log {
	pthread_mutex_t mu;
	int64_t asked[FAIR_WORKERS * FAIR_ROUNDS], got[FAIR_WORKERS * FAIR_ROUNDS];
	int n, errors;
	const char *url;
	pthread_barrier_t start;
} fair_log;

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *fair_worker(void *arg)
{
	fair_log *lg = arg;
	lks_conn *c = t_open(lg->url);
	pthread_barrier_wait(&lg->start);
	for (int i = 0; i < FAIR_ROUNDS; i++) {
		lks_lease *l = NULL;
		int64_t asked = mono_us();
		int rc = lks_semaphore_acquire(&l, c, "fair", 3, 30000, 60000, NULL);
		int64_t got = mono_us();
		if (rc) {
			pthread_mutex_lock(&lg->mu);
			lg->errors++;
			pthread_mutex_unlock(&lg->mu);
			continue;
		}
		pthread_mutex_lock(&lg->mu);
		lg->asked[lg->n] = asked;
		lg->got[lg->n++] = got;
		pthread_mutex_unlock(&lg->mu);
		usleep(10000); /* the work done under the permit */
		if (lks_semaphore_release(c, l))
			lg->errors++;
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

void semaphore_keeps_its_line(void **state)
{
	fx *f = *state;
	static fair_log lg;
	pthread_t th[FAIR_WORKERS];
	int overtakes = 0;
	int64_t worst = 0;
	const char *pct = getenv("LKS_TEST_OVERTAKES_PERCENT");
	if (T_POOLED) { /* no session locks through a transaction pooler: no line */
		print_message("    a transaction pooler has no waiting room: waiters poll, unordered\n");
		skip();
	}
	memset(&lg, 0, sizeof lg);
	pthread_mutex_init(&lg.mu, NULL);
	pthread_barrier_init(&lg.start, NULL, FAIR_WORKERS);
	lg.url = f->url;
	for (int i = 0; i < FAIR_WORKERS; i++)
		pthread_create(&th[i], NULL, fair_worker, &lg);
	for (int i = 0; i < FAIR_WORKERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&lg.start);
	pthread_mutex_destroy(&lg.mu);
	assert_int_equal(lg.errors, 0);
	assert_int_equal(lg.n, FAIR_WORKERS * FAIR_ROUNDS);
	for (int j = 0; j < lg.n; j++) {
		bool overtook = false;
		for (int i = 0; i < lg.n && !overtook; i++)
			overtook = lg.asked[j] > lg.asked[i] + 20000 && lg.got[j] + 20000 < lg.got[i];
		overtakes += overtook;
		if (lg.got[j] - lg.asked[j] > worst)
			worst = lg.got[j] - lg.asked[j];
	}
	print_message("    %d grants of 3 permits to 8 workers: %d overtook a worker that waited"
	              " longer; longest wait %lld ms\n",
	              lg.n, overtakes, (long long)(worst / 1000));
	assert_true(overtakes * 100 <= lg.n * (pct ? atoi(pct) : 10));
}
