/* lockstock check: run a short, bounded contention workload with fenced
 * writes on scratch tables of the deployment the URL names (a primary, a
 * pooler, a cluster node, during a failover drill) and check from the
 * database what the workers were told: never two holders, each worker's
 * fences strictly increasing and no fence granted twice (across all
 * workers, as they were told: a failover that lost grants hands their
 * fences out again, and the log lost their rows with them), the guarded
 * counter equal to the logged writes, no acknowledged write missing (the
 * worker's own row with that fence).
 * Prints a verdict and the figures (text or --json); exits 1 on any
 * violation. Connection losses are retried (a failover drill), counted. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

enum { CHECK_URL = 256, CHECK_WORKERS, CHECK_DURATION, CHECK_TTL, CHECK_JSON, CHECK_HELP };
#define CHECK_WORKERS_MAX 64
#define ACKS_MAX 200000
/* Each run's scratch tables are its own, lks_check_<16 hex digits>_*: two
 * checks at once (or one after a violation, whose tables are kept) never
 * drop or write each other's tables. */
#define PREFIX_MAX 32

typedef struct checker {
	const char *url;
	int64_t ttl_ms, duration_ms, end_ms;
	/* the workload starts once every worker is connected (the clock does
	 * not count slow connects: TLS, SCRAM, a cluster's failover) */
	pthread_barrier_t connected, started;
	atomic_int inside, overlaps;
	char prefix[PREFIX_MAX];            /* lks_check_<hex> */
	char lease[PREFIX_MAX + 8];         /* <prefix>_lease */
	char log_insert[PREFIX_MAX + 80];   /* INSERT INTO <prefix>_log ..., per backend */
	char counter_update[PREFIX_MAX + 48];
} checker;

typedef struct check_worker {
	pthread_t th;
	checker *ck;
	int id;
	int64_t *acks; /* fences of acknowledged writes, in order */
	int nacks;
	int64_t *granted; /* every fence granted, in order */
	int ngranted;
	int64_t grants, unknown, refused, reconnects, busy, regressions, errors;
	int64_t last_fence;
} check_worker;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int logged_write(lks_conn *c, int64_t fence, void *arg)
{
	check_worker *w = arg;
	lks_value p[2] = {LKS_INT(w->id), LKS_INT(fence)};
	int64_t n;
	int rc = lks_conn_query_int(c, w->ck->log_insert, p, 2, &n);
	return rc ? rc : lks_conn_exec(c, w->ck->counter_update);
}

static void reconnect(lks_conn *c, check_worker *w)
{
	w->reconnects++;
	while (now_ms() < w->ck->end_ms + 30000 && lks_conn_reset(c) != LKS_OK)
		usleep(100000);
}

static void *check_loop(void *arg)
{
	check_worker *w = arg;
	lks_conn *c = NULL;
	bool opened = lks_conn_open(&c, w->ck->url) == LKS_OK && lks_lease_set_table(c, w->ck->lease) == LKS_OK;
	if (pthread_barrier_wait(&w->ck->connected) == PTHREAD_BARRIER_SERIAL_THREAD)
		w->ck->end_ms = now_ms() + w->ck->duration_ms;
	pthread_barrier_wait(&w->ck->started);
	if (!opened) {
		w->errors++;
		lks_conn_close(c);
		return NULL;
	}
	while (now_ms() < w->ck->end_ms) {
		lks_lease *l = NULL;
		int rc = lks_lease_acquire(&l, c, "check", w->ck->ttl_ms, w->ck->ttl_ms, NULL);
		if (rc == LKS_BUSY || rc == LKS_TIMEOUT || rc == LKS_ETRANSIENT) {
			w->busy++;
			continue;
		}
		if (rc) {
			if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
				reconnect(c, w);
			else
				w->errors++;
			continue;
		}
		w->grants++;
		if (w->ngranted < ACKS_MAX)
			w->granted[w->ngranted++] = lks_lease_fence(l);
		if (atomic_fetch_add(&w->ck->inside, 1) != 0)
			atomic_fetch_add(&w->ck->overlaps, 1);
		if (lks_lease_fence(l) <= w->last_fence)
			w->regressions++;
		w->last_fence = lks_lease_fence(l);
		rc = lks_lease_fenced_write(c, l, logged_write, w);
		atomic_fetch_sub(&w->ck->inside, 1);
		if (rc == LKS_OK && w->nacks < ACKS_MAX)
			w->acks[w->nacks++] = lks_lease_fence(l);
		else if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
			w->unknown++;
		else if (rc)
			w->refused++;
		if (rc != LKS_ECONN && rc != LKS_EUNKNOWN)
			lks_lease_release(c, l);
		lks_lease_free(l);
		if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
			reconnect(c, w);
	}
	lks_conn_close(c);
	return NULL;
}

static int cmp_fence(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Fences handed out more than once, over every worker's grants. */
static int64_t granted_twice(check_worker *ws, long workers)
{
	size_t n = 0, k = 0;
	int64_t twice = 0, *all;
	for (long i = 0; i < workers; i++)
		n += (size_t)ws[i].ngranted;
	if (!n || !(all = malloc(n * sizeof *all)))
		return 0;
	for (long i = 0; i < workers; i++) {
		memcpy(all + k, ws[i].granted, (size_t)ws[i].ngranted * sizeof *all);
		k += (size_t)ws[i].ngranted;
	}
	qsort(all, n, sizeof *all, cmp_fence);
	for (size_t i = 1; i < n; i++)
		twice += all[i] == all[i - 1];
	free(all);
	return twice;
}

static int64_t one(lks_conn *c, const char *sql, int *rc)
{
	int64_t v = 0;
	if (*rc == LKS_OK && (*rc = lks_conn_query_int(c, sql, NULL, 0, &v)))
		cli_error("check: %s: %s", sql, lks_conn_errmsg(c));
	return v;
}

/* This run's table names, from 8 random bytes. */
static int name_tables(checker *ck, bool pg)
{
	unsigned char r[8];
	FILE *f = fopen("/dev/urandom", "rb");
	size_t got = f ? fread(r, 1, sizeof r, f) : 0;
	if (f)
		fclose(f);
	if (got != sizeof r)
		return -1;
	int n = snprintf(ck->prefix, sizeof ck->prefix, "lks_check_");
	for (size_t i = 0; i < sizeof r; i++)
		n += snprintf(ck->prefix + n, sizeof ck->prefix - (size_t)n, "%02x", r[i]);
	snprintf(ck->lease, sizeof ck->lease, "%s_lease", ck->prefix);
	snprintf(ck->log_insert, sizeof ck->log_insert, "INSERT INTO %s_log (worker, fence) VALUES %s",
	         ck->prefix, pg ? "($1, $2)" : "(?, ?)");
	snprintf(ck->counter_update, sizeof ck->counter_update, "UPDATE %s_counter SET n = n + 1",
	         ck->prefix);
	return 0;
}

static int exec_on(lks_conn *c, const checker *ck, const char *fmt, const char *more)
{
	char sql[256];
	snprintf(sql, sizeof sql, fmt, ck->prefix, more);
	return lks_conn_exec(c, sql);
}

static void drop_tables(lks_conn *c, const checker *ck)
{
	exec_on(c, ck, "DROP TABLE IF EXISTS %s_log%s", "");
	exec_on(c, ck, "DROP TABLE IF EXISTS %s_counter%s", "");
	exec_on(c, ck, "DROP TABLE IF EXISTS %s_lease%s", "");
}

/* The scratch tables, new: a lease table of its own, the log, the counter. */
static int setup(lks_conn *c, checker *ck)
{
	int rc;
	bool pg = lks_conn_backend(c) == LKS_BACKEND_POSTGRESQL;
	if (name_tables(ck, pg)) {
		cli_error("check: cannot read /dev/urandom for the scratch tables' names");
		return LKS_EINVAL;
	}
	if ((rc = lks_lease_set_table(c, ck->lease)) || (rc = lks_lease_install(c)) ||
	    (rc = exec_on(c, ck, "CREATE TABLE %s_log (worker int NOT NULL, fence bigint NOT NULL%s",
	                  pg ? ")" : ", id bigint AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB")) ||
	    (rc = exec_on(c, ck, "CREATE TABLE %s_counter (n bigint NOT NULL%s",
	                  pg ? ")" : ", id int PRIMARY KEY DEFAULT 1) ENGINE=InnoDB")) ||
	    (rc = exec_on(c, ck, "INSERT INTO %s_counter (n) VALUES (0)%s", ""))) {
		cli_error("check: creating the scratch tables: %s", lks_conn_errmsg(c));
		drop_tables(c, ck);
	}
	return rc;
}

/* A count from this run's tables (prefix first in fmt) */
static int64_t count_of(lks_conn *c, const checker *ck, const char *fmt, int *rc)
{
	char sql[256];
	snprintf(sql, sizeof sql, fmt, ck->prefix);
	return one(c, sql, rc);
}

int cli_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, CHECK_URL},
		{"workers", required_argument, NULL, CHECK_WORKERS},
		{"duration", required_argument, NULL, CHECK_DURATION},
		{"ttl", required_argument, NULL, CHECK_TTL},
		{"json", no_argument, NULL, CHECK_JSON},
		{"help", no_argument, NULL, CHECK_HELP},
		{NULL, 0, NULL, 0},
	};
	static check_worker ws[CHECK_WORKERS_MAX];
	cli_common co = {0};
	checker ck = {0};
	int64_t duration_ms = 5000, grants = 0, acked = 0, unknown = 0, refused = 0, reconnects = 0;
	int64_t regressions = 0, errors = 0, missing = 0, counter, logged, distinct, told_twice = 0;
	long workers = 8;
	bool json = false;
	char err[128], *end;
	lks_conn *c;
	int opt, rc;
	opterr = 0;
	optind = 1;
	ck.ttl_ms = 2000;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case CHECK_URL: co.url = optarg; break;
		case CHECK_JSON: json = true; break;
		case CHECK_WORKERS:
			workers = strtol(optarg, &end, 10);
			if (!*optarg || *end || workers < 1 || workers > CHECK_WORKERS_MAX) {
				cli_error("check: --workers must be 1..%d, got '%s'", CHECK_WORKERS_MAX, optarg);
				return EXIT_USAGE;
			}
			break;
		case CHECK_DURATION:
		case CHECK_TTL:
			if (cli_parse_duration(optarg, 3600000, opt == CHECK_TTL ? &ck.ttl_ms : &duration_ms, err,
			                       sizeof err) ||
			    (opt == CHECK_TTL && ck.ttl_ms < 100)) {
				cli_error("check: --%s: %s", opt == CHECK_TTL ? "ttl" : "duration",
				          opt == CHECK_TTL && ck.ttl_ms < 100 ? "at least 100ms" : err);
				return EXIT_USAGE;
			}
			break;
		case 'h':
		case CHECK_HELP: cli_help(stdout, "check"); return 0;
		case ':':
			cli_error("check: option %s needs a value (see lockstock check --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("check: unknown option %s (see lockstock check --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_error("check: no operands (see lockstock check --help)");
		return EXIT_USAGE;
	}
	if ((rc = cli_connect(&co, &c)))
		return rc;
	if ((rc = setup(c, &ck))) {
		lks_conn_close(c);
		return cli_exit_for(rc);
	}
	ck.url = co.url ? co.url : getenv("LOCKSTOCK_URL");
	ck.duration_ms = duration_ms;
	pthread_barrier_init(&ck.connected, NULL, (unsigned)workers);
	pthread_barrier_init(&ck.started, NULL, (unsigned)workers);
	for (long i = 0; i < workers; i++) {
		ws[i] = (check_worker){.ck = &ck, .id = (int)i};
		ws[i].acks = malloc(sizeof *ws[i].acks * ACKS_MAX);
		ws[i].granted = malloc(sizeof *ws[i].granted * ACKS_MAX);
		if (!ws[i].acks || !ws[i].granted) {
			for (long k = 0; k <= i; k++) {
				free(ws[k].acks);
				free(ws[k].granted);
			}
			cli_error("check: out of memory");
			lks_conn_close(c);
			return EXIT_FAILURE_DB;
		}
	}
	for (long i = 0; i < workers; i++)
		pthread_create(&ws[i].th, NULL, check_loop, &ws[i]);
	for (long i = 0; i < workers; i++)
		pthread_join(ws[i].th, NULL);
	pthread_barrier_destroy(&ck.connected);
	pthread_barrier_destroy(&ck.started);
	/* the database's view, on a connection that finds the primary now */
	for (int i = 0; i < 300 && lks_conn_reset(c) != LKS_OK; i++)
		usleep(100000);
	rc = LKS_OK;
	counter = count_of(c, &ck, "SELECT n FROM %s_counter", &rc);
	logged = count_of(c, &ck, "SELECT count(*) FROM %s_log", &rc);
	distinct = count_of(c, &ck, "SELECT count(DISTINCT fence) FROM %s_log", &rc);
	told_twice = granted_twice(ws, workers);
	for (long i = 0; i < workers && rc == LKS_OK; i++) {
		check_worker *w = &ws[i];
		grants += w->grants;
		acked += w->nacks;
		unknown += w->unknown;
		refused += w->refused;
		reconnects += w->reconnects;
		regressions += w->regressions;
		errors += w->errors;
		for (int k = 0; k < w->nacks && rc == LKS_OK; k++) {
			char sql[160];
			snprintf(sql, sizeof sql, "SELECT count(*) FROM %s_log WHERE worker = %d"
			         " AND fence = %lld", ck.prefix, w->id, (long long)w->acks[k]);
			missing += one(c, sql, &rc) == 0;
		}
	}
	for (long i = 0; i < workers; i++) {
		free(ws[i].acks);
		free(ws[i].granted);
	}
	if (rc) {
		lks_conn_close(c);
		return cli_exit_for(rc);
	}
	int64_t overlaps = atomic_load(&ck.overlaps);
	int64_t twice = told_twice > logged - distinct ? told_twice : logged - distinct;
	bool ok = overlaps == 0 && regressions == 0 && twice == 0 && missing == 0 && counter == logged &&
	          errors == 0 && grants > 0;
	if (json)
		printf("{\"verdict\":\"%s\",\"workers\":%ld,\"duration_ms\":%lld,\"grants\":%lld,"
		       "\"acknowledged_writes\":%lld,\"unknown_outcome\":%lld,\"refused_writes\":%lld,"
		       "\"two_holders\":%lld,\"fence_regressions\":%lld,\"fences_granted_twice\":%lld,"
		       "\"acknowledged_writes_missing\":%lld,\"counter\":%lld,\"logged_writes\":%lld,"
		       "\"reconnects\":%lld,\"errors\":%lld,\"tables\":\"%s_*\"}\n",
		       ok ? "ok" : "violated", workers, (long long)duration_ms, (long long)grants,
		       (long long)acked, (long long)unknown, (long long)refused, (long long)overlaps,
		       (long long)regressions, (long long)twice, (long long)missing, (long long)counter,
		       (long long)logged, (long long)reconnects, (long long)errors, ck.prefix);
	else
		printf("%s: %lld grants by %ld workers in %lld ms; %lld fenced writes acknowledged, %lld"
		       " outcome unknown, %lld refused\n"
		       "  two holders at once: %lld; fences not increasing: %lld; fences granted twice: %lld\n"
		       "  counter %lld, logged writes %lld; acknowledged writes missing: %lld;"
		       " reconnects %lld; errors %lld\n",
		       ok ? "ok" : "VIOLATED", (long long)grants, workers, (long long)duration_ms,
		       (long long)acked, (long long)unknown, (long long)refused, (long long)overlaps,
		       (long long)regressions, (long long)twice, (long long)counter, (long long)logged,
		       (long long)missing, (long long)reconnects, (long long)errors);
	/* the scratch tables go; a violation keeps them to look at */
	if (ok)
		drop_tables(c, &ck);
	else if (!json)
		printf("  the evidence is kept in the tables %s_log, %s_counter and %s_lease\n", ck.prefix,
		       ck.prefix, ck.prefix);
	lks_conn_close(c);
	return ok ? 0 : 1;
}
