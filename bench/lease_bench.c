/* Lease benchmark, every figure measured in one run against its baseline:
 *   1. acquire+release on distinct names at 1 and 16 threads: lockstock
 *      against a ShedLock-style raw statement pair on the native client, and
 *      the server's own session locks for scale (pg_try_advisory_lock /
 *      GET_LOCK: not leases, no TTL, no fence, gone with the session);
 *   2. one hot lease, 8 and 64 workers (acquire, fenced write, release):
 *      goodput, grant statements per purchase, wait p99 and max;
 *   3. hand-off after 400-600 ms holds, release -> next holder's grant:
 *      through the waiting room, by the head's polling, and by plain polling;
 *   4. (MySQL) fenced writes through one held lease, 1 and 8 connections,
 *      each its own row: the share-lock guard against the write guard that
 *      Galera needs (fence-guard=lock|write);
 *   5. cancel latency: lks_cancel_trip -> a waiting acquire's return, in
 *      the waiting room and asleep between polls, against the server's own
 *      cancel of a blocked lock wait (pg_cancel_backend / KILL QUERY).
 * Usage: lease_bench postgresql|mysql [seconds per run, default 3]
 * (URL from LKS_PG_URL / LKS_MYSQL_URL; run it against servers at default
 * durability: scripts/bench.sh starts such servers). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lockstock-mysql.h"
#include "lockstock-pg.h"
#include "stats.h"

#define ROUNDS 3
/* part 1 alternates the variants in shorter runs: this machine drifts by
 * 15% within a minute, and finer interleaving keeps the ratio steadier */
#define CYCLE_ROUNDS 7
#define MAX_THREADS 64

static const char *url;
static bool pg;
static double run_seconds = 3;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "lease_bench: %s: %s\n", what, c ? lks_conn_errmsg(c) : "");
	exit(1);
}

/* The leases live in a table of their own, made afresh each run as the
 * ShedLock table is: both start from the same state (a lease table that
 * earlier tests have scattered over many pages would tilt the comparison). */
#define BENCH_LEASE_TABLE "lks_bench_lease"

static lks_conn *open_conn(void)
{
	lks_conn *c = NULL;
	if (lks_conn_open(&c, url) || lks_lease_set_table(c, BENCH_LEASE_TABLE))
		die(c, "open");
	return c;
}

/* ---- 1. distinct names ------------------------------------------------ */

typedef enum { V_LOCKSTOCK, V_SHEDLOCK, V_SESSION, V_COUNT } variant;
static const char *variant_names[] = {"lockstock lease", "ShedLock-style pair", "session lock"};

typedef struct cycle_arg {
	variant v;
	int id;
	pthread_barrier_t *ready, *go; /* connected; clock set */
	double deadline_s;
	long ops;
} cycle_arg;

/* the statements ShedLock's JdbcTemplateStorageAccessor sends, on the raw
 * client with prepared statements */
static const char *shed_lock_pg =
	"UPDATE shedlock SET lock_until = now() + interval '10 seconds', locked_at = now(), locked_by = $2"
	" WHERE name = $1 AND lock_until <= now()";
static const char *shed_unlock_pg = "UPDATE shedlock SET lock_until = now() WHERE name = $1";
static const char *shed_lock_my =
	"UPDATE shedlock SET lock_until = UTC_TIMESTAMP(3) + INTERVAL 10 SECOND, locked_at = UTC_TIMESTAMP(3), locked_by = ?"
	" WHERE name = ? AND lock_until <= UTC_TIMESTAMP(3)";
static const char *shed_unlock_my = "UPDATE shedlock SET lock_until = UTC_TIMESTAMP(3) WHERE name = ?";

static long cycles_pg(PGconn *p, variant v, const char *name, double deadline_s)
{
	const char *args[2] = {name, "bench-host"};
	char key[24];
	const char *k[1] = {key};
	long ops = 0;
	snprintf(key, sizeof key, "%ld", 4242000L + (long)strlen(name) * 1000 + name[strlen(name) - 1]);
	if (v == V_SHEDLOCK) {
		PQclear(PQprepare(p, "l", shed_lock_pg, 2, NULL));
		PQclear(PQprepare(p, "u", shed_unlock_pg, 1, NULL));
	} else {
		PQclear(PQprepare(p, "l", "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL));
		PQclear(PQprepare(p, "u", "SELECT pg_advisory_unlock($1::bigint)", 1, NULL));
	}
	while (now_s() < deadline_s) {
		PGresult *r = PQexecPrepared(p, "l", v == V_SHEDLOCK ? 2 : 1, v == V_SHEDLOCK ? args : k,
		                             NULL, NULL, 0);
		bool ok = v == V_SHEDLOCK ? !strcmp(PQcmdTuples(r), "1")
		                          : PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		if (!ok) {
			fprintf(stderr, "lease_bench: raw lock failed: %s\n", PQerrorMessage(p));
			exit(1);
		}
		PQclear(PQexecPrepared(p, "u", 1, v == V_SHEDLOCK ? args : k, NULL, NULL, 0));
		ops++;
	}
	PQclear(PQexec(p, "DEALLOCATE ALL"));
	return ops;
}

static MYSQL_STMT *my_prep(MYSQL *m, const char *sql, MYSQL_BIND *b)
{
	MYSQL_STMT *s = mysql_stmt_init(m);
	if (mysql_stmt_prepare(s, sql, strlen(sql)) || mysql_stmt_bind_param(s, b)) {
		fprintf(stderr, "lease_bench: prepare: %s\n", mysql_stmt_error(s));
		exit(1);
	}
	return s;
}

static long cycles_my(MYSQL *m, variant v, const char *name, double deadline_s)
{
	char holder[] = "bench-host";
	unsigned long nlen = strlen(name), hlen = strlen(holder);
	MYSQL_BIND lb[2], ub[1], res;
	long long got = 0;
	long ops = 0;
	memset(lb, 0, sizeof lb);
	memset(ub, 0, sizeof ub);
	memset(&res, 0, sizeof res);
	lb[0].buffer_type = lb[1].buffer_type = ub[0].buffer_type = MYSQL_TYPE_STRING;
	lb[0].buffer = v == V_SHEDLOCK ? holder : (char *)name;
	lb[0].buffer_length = v == V_SHEDLOCK ? hlen : nlen;
	lb[0].length = v == V_SHEDLOCK ? &hlen : &nlen;
	lb[1].buffer = (char *)name;
	lb[1].buffer_length = nlen;
	lb[1].length = &nlen;
	ub[0].buffer = (char *)name;
	ub[0].buffer_length = nlen;
	ub[0].length = &nlen;
	res.buffer_type = MYSQL_TYPE_LONGLONG;
	res.buffer = &got;
	MYSQL_STMT *l = my_prep(m, v == V_SHEDLOCK ? shed_lock_my : "SELECT GET_LOCK(?, 0)", lb);
	MYSQL_STMT *u = my_prep(m, v == V_SHEDLOCK ? shed_unlock_my : "SELECT RELEASE_LOCK(?)", ub);
	while (now_s() < deadline_s) {
		bool ok;
		if (mysql_stmt_execute(l))
			ok = false;
		else if (v == V_SHEDLOCK)
			ok = mysql_stmt_affected_rows(l) == 1;
		else
			ok = !mysql_stmt_bind_result(l, &res) && !mysql_stmt_fetch(l) && got == 1 &&
			     mysql_stmt_fetch(l) == MYSQL_NO_DATA;
		if (!ok) {
			fprintf(stderr, "lease_bench: raw lock failed: %s\n", mysql_stmt_error(l));
			exit(1);
		}
		if (mysql_stmt_execute(u) || (v == V_SESSION && mysql_stmt_store_result(u)))
			exit(1);
		mysql_stmt_free_result(u);
		ops++;
	}
	mysql_stmt_close(l);
	mysql_stmt_close(u);
	return ops;
}

static void *cycle_thread(void *arg)
{
	cycle_arg *a = arg;
	lks_conn *c = open_conn();
	char name[32];
	snprintf(name, sizeof name, "bench:%d", a->id);
	pthread_barrier_wait(a->ready);
	pthread_barrier_wait(a->go);
	if (a->v == V_LOCKSTOCK) {
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		o.waiting_room = getenv("LB_NOROOM") ? 0 : 1;
		while (now_s() < a->deadline_s) {
			lks_lease *l;
			if (lks_lease_acquire(&l, c, name, 10000, 0, &o) || lks_lease_release(c, l))
				die(c, "lease");
			lks_lease_free(l);
			a->ops++;
		}
	} else if (pg) {
		a->ops = cycles_pg(lks_conn_pg(c), a->v, name, a->deadline_s);
	} else {
		a->ops = cycles_my(lks_conn_mysql(c), a->v, name, a->deadline_s);
	}
	lks_conn_close(c);
	return NULL;
}

static double run_cycles(variant v, int threads)
{
	pthread_t th[MAX_THREADS];
	cycle_arg a[MAX_THREADS];
	pthread_barrier_t ready, go;
	long ops = 0;
	pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
	pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		a[i] = (cycle_arg){.v = v, .id = i, .ready = &ready, .go = &go};
		pthread_create(&th[i], NULL, cycle_thread, &a[i]);
	}
	/* connections open first; the clock starts when all are ready */
	pthread_barrier_wait(&ready);
	double t0 = now_s();
	for (int i = 0; i < threads; i++)
		a[i].deadline_s = t0 + run_seconds / 2;
	pthread_barrier_wait(&go);
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ops += a[i].ops;
	}
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	return ops / (now_s() - t0);
}

static void distinct_names(void)
{
	int counts[] = {1, 16};
	printf("\n1. acquire+release, distinct names (one per thread), ops/s, median of %d rotated"
	       " runs of %.1f s\n", CYCLE_ROUNDS, run_seconds / 2);
	printf("   %-8s %18s %22s %16s %10s\n", "threads", variant_names[0], variant_names[1],
	       variant_names[2], "ratio");
	for (int ci = 0; ci < 2; ci++) {
		double r[V_COUNT][CYCLE_ROUNDS];
		for (int round = 0; round < CYCLE_ROUNDS; round++)
			for (int k = 0; k < V_COUNT; k++) {
				variant v = (variant)((k + round) % V_COUNT); /* rotate the order */
				/* LB_ONLY=n runs one variant (for profiling); the others show 0 */
				r[v][round] = getenv("LB_ONLY") && atoi(getenv("LB_ONLY")) != (int)v
				                  ? 0 : run_cycles(v, counts[ci]);
			}
		double m[V_COUNT];
		for (int v = 0; v < V_COUNT; v++)
			m[v] = bench_pct(r[v], CYCLE_ROUNDS, 0.5);
		printf("   %-8d %18.0f %22.0f %16.0f %9.2fx\n", counts[ci], m[V_LOCKSTOCK], m[V_SHEDLOCK],
		       m[V_SESSION], m[V_LOCKSTOCK] / m[V_SHEDLOCK]);
	}
	printf("   ratio = lockstock / ShedLock-style pair (target >= 0.9 at 1 thread, >= 1.0 at 16).\n"
	       "   Session locks are no leases (no TTL, no fence, lost with the session): shown for scale.\n");
}

/* ---- 2. hot lease ----------------------------------------------------- */

typedef struct hot_arg {
	pthread_barrier_t *ready, *go;
	double deadline_s;
	long purchases, grants, queued, errors;
	double *waits; /* ms, one per purchase */
	int nwaits, capwaits;
} hot_arg;

static int fenced_increment(lks_conn *c, int64_t fence, void *arg)
{
	int64_t n;
	(void)fence;
	(void)arg;
	return lks_conn_query_int(c, "UPDATE bench_counter SET n = n + 1 WHERE id = 1", NULL, 0, &n);
}

static void *hot_thread(void *arg)
{
	hot_arg *a = arg;
	lks_conn *c = open_conn();
	pthread_barrier_wait(a->ready);
	pthread_barrier_wait(a->go);
	while (now_s() < a->deadline_s) {
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		lks_lease_acquire_stats st;
		lks_lease *l = NULL;
		o.stats = &st;
		int rc = lks_lease_acquire(&l, c, "hot", 10000, 2000, &o);
		a->grants += st.attempts;
		a->queued += st.queued;
		if (rc == LKS_TIMEOUT) {
			a->errors++;
			continue;
		}
		if (rc)
			die(c, "hot acquire");
		if ((rc = lks_lease_fenced_write(c, l, fenced_increment, NULL)) == LKS_OK) {
			a->purchases++;
			if (a->nwaits == a->capwaits) {
				a->capwaits = a->capwaits ? 2 * a->capwaits : 1024;
				a->waits = realloc(a->waits, sizeof(double) * (size_t)a->capwaits);
			}
			a->waits[a->nwaits++] = st.waited_us / 1000.0;
		} else {
			die(c, "hot fenced write");
		}
		lks_lease_release(c, l);
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

typedef struct hot_result {
	double goodput, grants_per, queued_per, p50, p99, max;
	long timeouts;
	bool exact;
} hot_result;

static hot_result run_hot(int workers)
{
	pthread_t th[MAX_THREADS];
	hot_arg a[MAX_THREADS];
	pthread_barrier_t ready, go;
	hot_result res = {0};
	lks_conn *c = open_conn();
	int64_t before, after;
	long purchases = 0, grants = 0, queued = 0;
	double *all = NULL;
	int nall = 0;
	if (lks_conn_query_int(c, "SELECT n FROM bench_counter WHERE id = 1", NULL, 0, &before))
		die(c, "counter");
	pthread_barrier_init(&ready, NULL, (unsigned)workers + 1);
	pthread_barrier_init(&go, NULL, (unsigned)workers + 1);
	memset(a, 0, sizeof a);
	for (int i = 0; i < workers; i++) {
		a[i].ready = &ready;
		a[i].go = &go;
		pthread_create(&th[i], NULL, hot_thread, &a[i]);
	}
	pthread_barrier_wait(&ready);
	double t0 = now_s();
	for (int i = 0; i < workers; i++)
		a[i].deadline_s = t0 + run_seconds;
	pthread_barrier_wait(&go);
	for (int i = 0; i < workers; i++) {
		pthread_join(th[i], NULL);
		purchases += a[i].purchases;
		grants += a[i].grants;
		queued += a[i].queued;
		res.timeouts += a[i].errors;
		all = realloc(all, sizeof(double) * (size_t)(nall + a[i].nwaits + 1));
		memcpy(all + nall, a[i].waits, sizeof(double) * (size_t)a[i].nwaits);
		nall += a[i].nwaits;
		free(a[i].waits);
	}
	double elapsed = now_s() - t0;
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	if (lks_conn_query_int(c, "SELECT n FROM bench_counter WHERE id = 1", NULL, 0, &after))
		die(c, "counter");
	lks_conn_close(c);
	res.goodput = purchases / elapsed;
	res.grants_per = purchases ? (double)grants / purchases : 0;
	res.queued_per = purchases ? (double)queued / purchases : 0;
	res.p50 = bench_pct(all, nall, 0.5);
	res.p99 = bench_pct(all, nall, 0.99);
	res.max = nall ? all[nall - 1] : 0;
	res.exact = after - before == purchases;
	free(all);
	return res;
}

static void hot_lease(void)
{
	int counts[] = {8, 64};
	hot_result r[2];
	printf("\n2. one hot lease: acquire (wait 2 s), fenced write (counter + 1), release; %.0f s per run\n",
	       run_seconds);
	printf("   %-8s %12s %16s %16s %9s %9s %9s %9s %8s\n", "workers", "purchases/s", "grant stmts/buy",
	       "queue waits/buy", "wait p50", "p99 ms", "max ms", "timeouts", "counter");
	for (int i = 0; i < 2; i++) {
		r[i] = run_hot(counts[i]);
		printf("   %-8d %12.0f %16.2f %16.2f %9.1f %9.1f %9.1f %9ld %8s\n", counts[i], r[i].goodput,
		       r[i].grants_per, r[i].queued_per, r[i].p50, r[i].p99, r[i].max, r[i].timeouts,
		       r[i].exact ? "exact" : "WRONG");
	}
	printf("   goodput 64/8 = %.2fx (target >= 0.8); grant statements per purchase 64/8 = %.2fx (target <= 3)\n",
	       r[1].goodput / r[0].goodput, r[1].grants_per / r[0].grants_per);
	if (!r[0].exact || !r[1].exact) {
		fprintf(stderr, "lease_bench: the counter under the lease is not exact\n");
		exit(1);
	}
}

/* ---- 3. hand-off ------------------------------------------------------ */

#define HANDOFF_LEASES 4
#define HANDOFF_THREADS 3

typedef struct handoff_lease {
	pthread_mutex_t mu;
	double released_at; /* when the last holder started its release */
	double samples[4096];
	int n;
} handoff_lease;

typedef struct handoff_arg {
	handoff_lease *hl;
	int lease_no;
	int room;        /* waiting_room */
	int wake;        /* wake_on_release: every grant keeps the baton */
	int drop_baton;  /* the holder gives its baton back: the head polls */
	double deadline_s;
	unsigned int seed;
} handoff_arg;

static void *handoff_thread(void *arg)
{
	handoff_arg *a = arg;
	lks_conn *c = open_conn();
	char name[32];
	snprintf(name, sizeof name, "handoff:%d", a->lease_no);
	while (now_s() < a->deadline_s) {
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		lks_lease *l = NULL;
		double asked = now_s();
		int rc;
		o.waiting_room = a->room;
		o.wake_on_release = a->wake;
		rc = lks_lease_acquire(&l, c, name, 10000, 5000, &o);
		double got = now_s();
		if (rc == LKS_TIMEOUT)
			continue;
		if (rc)
			die(c, "hand-off acquire");
		if (a->drop_baton &&
		    lks_conn_exec(c, pg ? "SELECT pg_advisory_unlock_all()" : "SELECT RELEASE_ALL_LOCKS()"))
			die(c, "drop baton");
		pthread_mutex_lock(&a->hl->mu);
		/* a hand-off: we were waiting when the last holder released */
		if (a->hl->released_at > asked && a->hl->n < 4096)
			a->hl->samples[a->hl->n++] = (got - a->hl->released_at) * 1000;
		pthread_mutex_unlock(&a->hl->mu);
		usleep(400000 + (useconds_t)(rand_r(&a->seed) % 200000));
		pthread_mutex_lock(&a->hl->mu);
		a->hl->released_at = now_s();
		pthread_mutex_unlock(&a->hl->mu);
		lks_lease_release(c, l);
		lks_lease_free(l);
		usleep(2000 + (useconds_t)(rand_r(&a->seed) % 5000)); /* then line up again */
	}
	lks_conn_close(c);
	return NULL;
}

static void run_handoff(const char *label, int room, int wake, int drop_baton)
{
	static handoff_lease hl[HANDOFF_LEASES];
	pthread_t th[HANDOFF_LEASES * HANDOFF_THREADS];
	handoff_arg a[HANDOFF_LEASES * HANDOFF_THREADS];
	double all[HANDOFF_LEASES * 4096];
	int n = 0;
	double seconds = run_seconds * 3 < 6 ? 6 : run_seconds * 3;
	double deadline = now_s() + seconds;
	for (int i = 0; i < HANDOFF_LEASES; i++) {
		pthread_mutex_init(&hl[i].mu, NULL);
		hl[i].released_at = 0;
		hl[i].n = 0;
	}
	for (int i = 0; i < HANDOFF_LEASES * HANDOFF_THREADS; i++) {
		a[i] = (handoff_arg){&hl[i / HANDOFF_THREADS], i / HANDOFF_THREADS, room, wake,
		                     drop_baton, deadline, (unsigned)i * 7919u + 1};
		pthread_create(&th[i], NULL, handoff_thread, &a[i]);
	}
	for (int i = 0; i < HANDOFF_LEASES * HANDOFF_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < HANDOFF_LEASES; i++) {
		memcpy(all + n, hl[i].samples, sizeof(double) * (size_t)hl[i].n);
		n += hl[i].n;
		pthread_mutex_destroy(&hl[i].mu);
	}
	double p50 = bench_pct(all, n, 0.5), p95 = bench_pct(all, n, 0.95), p99 = bench_pct(all, n, 0.99);
	printf("   %-34s %8d %9.2f %9.2f %9.2f %9.2f\n", label, n, p50, p95, p99, n ? all[n - 1] : 0);
}

/* The same chain on raw libpq, no lockstock: the holder's release UPDATE
 * (asynchronous commit) and advisory unlock pipelined; the waiter blocked in
 * pg_advisory_lock wakes and sends the grant UPDATE (durable commit). What
 * wake_on_release costs beyond this is lockstock's own. */
typedef struct raw_pair {
	int no;
	pthread_barrier_t bar;
	double released_at, granted_at;
	double samples[256];
	int n;
} raw_pair;

static void *raw_waiter(void *arg)
{
	raw_pair *rp = arg;
	PGconn *b = lks_conn_pg(open_conn());
	char grant[256], lock[64], unlock[64];
	snprintf(grant, sizeof grant,
	         "UPDATE raw_handoff SET holder = 'w', fence = fence + 1,"
	         " expires_at = clock_timestamp() + interval '10 s'"
	         " WHERE name = %d AND expires_at <= clock_timestamp()", rp->no);
	snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%d)", 4243000 + rp->no);
	snprintf(unlock, sizeof unlock, "SELECT pg_advisory_unlock(%d)", 4243000 + rp->no);
	PQclear(PQprepare(b, "g", grant, 0, NULL));
	for (;;) {
		pthread_barrier_wait(&rp->bar); /* the holder has the lock, or we stop */
		if (rp->released_at < 0)
			break;
		PQclear(PQexec(b, lock));
		PGresult *r = PQexecPrepared(b, "g", 0, NULL, NULL, NULL, 0);
		rp->granted_at = !strcmp(PQcmdTuples(r), "1") ? now_s() : -1;
		PQclear(r);
		PQclear(PQexec(b, unlock));
		pthread_barrier_wait(&rp->bar);
	}
	PQclear(PQexec(b, "DEALLOCATE ALL"));
	return NULL;
}

static void *raw_holder(void *arg)
{
	raw_pair *rp = arg;
	lks_conn *c = open_conn();
	PGconn *a = lks_conn_pg(c);
	char take[160], lock[64], release[200], unlock[64];
	pthread_t w;
	unsigned int seed = (unsigned)rp->no * 7919u + 3;
	double deadline = now_s() + (run_seconds * 3 < 6 ? 6 : run_seconds * 3);
	snprintf(take, sizeof take,
	         "UPDATE raw_handoff SET holder = 'h', expires_at = clock_timestamp() + interval '1 h'"
	         " WHERE name = %d", rp->no);
	snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%d)", 4243000 + rp->no);
	snprintf(release, sizeof release,
	         "UPDATE raw_handoff SET holder = NULL, expires_at = clock_timestamp() WHERE name = %d"
	         " AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL", rp->no);
	snprintf(unlock, sizeof unlock, "SELECT pg_advisory_unlock(%d)", 4243000 + rp->no);
	PQclear(PQprepare(a, "r", release, 0, NULL));
	PQclear(PQprepare(a, "u", unlock, 0, NULL));
	pthread_create(&w, NULL, raw_waiter, rp);
	while (now_s() < deadline && rp->n < 256) {
		PQclear(PQexec(a, take));
		PQclear(PQexec(a, lock));
		pthread_barrier_wait(&rp->bar);
		usleep(400000 + (useconds_t)(rand_r(&seed) % 200000)); /* the waiter is blocked */
		rp->released_at = now_s();
		if (!PQenterPipelineMode(a) || !PQsendQueryPrepared(a, "r", 0, NULL, NULL, NULL, 0) ||
		    !PQpipelineSync(a) || !PQsendQueryPrepared(a, "u", 0, NULL, NULL, NULL, 0) ||
		    !PQpipelineSync(a))
			die(c, "raw pipeline");
		for (int syncs = 0; syncs < 2;) {
			PGresult *r = PQgetResult(a);
			if (r && PQresultStatus(r) == PGRES_PIPELINE_SYNC)
				syncs++;
			PQclear(r);
		}
		PQexitPipelineMode(a);
		pthread_barrier_wait(&rp->bar); /* the waiter granted and unlocked */
		if (rp->granted_at > 0)
			rp->samples[rp->n++] = (rp->granted_at - rp->released_at) * 1000;
	}
	rp->released_at = -1;
	pthread_barrier_wait(&rp->bar);
	pthread_join(w, NULL);
	PQclear(PQexec(a, "DEALLOCATE ALL"));
	lks_conn_close(c);
	return NULL;
}

static void run_raw_handoff(void)
{
	static raw_pair rp[HANDOFF_LEASES];
	pthread_t th[HANDOFF_LEASES];
	double all[HANDOFF_LEASES * 256];
	int n = 0;
	lks_conn *c = open_conn();
	if (lks_conn_exec(c, "DROP TABLE IF EXISTS raw_handoff") ||
	    lks_conn_exec(c, "CREATE TABLE raw_handoff (name int PRIMARY KEY, holder text,"
	                     " fence bigint NOT NULL, expires_at timestamptz NOT NULL)") ||
	    lks_conn_exec(c, "INSERT INTO raw_handoff SELECT g, NULL, 0, now() FROM generate_series(0, 7) g"))
		die(c, "raw hand-off setup");
	for (int i = 0; i < HANDOFF_LEASES; i++) {
		rp[i] = (raw_pair){.no = i};
		pthread_barrier_init(&rp[i].bar, NULL, 2);
		pthread_create(&th[i], NULL, raw_holder, &rp[i]);
	}
	for (int i = 0; i < HANDOFF_LEASES; i++) {
		pthread_join(th[i], NULL);
		memcpy(all + n, rp[i].samples, sizeof(double) * (size_t)rp[i].n);
		n += rp[i].n;
		pthread_barrier_destroy(&rp[i].bar);
	}
	lks_conn_exec(c, "DROP TABLE raw_handoff");
	lks_conn_close(c);
	double p50 = bench_pct(all, n, 0.5), p95 = bench_pct(all, n, 0.95), p99 = bench_pct(all, n, 0.99);
	printf("   %-34s %8d %9.2f %9.2f %9.2f %9.2f\n", "(raw libpq: unlock -> grant chain)", n, p50,
	       p95, p99, n ? all[n - 1] : 0);
}

static void handoff(void)
{
	printf("\n3. hand-off after 400-600 ms holds: release call -> next holder's grant, ms\n");
	printf("   %-34s %8s %9s %9s %9s %9s\n", "how the waiter learns", "samples", "p50", "p95",
	       "p99", "max");
	{
		/* the floor: a hand-off ends with the waiter's grant, which commits
		 * durably; one grant of a free lease on its own costs this */
		lks_conn *c = open_conn();
		double t[50];
		for (int i = 0; i < 50; i++) {
			lks_lease *l;
			double t0 = now_s();
			if (lks_lease_acquire(&l, c, "floor", 10000, 0, NULL))
				die(c, "floor");
			t[i] = (now_s() - t0) * 1000;
			lks_lease_release(c, l);
			lks_lease_free(l);
		}
		double p50 = bench_pct(t, 50, 0.5);
		printf("   %-34s %8d %9.2f\n", "(floor: one durable grant alone)", 50, p50);
		lks_conn_close(c);
	}
	if (pg)
		run_raw_handoff();
	run_handoff("wake_on_release: baton hand-off", 1, 1, 0);
	run_handoff("waiting room, default", 1, 0, 0);
	run_handoff("waiting room, the head polls", 1, 0, 1);
	run_handoff("no waiting room: backoff polling", 0, 0, 0);
	printf("   wake_on_release: every grant keeps the baton, so each release hands it to the\n"
	       "   next in line. Default: an uncontended grant takes no baton; behind such a holder\n"
	       "   the head of the line polls. \"The head polls\": each holder drops its baton, so\n"
	       "   the head polls alone every ~2 ms. Raw libpq (PostgreSQL): the wake_on_release chain\n"
	       "   without lockstock (release UPDATE + advisory unlock pipelined; the waiter in\n"
	       "   pg_advisory_lock wakes and sends its grant UPDATE): the floor of that design here.\n");
}

/* ---- 4. fenced-write guards (MySQL) ------------------------------------ */

typedef struct guard_arg {
	const char *url;
	const lks_lease *lease;
	int id;
	double deadline_s;
	long writes;
} guard_arg;

static int fenced_row_increment(lks_conn *c, int64_t fence, void *arg)
{
	lks_value id = LKS_INT(*(int *)arg);
	int64_t n;
	(void)fence;
	return lks_conn_query_int(c, "UPDATE bench_counter SET n = n + 1 WHERE id = ?", &id, 1, &n);
}

static void *guard_thread(void *arg)
{
	guard_arg *a = arg;
	lks_conn *c = NULL;
	if (lks_conn_open(&c, a->url))
		die(c, "open");
	while (now_s() < a->deadline_s) {
		if (lks_lease_fenced_write(c, a->lease, fenced_row_increment, &a->id))
			die(c, "guarded write");
		a->writes++;
	}
	lks_conn_close(c);
	return NULL;
}

static double run_guard(const char *guard, const lks_lease *l, int threads)
{
	char u[1200];
	pthread_t th[MAX_THREADS];
	guard_arg a[MAX_THREADS];
	long writes = 0;
	double t0 = now_s();
	snprintf(u, sizeof u, "%s%sfence-guard=%s", url, strchr(url, '?') ? "&" : "?", guard);
	for (int i = 0; i < threads; i++) {
		a[i] = (guard_arg){.url = u, .lease = l, .id = i + 1, .deadline_s = t0 + run_seconds};
		pthread_create(&th[i], NULL, guard_thread, &a[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		writes += a[i].writes;
	}
	return writes / (now_s() - t0);
}

static void fence_guards(lks_conn *c)
{
	int counts[] = {1, 8};
	lks_lease *l = NULL;
	if (lks_lease_acquire(&l, c, "bench:guard", 3600000, 0, NULL))
		die(c, "guard lease");
	printf("\n4. fenced writes through one held lease (each connection its own row), writes/s,"
	       " median of %d rotated runs\n   %-12s %14s %14s %10s\n",
	       ROUNDS, "connections", "share lock", "write guard", "ratio");
	for (int ci = 0; ci < 2; ci++) {
		double r[2][ROUNDS], m[2];
		for (int round = 0; round < ROUNDS; round++)
			for (int k = 0; k < 2; k++) {
				int g = (k + round) % 2;
				r[g][round] = run_guard(g ? "write" : "lock", l, counts[ci]);
			}
		for (int g = 0; g < 2; g++)
			m[g] = bench_pct(r[g], ROUNDS, 0.5);
		printf("   %-12d %14.0f %14.0f %9.2fx\n", counts[ci], m[0], m[1], m[1] / m[0]);
	}
	printf("   The write guard (writes = writes + 1) is what a Galera node uses (fence-guard=auto);\n"
	       "   it serializes one holder's concurrent fenced writes on the lease row.\n");
	lks_lease_release(c, l);
	lks_lease_free(l);
}

/* ---- 5. cancel latency ---------------------------------------------- */

#define CANCEL_ROUNDS 40

typedef struct cancel_waiter {
	pthread_barrier_t bar;
	lks_cancel *token;
	int mode; /* 0 waiting room, 1 polling, 2 raw client */
	bool stop;
	double returned_at;
	int rc;
	long long raw_id; /* mode 2, MySQL: the blocked session's id */
} cancel_waiter;

static void *cancel_waiter_thread(void *arg)
{
	cancel_waiter *w = arg;
	lks_conn *c = open_conn();
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	o.cancel = w->token;
	o.waiting_room = w->mode == 0;
	o.max_delay_us = 10000000; /* polling: long sleeps between polls */
	if (!pg)
		w->raw_id = (long long)mysql_thread_id(lks_conn_mysql(c));
	for (;;) {
		lks_lease *l = NULL;
		pthread_barrier_wait(&w->bar);
		if (w->stop)
			break;
		if (w->mode < 2) {
			w->rc = lks_lease_acquire(&l, c, "bench:cancel", 60000, 60000, &o);
		} else if (pg) { /* blocked in the server until PQcancel */
			PGresult *r = PQexec(lks_conn_pg(c), "SELECT pg_advisory_lock(4244000)");
			w->rc = PQresultStatus(r) == PGRES_TUPLES_OK ? LKS_OK : LKS_CANCELED;
			PQclear(r);
		} else { /* blocked in the server until KILL QUERY (an error, or NULL) */
			MYSQL *m = lks_conn_mysql(c);
			MYSQL_RES *r = NULL;
			MYSQL_ROW row;
			w->rc = LKS_CANCELED;
			if (!mysql_query(m, "SELECT GET_LOCK('bench:cancel', 60)") &&
			    (r = mysql_store_result(m)) && (row = mysql_fetch_row(r)) && row[0] &&
			    !strcmp(row[0], "1"))
				w->rc = LKS_OK;
			if (r)
				mysql_free_result(r);
		}
		w->returned_at = now_s();
		lks_lease_free(l);
		if (w->rc == LKS_CANCELED && !pg && w->mode == 0)
			lks_conn_reset(c); /* MariaDB: the cancel shut the session down */
		if (!pg)
			w->raw_id = (long long)mysql_thread_id(lks_conn_mysql(c));
		pthread_barrier_wait(&w->bar);
	}
	lks_conn_close(c);
	return NULL;
}

/* trip -> the blocked call's return, ms, CANCEL_ROUNDS times */
static void run_cancel(const char *label, int mode, lks_conn *raw_holder)
{
	cancel_waiter w = {.mode = mode};
	pthread_t th;
	double ms[CANCEL_ROUNDS];
	int n = 0, wrong = 0;
	unsigned int seed = 17u + (unsigned)mode;
	lks_cancel_new(&w.token);
	pthread_barrier_init(&w.bar, NULL, 2);
	pthread_create(&th, NULL, cancel_waiter_thread, &w);
	for (int i = 0; i < CANCEL_ROUNDS; i++) {
		lks_cancel_reset(w.token);
		pthread_barrier_wait(&w.bar);
		usleep(50000 + (useconds_t)(rand_r(&seed) % 50000)); /* blocked, or asleep between polls */
		double tripped = now_s();
		if (mode < 2) {
			lks_cancel_trip(w.token);
		} else {
			if (pg) {
				/* the waiter's backend: the only one waiting on that lock */
				PGresult *r = PQexec(lks_conn_pg(raw_holder),
				                     "SELECT pg_cancel_backend(pid) FROM pg_locks WHERE"
				                     " locktype = 'advisory' AND objid = 4244000 AND NOT granted");
				PQclear(r);
			} else {
				char kill[64];
				snprintf(kill, sizeof kill, "KILL QUERY %lld", w.raw_id);
				mysql_query(lks_conn_mysql(raw_holder), kill);
			}
		}
		pthread_barrier_wait(&w.bar);
		if (w.rc != LKS_CANCELED)
			wrong++;
		else
			ms[n++] = (w.returned_at - tripped) * 1000;
	}
	w.stop = true;
	pthread_barrier_wait(&w.bar);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&w.bar);
	lks_cancel_free(w.token);
	double p50 = bench_pct(ms, n, 0.5), p99 = bench_pct(ms, n, 0.99); /* sorted now */
	printf("   %-40s %4d %9.3f %9.3f %9.3f%s\n", label, n, p50, p99, n ? ms[n - 1] : 0, wrong ? "  (some calls were not canceled)" : "");
}

static void cancel_latency(void)
{
	lks_conn *holder = open_conn(), *raw = open_conn();
	lks_lease_acquire_options keep = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	keep.wake_on_release = 1; /* waiters block in the server's line */
	if (lks_lease_acquire(&l, holder, "bench:cancel", 3600000, 0, &keep))
		die(holder, "cancel lease");
	if (lks_conn_exec(raw, pg ? "SELECT pg_advisory_lock(4244000)"
	                          : "SELECT GET_LOCK('bench:cancel', 0)"))
		die(raw, "raw lock");
	printf("\n5. cancel: lks_cancel_trip -> the waiting acquire returns LKS_CANCELED, ms, %d trips"
	       " (target < 10)\n   %-40s %4s %9s %9s %9s\n",
	       CANCEL_ROUNDS, "", "n", "p50", "p99", "max");
	run_cancel("waiting room (blocked in server)", 0, raw);
	run_cancel("polling (asleep between polls)", 1, raw);
	run_cancel(pg ? "(raw: pg_cancel_backend of a lock wait)" : "(raw: KILL QUERY of a GET_LOCK)", 2,
	           raw);
	lks_lease_release(holder, l);
	lks_lease_free(l);
	lks_conn_close(raw);
	lks_conn_close(holder);
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: lease_bench postgresql|mysql [seconds per run]\n");
		return 2;
	}
	pg = !strcmp(argv[1], "postgresql");
	if (argc > 2 && (run_seconds = atof(argv[2])) <= 0) {
		fprintf(stderr, "lease_bench: seconds must be > 0\n");
		return 2;
	}
	url = getenv(pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
	if (!url) {
		fprintf(stderr, "lease_bench: set %s\n", pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
		return 2;
	}
	lks_library_init();
	lks_conn *c = open_conn();
	if (lks_conn_exec(c, "DROP TABLE IF EXISTS " BENCH_LEASE_TABLE) || lks_lease_install(c) ||
	    lks_conn_exec(c, "DROP TABLE IF EXISTS shedlock") ||
	    lks_conn_exec(c, pg ? "CREATE TABLE shedlock (name varchar(64) PRIMARY KEY, lock_until timestamp NOT NULL,"
	                          " locked_at timestamp NOT NULL, locked_by varchar(255) NOT NULL)"
	                        : "CREATE TABLE shedlock (name varchar(64) PRIMARY KEY, lock_until timestamp(3) NOT NULL,"
	                          " locked_at timestamp(3) NOT NULL, locked_by varchar(255) NOT NULL)") ||
	    lks_conn_exec(c, "DROP TABLE IF EXISTS bench_counter") ||
	    lks_conn_exec(c, "CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL)") ||
	    lks_conn_exec(c, "INSERT INTO bench_counter VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0),"
	                     " (6, 0), (7, 0), (8, 0)"))
		die(c, "setup");
	for (int i = 0; i < MAX_THREADS; i++) {
		char sql[256];
		snprintf(sql, sizeof sql,
		         pg ? "INSERT INTO shedlock VALUES ('bench:%d', now(), now(), '')"
		            : "INSERT INTO shedlock VALUES ('bench:%d', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), '')",
		         i);
		if (lks_conn_exec(c, sql))
			die(c, "setup");
	}
	printf("lease_bench %s: %s, 2 cores; %.1f s per run\n", argv[1],
	       pg ? "PostgreSQL" : "MySQL/MariaDB", run_seconds);
	if (!getenv("LB_SKIP1")) distinct_names();
	if (!getenv("LB_SKIP2")) hot_lease();
	if (!getenv("LB_SKIP3")) handoff();
	if (!pg && !getenv("LB_SKIP4")) fence_guards(c);
	if (!getenv("LB_SKIP5")) cancel_latency();
	lks_conn_exec(c, "DROP TABLE shedlock");
	lks_conn_exec(c, "DROP TABLE " BENCH_LEASE_TABLE);
	lks_conn_exec(c, "DROP TABLE bench_counter");
	lks_conn_close(c);
	return 0;
}
