/* Semaphores and sets of names (issue #19), every figure measured in one
 * run against its baseline:
 *   permits: workers take one of 4 permits, do one write, give it back:
 *     sem4   lks_semaphore_acquire (4 permits) + fenced write + release;
 *     sem4-nf  the same with the write outside a fenced write, as slots
 *            does it: the grant machinery alone against the baseline;
 *     lease  the same with a plain lease (1 holder): what 4 permits buy;
 *     slots  a hand-written slot table (the statement a service writes:
 *            UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED),
 *            polled every millisecond, released by UPDATE; no fence, no
 *            line, no expiry check of a stale holder's write);
 *     at 16 and 64 workers; goodput (cycles/s), p99 of a cycle, grant
 *     statements per acquire.
 *   sets: workers take 4 distinct names out of 8, in a random order, do
 *     one write, release:
 *     all     lks_lease_acquire_all;
 *     sorted  4 lks_lease_acquire calls in sorted order (each waiting);
 *     at 1 and 16 workers; throughput, p99 of the acquire.
 *   renew: 1,000 leases of a 10 s TTL held 60 s (SB_HOLD_S) by one
 *     lks_renewer: threads and connections used, statements per renewal
 *     round, client CPU, false losses; against 50 leases on one renewer and
 *     on per-lease auto-renew (a thread and a connection each: 1,000 would
 *     pass the server's connection limit).
 * Usage: sets_bench postgresql|mysql [seconds per run, default 3]
 * (URL from LKS_PG_URL / LKS_MYSQL_URL; scripts/bench.sh starts servers at
 * default durability). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lockstock.h"
#include "stats.h"

#define MAX_WORKERS 64
#define LAT_CAP 400000

typedef enum { V_SEM4, V_SEM4_PLAIN, V_LEASE, V_SLOTS, V_ALL, V_SORTED, V_COUNT } variant;
static const char *const variant_name[V_COUNT] = {"sem4", "sem4-nf", "lease", "slots", "all",
                                                  "sorted"};

static const char *url;
static bool pg;
static double run_seconds = 3;
static char prefix[32];
static int room = 1; /* the acquire option waiting_room: measured both ways */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "sets_bench: %s: %s\n", what, c ? lks_conn_errmsg(c) : "");
	exit(1);
}

static int64_t q(lks_conn *c, const char *pg_sql, const char *my_sql, const lks_value *p, size_t n,
                 int *rc)
{
	int64_t v = 0;
	*rc = lks_conn_query_int(c, pg ? pg_sql : my_sql, p, n, &v);
	return v;
}

static void exec(lks_conn *c, const char *sql)
{
	int rc;
	q(c, sql, sql, NULL, 0, &rc);
	if (rc != LKS_OK && rc != LKS_NOT_FOUND)
		die(c, sql);
}

/* the work done while holding: one row into a log table */
static int log_write(lks_conn *c, int64_t fence, void *arg)
{
	lks_value p = LKS_INT(fence);
	int rc;
	(void)arg;
	q(c, "INSERT INTO bench_log (fence) VALUES ($1)", "INSERT INTO bench_log (fence) VALUES (?)", &p, 1,
	  &rc);
	return rc == LKS_NOT_FOUND ? LKS_OK : rc;
}

static int log_write_all(lks_conn *c, lks_lease *const *ls, size_t n, void *arg)
{
	return log_write(c, lks_lease_fence(ls[n - 1]), arg);
}

/* The hand-written slot table: grab any free slot, or none (0). */
static int64_t slot_grab(lks_conn *c, const char *holder)
{
	lks_value p = LKS_TEXT(holder);
	int rc;
	int64_t id;
	if (pg) {
		id = q(c,
		       "UPDATE bench_slots SET holder = $1, expires_at = clock_timestamp() + interval '30 s'"
		       " WHERE id = (SELECT id FROM bench_slots WHERE expires_at < clock_timestamp()"
		       " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
		       NULL, &p, 1, &rc);
		if (rc == LKS_NOT_FOUND)
			return 0;
		if (rc)
			die(c, "slot grab");
		return id;
	}
	exec(c, "BEGIN");
	id = q(c, NULL, "SELECT id FROM bench_slots WHERE expires_at < UTC_TIMESTAMP(6) LIMIT 1"
	                " FOR UPDATE SKIP LOCKED", NULL, 0, &rc);
	if (rc == LKS_OK) {
		lks_value u[2] = {LKS_TEXT(holder), LKS_INT(id)};
		q(c, NULL, "UPDATE bench_slots SET holder = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL 30 SECOND"
		           " WHERE id = ?", u, 2, &rc);
	}
	exec(c, rc == LKS_OK ? "COMMIT" : "ROLLBACK");
	if (rc == LKS_NOT_FOUND)
		return 0;
	if (rc)
		die(c, "slot grab");
	return id;
}

static void slot_free(lks_conn *c, int64_t id)
{
	lks_value p = LKS_INT(id);
	int rc;
	q(c, "UPDATE bench_slots SET holder = NULL, expires_at = clock_timestamp() WHERE id = $1",
	  "UPDATE bench_slots SET holder = NULL, expires_at = UTC_TIMESTAMP(6) WHERE id = ?", &p, 1, &rc);
	if (rc)
		die(c, "slot free");
}

typedef struct worker {
	variant v;
	int id;
	long ops, statements;
	double *lat; /* per cycle (permits) or per acquire (sets) */
	int nlat;
	pthread_barrier_t *start;
} worker;

static void pick4(unsigned *seed, const char **names, char store[8][48])
{
	int idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	for (int k = 7; k > 0; k--) {
		int j = (int)(rand_r(seed) % (unsigned)(k + 1)), t = idx[k];
		idx[k] = idx[j];
		idx[j] = t;
	}
	for (int k = 0; k < 4; k++)
		names[k] = store[idx[k]];
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void *work(void *arg)
{
	worker *w = arg;
	lks_conn *c = NULL;
	lks_lease_acquire_stats st;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	char store[8][48], holder[32];
	unsigned seed = (unsigned)w->id * 2654435761u + 1;
	double end;
	o.stats = &st;
	o.waiting_room = room;
	for (int k = 0; k < 8; k++)
		snprintf(store[k], sizeof store[k], "%s-item-%d", prefix, k);
	snprintf(holder, sizeof holder, "w%d", w->id);
	if (lks_conn_open(&c, url))
		die(c, "open");
	pthread_barrier_wait(w->start);
	end = now_s() + run_seconds;
	while (now_s() < end) {
		double t0 = now_s(), t_acq = 0;
		lks_lease *l = NULL, *set[4] = {NULL, NULL, NULL, NULL};
		const char *names[4];
		int rc = LKS_OK;
		switch (w->v) {
		case V_SEM4:
		case V_SEM4_PLAIN:
		case V_LEASE:
			rc = w->v != V_LEASE ? lks_semaphore_acquire(&l, c, prefix, 4, 30000, 60000, &o)
			                     : lks_lease_acquire(&l, c, prefix, 30000, 60000, &o);
			if (rc == LKS_OK) {
				w->statements += st.attempts;
				rc = w->v == V_SEM4_PLAIN ? log_write(c, lks_lease_fence(l), NULL)
				                          : lks_lease_fenced_write(c, l, log_write, NULL);
				if (lks_lease_release(c, l) && !rc)
					rc = 1;
				lks_lease_free(l);
			}
			break;
		case V_SLOTS: {
			int64_t id;
			while (!(id = slot_grab(c, holder))) {
				w->statements++;
				struct timespec ms = {0, 1000000};
				nanosleep(&ms, NULL);
			}
			w->statements++;
			rc = log_write(c, id, NULL);
			slot_free(c, id);
			break;
		}
		case V_ALL:
			pick4(&seed, names, store);
			rc = lks_lease_acquire_all(set, c, names, 4, 30000, 60000, &o);
			t_acq = now_s() - t0;
			if (rc == LKS_OK) {
				w->statements += st.attempts;
				rc = lks_lease_fenced_write_all(c, set, 4, log_write_all, NULL);
				if (lks_lease_release_all(c, set, 4) && !rc)
					rc = 1;
			}
			break;
		case V_SORTED:
			pick4(&seed, names, store);
			qsort(names, 4, sizeof *names, cmp_str);
			for (int k = 0; k < 4 && rc == LKS_OK; k++)
				if ((rc = lks_lease_acquire(&set[k], c, names[k], 30000, 60000, &o)) == LKS_OK)
					w->statements += st.attempts;
			t_acq = now_s() - t0;
			if (rc == LKS_OK) {
				rc = lks_lease_fenced_write_all(c, set, 4, log_write_all, NULL);
				if (lks_lease_release_all(c, set, 4) && !rc)
					rc = 1;
			}
			break;
		default: break;
		}
		for (int k = 0; k < 4; k++)
			lks_lease_free(set[k]);
		if (rc)
			die(c, variant_name[w->v]);
		w->ops++;
		if (w->nlat < LAT_CAP / MAX_WORKERS)
			w->lat[w->nlat++] = w->v >= V_ALL ? t_acq : now_s() - t0;
	}
	lks_conn_close(c);
	return NULL;
}

typedef struct result {
	double ops_s, p99_ms, stmts;
} result;

static result measure(variant v, int n)
{
	pthread_t th[MAX_WORKERS];
	worker w[MAX_WORKERS];
	pthread_barrier_t start;
	double *all = malloc(sizeof(double) * LAT_CAP);
	long ops = 0, statements = 0;
	int nall = 0;
	result r;
	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		w[i] = (worker){.v = v, .id = i, .start = &start};
		w[i].lat = malloc(sizeof(double) * (LAT_CAP / MAX_WORKERS));
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		ops += w[i].ops;
		statements += w[i].statements;
		memcpy(all + nall, w[i].lat, sizeof(double) * (size_t)w[i].nlat);
		nall += w[i].nlat;
		free(w[i].lat);
	}
	pthread_barrier_destroy(&start);
	r.ops_s = ops / run_seconds;
	r.p99_ms = bench_pct(all, nall, 0.99) * 1000;
	r.stmts = ops ? (double)statements / ops : 0;
	free(all);
	return r;
}

enum { RENEW_N = 1000, AUTORENEW_N = 50 };
static atomic_int renewed, lost;
static double statements; /* a renewer's RENEWED event carries its statement's width */
static pthread_mutex_t stat_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_renewal(const lks_event *ev, void *arg)
{
	(void)arg;
	if (ev->kind == LKS_EVENT_LOST) {
		atomic_fetch_add(&lost, 1);
	} else if (ev->kind == LKS_EVENT_RENEWED) {
		atomic_fetch_add(&renewed, 1);
		pthread_mutex_lock(&stat_mu);
		statements += ev->polls > 0 ? 1.0 / ev->polls : 1.0;
		pthread_mutex_unlock(&stat_mu);
	}
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int threads_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	int n = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "Threads:", 8))
			n = atoi(line + 8);
	if (f)
		fclose(f);
	return n;
}

/* Hold n leases of a 10 s TTL for hold_s, renewed by one renewer or by
 * auto-renew each; what it cost. */
static void renew_run(lks_conn *c, int n, bool one_renewer, double hold_s)
{
	static lks_lease *l[RENEW_N];
	lks_renewer *r = NULL;
	lks_renewer_options o = LKS_RENEWER_OPTIONS_INIT;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	char name[64];
	int threads0 = threads_now(), threads = 0;
	double cpu0, cpu;
	atomic_store(&renewed, 0);
	atomic_store(&lost, 0);
	statements = 0;
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "%s-renew-%d-%d", prefix, one_renewer, i);
		if (lks_lease_acquire(&l[i], c, name, 10000, 0, NULL))
			die(c, "acquire");
	}
	o.on_event = count_renewal;
	ao.on_event = count_renewal;
	if (one_renewer && lks_renewer_start(&r, c, NULL, &o))
		die(c, "renewer");
	cpu0 = cpu_s();
	for (int i = 0; i < n; i++)
		if (one_renewer ? lks_renewer_add(r, l[i]) != LKS_OK
		                : lks_lease_autorenew_start(l[i], c, NULL, &ao) != LKS_OK)
			die(c, "renew start");
	threads = threads_now() - threads0;
	struct timespec hold = {(time_t)hold_s, (long)((hold_s - (time_t)hold_s) * 1e9)};
	nanosleep(&hold, NULL);
	cpu = cpu_s() - cpu0;
	if (r)
		lks_renewer_stop(r);
	for (int i = 0; i < n; i++) {
		if (!lks_lease_is_lost(l[i]) && lks_lease_release(c, l[i]))
			atomic_fetch_add(&lost, 1);
		lks_lease_free(l[i]);
	}
	/* a round: every lease renewed once */
	double rounds = atomic_load(&renewed) / (double)n;
	printf("%-12s %6d %8d %8d %10.1f %12.1f %10.2f %8d\n", one_renewer ? "renewer" : "auto-renew", n,
	       threads, one_renewer ? 1 : n, rounds, rounds > 0 ? statements / rounds : 0, cpu,
	       atomic_load(&lost));
}

static void renew_bench(lks_conn *c, double hold_s)
{
	printf("# renew: leases of a 10 s TTL held %.0f s; auto-renew costs a thread and a connection\n"
	       "# per lease, so it runs on %d (the server's connection limit); false losses: leases\n"
	       "# reported lost or not held at the end\n", hold_s, AUTORENEW_N);
	printf("%-12s %6s %8s %8s %10s %12s %10s %8s\n", "renewal", "leases", "threads", "conns",
	       "rounds", "stmts/round", "cpu s", "lost");
	renew_run(c, RENEW_N, true, hold_s);
	renew_run(c, AUTORENEW_N, true, hold_s);
	renew_run(c, AUTORENEW_N, false, hold_s);
}

int main(int argc, char **argv)
{
	lks_conn *c = NULL;
	if (argc < 2 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: sets_bench postgresql|mysql [seconds per run]\n");
		return 2;
	}
	pg = !strcmp(argv[1], "postgresql");
	url = getenv(pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
	if (!url) {
		fprintf(stderr, "sets_bench: set %s\n", pg ? "LKS_PG_URL" : "LKS_MYSQL_URL");
		return 2;
	}
	if (argc > 2)
		run_seconds = atof(argv[2]);
	lks_library_init();
	snprintf(prefix, sizeof prefix, "sb%ld", (long)time(NULL));
	if (lks_conn_open(&c, url) || lks_lease_install(c))
		die(c, "setup");
	exec(c, "DROP TABLE IF EXISTS bench_log");
	exec(c, "DROP TABLE IF EXISTS bench_slots");
	exec(c, pg ? "CREATE TABLE bench_log (id bigserial PRIMARY KEY, fence bigint NOT NULL)"
	           : "CREATE TABLE bench_log (id BIGINT AUTO_INCREMENT PRIMARY KEY, fence BIGINT NOT NULL)"
	             " ENGINE=InnoDB");
	exec(c, pg ? "CREATE TABLE bench_slots (id int PRIMARY KEY, holder text, expires_at timestamptz NOT NULL)"
	           : "CREATE TABLE bench_slots (id INT PRIMARY KEY, holder VARCHAR(64) NULL,"
	             " expires_at DATETIME(6) NOT NULL) ENGINE=InnoDB");
	exec(c, pg ? "INSERT INTO bench_slots SELECT k, NULL, '-infinity' FROM generate_series(1, 4) k"
	           : "INSERT INTO bench_slots VALUES (1, NULL, '1970-01-01'), (2, NULL, '1970-01-01'),"
	             " (3, NULL, '1970-01-01'), (4, NULL, '1970-01-01')");
	printf("# sets_bench %s, %.0f s per run\n", argv[1], run_seconds);
	printf("# permits: 4 permits, one INSERT while held; room: the waiting room on (1) or\n"
	       "# off (0: every waiter polls with backoff)\n");
	printf("%-8s %4s %8s %12s %10s %12s\n", "workers", "room", "variant", "cycles/s", "p99 ms",
	       "stmts/acq");
	for (int wi = 0; wi < 4; wi++) {
		int n = wi % 2 ? 64 : 16;
		result r[V_SLOTS + 1];
		room = wi < 2;
		for (int v = V_SEM4; v <= V_SLOTS; v++) {
			r[v] = measure((variant)v, n);
			printf("%-8d %4d %8s %12.0f %10.2f %12.2f\n", n, room, variant_name[v], r[v].ops_s,
			       r[v].p99_ms, r[v].stmts);
		}
		printf("%-8d %4d ratios: sem4/lease %.2fx goodput; sem4-nf/slots %.2fx goodput, p99 %.2fx\n",
		       n, room, r[V_SEM4].ops_s / r[V_LEASE].ops_s, r[V_SEM4_PLAIN].ops_s / r[V_SLOTS].ops_s,
		       r[V_SEM4_PLAIN].p99_ms / r[V_SLOTS].p99_ms);
	}
	room = 1;
	printf("# sets: 4 names of 8, random order, one INSERT while held\n");
	printf("%-8s %8s %12s %10s %12s\n", "workers", "variant", "sets/s", "p99 ms", "stmts/set");
	for (int wi = 0; wi < 2; wi++) {
		int n = wi ? 16 : 1;
		result a = measure(V_ALL, n), s = measure(V_SORTED, n);
		printf("%-8d %8s %12.0f %10.2f %12.2f\n", n, "all", a.ops_s, a.p99_ms, a.stmts);
		printf("%-8d %8s %12.0f %10.2f %12.2f\n", n, "sorted", s.ops_s, s.p99_ms, s.stmts);
		printf("%-8d ratios: all/sorted %.2fx throughput, p99 acquire all/sorted %.2fx\n", n,
		       a.ops_s / s.ops_s, a.p99_ms / s.p99_ms);
	}
	renew_bench(c, getenv("SB_HOLD_S") ? atof(getenv("SB_HOLD_S")) : 60);
	exec(c, "DROP TABLE bench_log");
	exec(c, "DROP TABLE bench_slots");
	lks_conn_close(c);
	return 0;
}
