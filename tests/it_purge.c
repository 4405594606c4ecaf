/* Integration: lease-table cleanup (lks_lease_purge) and the fence floor
 * that keeps a purged name's fences increasing when it is used again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it.h"

static lks_lease *grab(lks_conn *c, const char *name)
{
	lks_lease *l = NULL;
	int rc = lks_lease_acquire(&l, c, name, 30000, 20000, NULL);
	if (rc)
		fail_msg("acquire %s: %s (%s)", name, lks_strerror(rc), lks_conn_errmsg(c));
	return l;
}

/* n grants and releases; the fence the row keeps afterwards */
static int64_t cycle(lks_conn *c, const char *name, int n)
{
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	for (int i = 0; i < n; i++) {
		lks_lease *l = grab(c, name);
		assert_int_equal(lks_lease_release(c, l), LKS_OK);
		lks_lease_free(l);
	}
	assert_int_equal(lks_lease_inspect(c, name, &info), LKS_OK);
	return info.fence;
}

static int count_listed(const lks_lease_info *info, void *arg)
{
	(void)info;
	++*(int *)arg;
	return 0;
}

void lease_purge_keeps_fences_increasing(void **state)
{
	fx *f = *state;
	int64_t deleted = -1, top;
	int listed = 0;
	int64_t old_fence = cycle(f->c, "old", 5);
	int64_t freed_fence = cycle(f->c, "freed", 1);
	lks_lease *held = grab(f->c, "held"), *again;
	top = old_fence > freed_fence ? old_fence : freed_fence;
	if (lks_lease_fence(held) > top)
		top = lks_lease_fence(held);

	/* freed less than an hour ago: kept (the floor row appears) */
	assert_int_equal(lks_lease_purge(f->c, 3600000, 100, &deleted), LKS_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease WHERE name IN ('old', 'freed', 'held')"), 3);
	/* free now, one row per batch: both free rows go, the held one stays */
	assert_int_equal(lks_lease_purge(f->c, 0, 1, &deleted), LKS_OK);
	assert_int_equal(deleted, 2);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease WHERE name IN ('old', 'freed')"), 0);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease WHERE name = 'held'"), 1);
	/* the floor is never listed; the held lease still works */
	assert_int_equal(lks_lease_list(f->c, count_listed, &listed), LKS_OK);
	assert_int_equal(listed, 1);
	assert_int_equal(lks_lease_renew(f->c, held, 30000), LKS_OK);

	/* a purged name and a new one start above every fence the table had */
	again = grab(f->c, "old");
	assert_true(lks_lease_fence(again) > top);
	assert_int_equal(lks_lease_release(f->c, again), LKS_OK);
	lks_lease_free(again);
	again = grab(f->c, "brand-new");
	assert_true(lks_lease_fence(again) > top);
	assert_int_equal(lks_lease_release(f->c, again), LKS_OK);
	lks_lease_free(again);
	/* a purge with nothing to delete changes nothing */
	assert_int_equal(lks_lease_purge(f->c, 3600000, 10, &deleted), LKS_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(lks_lease_release(f->c, held), LKS_OK);
	lks_lease_free(held);
}

/* Workers grant and release a few names while a purger deletes every free
 * row as fast as it can: each name's fences, observed while holding it,
 * must only grow, across every deletion. */
#define PURGE_NAMES 6
#define PURGE_WORKERS 4
#define PURGE_ROUNDS 150

typedef struct race {
	const char *url;
	pthread_mutex_t mu;
	int64_t last[PURGE_NAMES];
	atomic_int violations, workers_done, errors;
	atomic_llong purged, purges;
} race;

static void *race_worker(void *arg)
{
	race *r = arg;
	lks_conn *c = t_open(r->url);
	uint64_t seed = (uint64_t)(uintptr_t)&c | 1;
	for (int i = 0; i < PURGE_ROUNDS; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift */
		int k = (int)(seed % PURGE_NAMES);
		char name[16];
		lks_lease *l = NULL;
		snprintf(name, sizeof name, "n%d", k);
		if (lks_lease_acquire(&l, c, name, 30000, 30000, NULL)) {
			atomic_fetch_add(&r->errors, 1);
			continue;
		}
		pthread_mutex_lock(&r->mu);
		if (lks_lease_fence(l) <= r->last[k])
			atomic_fetch_add(&r->violations, 1);
		r->last[k] = lks_lease_fence(l);
		pthread_mutex_unlock(&r->mu);
		if (lks_lease_release(c, l))
			atomic_fetch_add(&r->errors, 1);
		lks_lease_free(l);
	}
	lks_conn_close(c);
	atomic_fetch_add(&r->workers_done, 1);
	return NULL;
}

static void *race_purger(void *arg)
{
	race *r = arg;
	lks_conn *c = t_open(r->url);
	/* until every worker is done, and at least a few purges ran */
	while (atomic_load(&r->workers_done) < PURGE_WORKERS || atomic_load(&r->purges) < 3) {
		int64_t n = 0;
		int rc = lks_lease_purge(c, 0, 2, &n);
		if (rc && rc != LKS_ETRANSIENT) {
			print_error("purge: %s (%s)\n", lks_strerror(rc), lks_conn_errmsg(c));
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		atomic_fetch_add(&r->purged, n);
		atomic_fetch_add(&r->purges, 1);
	}
	lks_conn_close(c);
	return NULL;
}

void lease_purge_races_grants(void **state)
{
	fx *f = *state;
	race r = {.url = f->url};
	pthread_t w[PURGE_WORKERS], p;
	pthread_mutex_init(&r.mu, NULL);
	for (int i = 0; i < PURGE_WORKERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, race_worker, &r), 0);
	assert_int_equal(pthread_create(&p, NULL, race_purger, &r), 0);
	for (int i = 0; i < PURGE_WORKERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(p, NULL);
	pthread_mutex_destroy(&r.mu);
	print_message("purge race: %lld rows purged in %lld purges\n", (long long)r.purged,
	              (long long)r.purges);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.violations, 0);
	assert_true(r.purged > 0); /* names were deleted and used again */
}

void lease_purge_bad_input_changes_nothing(void **state)
{
	fx *f = *state;
	int64_t deleted = -1, rows;
	lks_lease_free(grab(f->c, "left-held")); /* never released: expires later */
	cycle(f->c, "free-one", 1);
	rows = t_int1(f->c, "SELECT COUNT(*) FROM lks_lease");
	assert_int_equal(lks_lease_purge(NULL, 0, 10, &deleted), LKS_EINVAL);
	assert_int_equal(lks_lease_purge(f->c, -1, 10, &deleted), LKS_EINVAL);
	assert_int_equal(deleted, 0);
	assert_int_equal(lks_lease_purge(f->c, 101LL * 365 * 86400 * 1000, 10, &deleted), LKS_EINVAL);
	assert_int_equal(lks_lease_purge(f->c, 0, 0, &deleted), LKS_EINVAL);
	assert_int_equal(lks_lease_purge(f->c, 0, 10001, &deleted), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "batch"));
	t_exec(f->c, T_BACKEND == LKS_BACKEND_MYSQL ? "START TRANSACTION" : "BEGIN");
	assert_int_equal(lks_lease_purge(f->c, 0, 10, &deleted), LKS_EINVAL);
	t_exec(f->c, "ROLLBACK");
	/* a table that is not there: the server's error, nothing written */
	assert_int_equal(lks_lease_set_table(f->c, "no_such_lease_table"), LKS_OK);
	assert_int_not_equal(lks_lease_purge(f->c, 0, 10, &deleted), LKS_OK);
	assert_int_equal(lks_lease_set_table(f->c, "lks_lease"), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease"), rows);
	/* and then it works */
	assert_int_equal(lks_lease_purge(f->c, 0, 10, &deleted), LKS_OK);
	assert_int_equal(deleted, 1);
}

/* #29 item 4: a client built before the fence floor inserts a name it has
 * no row for at fence 1. Once a purge has run, such an insert fails, so a
 * purged name's fence never goes back; and the names this version inserts
 * say where they started (base). The old client's statement is run as it
 * was. */
void lease_purge_refuses_older_clients(void **state)
{
	fx *f = *state;
	lks_lease *l;
	int64_t deleted = 0, last = 0;
	for (int i = 0; i < 5; i++) {
		T_OK(f->c, lks_lease_acquire(&l, f->c, "oldclient", 30000, 0, NULL));
		last = lks_lease_fence(l);
		T_OK(f->c, lks_lease_release(f->c, l));
		lks_lease_free(l);
	}
	assert_true(last >= 5);
	/* before any purge an older client still works (a rolling upgrade) */
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "INSERT INTO lks_lease (name, holder, fence, acquired_at, expires_at)"
	                   " VALUES ('oldfirst', NULL, 1, NULL, 'epoch')"
	                 : "INSERT INTO lks_lease (name, holder, fence, acquired_at, expires_at)"
	                   " VALUES ('oldfirst', NULL, 1, NULL, '1970-01-01')");
	T_OK(f->c, lks_lease_purge(f->c, 0, 100, &deleted));
	assert_true(deleted >= 1);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease WHERE name = 'oldclient'"), 0);
	/* the older client's insert of the purged name now fails */
	assert_int_not_equal(lks_conn_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                     ? "INSERT INTO lks_lease (name, holder, fence, acquired_at, expires_at)"
	                       " VALUES ('oldclient', 'h', 1, clock_timestamp(), clock_timestamp() + interval '30 seconds')"
	                     : "INSERT INTO lks_lease (name, holder, fence, acquired_at, expires_at)"
	                       " VALUES ('oldclient', 'h', 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 30 SECOND)"),
	                     LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease WHERE name = 'oldclient'"), 0);
	/* this version's grant starts above the floor, and says so */
	T_OK(f->c, lks_lease_acquire(&l, f->c, "oldclient", 30000, 0, NULL));
	assert_true(lks_lease_fence(l) > last);
	assert_int_equal(t_int1(f->c, "SELECT base FROM lks_lease WHERE name = 'oldclient'"),
	                 lks_lease_fence(l));
	T_OK(f->c, lks_lease_release(f->c, l));
	lks_lease_free(l);
	/* a second purge has nothing more to seal */
	T_OK(f->c, lks_lease_purge(f->c, 0, 100, &deleted));
}
