/* Leader election (issue #19), measured in one run:
 *   hand-over: a leader in office in another process is SIGKILLed (no
 *     resign: its session dies, its lease row stays until its TTL); a
 *     candidate already campaigning takes office. Kill -> the candidate's
 *     campaign returns, p50/p99/max, and how late that is after the dead
 *     term's expiry (its remaining TTL read just before the kill): the
 *     hand-over is bounded by the TTL, the rest is what lockstock adds.
 *   observe: 1 and 16 observers, each on its own connection, block in
 *     lks_election_observe while the leader resigns; resign sent -> each
 *     observer's return, p50/p99. "line": the leader keeps the name's baton
 *     (what lks_election_campaign does), observers wait in the name's line;
 *     "poll": the same with the waiting room off (the leader keeps no
 *     baton: what a pooler gets), observers read every 50 ms.
 * Usage: election_bench postgresql|mysql [rounds, default 20]
 * (URL from LKS_PG_URL / LKS_MYSQL_URL; scripts/bench.sh starts servers at
 * default durability). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lockstock.h"
#include "stats.h"

#define MAX_OBSERVERS 16
#define TTL_MS 1000

static const char *url;
static int rounds = 20;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "election_bench: %s: %s\n", what, c ? lks_conn_errmsg(c) : "");
	exit(1);
}

static lks_conn *open_conn(void)
{
	lks_conn *c = NULL;
	if (lks_conn_open(&c, url) != LKS_OK)
		die(c, "open");
	return c;
}

/* ---- hand-over after a kill --------------------------------------------- */

typedef struct candidate {
	lks_conn *c;
	const char *name;
	double returned_ms;
	int64_t term;
	int rc;
} candidate;

static void *campaign(void *arg)
{
	candidate *k = arg;
	lks_lease *l = NULL;
	k->rc = lks_election_campaign(&l, k->c, k->name, "next", 4, TTL_MS, 60000, NULL);
	k->returned_ms = now_ms();
	if (k->rc == LKS_OK) {
		k->term = lks_lease_fence(l);
		lks_election_resign(k->c, l);
		lks_lease_free(l);
	}
	return NULL;
}

/* a leader in a child process, in office until killed */
static pid_t leader_process(const char *name, int64_t *term)
{
	int fds[2];
	pid_t pid;
	if (pipe(fds))
		die(NULL, "pipe");
	if ((pid = fork()) == 0) {
		lks_conn *c = NULL;
		lks_lease *l = NULL;
		int64_t t = -1;
		if (lks_conn_open(&c, url) == LKS_OK &&
		    lks_election_campaign(&l, c, name, "dead", 4, TTL_MS, 10000, NULL) == LKS_OK)
			t = lks_lease_fence(l);
		if (write(fds[1], &t, sizeof t) != sizeof t)
			_exit(3);
		for (;;)
			pause();
	}
	if (pid < 0 || read(fds[0], term, sizeof *term) != sizeof *term || *term <= 0)
		die(NULL, "leader process");
	close(fds[0]);
	close(fds[1]);
	return pid;
}

static void handover(void)
{
	lks_conn *w = open_conn(), *cc = open_conn();
	double total[256], late[256];
	int n = rounds > 256 ? 256 : rounds;
	for (int i = 0; i < n; i++) {
		char name[32];
		int64_t term;
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		candidate k = {.c = cc, .name = name};
		pthread_t th;
		int status;
		snprintf(name, sizeof name, "eb-kill-%d-%d", (int)getpid(), i);
		pid_t pid = leader_process(name, &term);
		pthread_create(&th, NULL, campaign, &k);
		usleep(100000); /* the candidate is in line by now (a benchmark, not a test) */
		if (lks_lease_inspect(w, name, &info) != LKS_OK || !info.held)
			die(w, "inspect the leader");
		double killed = now_ms();
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		pthread_join(th, NULL);
		if (k.rc != LKS_OK || k.term <= term)
			die(cc, "campaign after the kill");
		total[i] = k.returned_ms - killed;
		late[i] = total[i] - (double)info.remaining_ms;
	}
	double t50 = bench_pct(total, n, 0.5), t99 = bench_pct(total, n, 0.99), tmax = total[n - 1];
	double l50 = bench_pct(late, n, 0.5), l99 = bench_pct(late, n, 0.99);
	printf("hand-over (TTL %d ms, %d kills): kill -> new leader p50 %.1f ms, p99 %.1f ms,"
	       " max %.1f ms; after the dead term's expiry p50 %.1f ms, p99 %.1f ms\n",
	       TTL_MS, n, t50, t99, tmax, l50, l99);
	lks_conn_close(w);
	lks_conn_close(cc);
}

/* ---- observe after a resign ----------------------------------------------- */

typedef struct watch {
	pthread_t th;
	lks_conn *c;
	const char *name;
	pthread_barrier_t *ready;
	lks_lease_info seen;
	double returned_ms;
	int rc;
} watch;

static void *observe(void *arg)
{
	watch *o = arg;
	lks_lease_info now = LKS_LEASE_INFO_INIT;
	char value[16];
	size_t len;
	pthread_barrier_wait(o->ready);
	o->rc = lks_election_observe(o->c, o->name, &o->seen, 60000, &now, value, sizeof value, &len);
	o->returned_ms = now_ms();
	if (o->rc == LKS_OK && now.held)
		o->rc = LKS_CONFLICT; /* expected: nobody in office */
	return NULL;
}

static void observe_bench(int observers, bool line)
{
	static double lat[256 * MAX_OBSERVERS];
	watch w[MAX_OBSERVERS];
	lks_conn *leader = open_conn();
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	pthread_barrier_t ready;
	int n = 0;
	char name[48];
	o.waiting_room = line;
	snprintf(name, sizeof name, "eb-obs-%d-%d-%d", (int)getpid(), observers, line);
	for (int j = 0; j < observers; j++)
		w[j] = (watch){.c = open_conn(), .name = name};
	for (int i = 0; i < rounds && i < 256; i++) {
		lks_lease *l = NULL;
		lks_lease_info seen = LKS_LEASE_INFO_INIT;
		char v[8];
		size_t len;
		if (lks_election_campaign(&l, leader, name, "on", 2, 30000, 5000, &o) != LKS_OK)
			die(leader, "campaign");
		if (lks_election_leader(leader, name, &seen, v, sizeof v, &len) != LKS_OK)
			die(leader, "leader");
		pthread_barrier_init(&ready, NULL, (unsigned)observers + 1);
		for (int j = 0; j < observers; j++) {
			w[j].seen = seen;
			w[j].ready = &ready;
			pthread_create(&w[j].th, NULL, observe, &w[j]);
		}
		pthread_barrier_wait(&ready);
		usleep(60000); /* every observer is waiting by now (a benchmark, not a test) */
		double sent = now_ms();
		if (lks_election_resign(leader, l) != LKS_OK)
			die(leader, "resign");
		lks_lease_free(l);
		for (int j = 0; j < observers; j++) {
			pthread_join(w[j].th, NULL);
			if (w[j].rc != LKS_OK)
				die(w[j].c, "observe");
			lat[n++] = w[j].returned_ms - sent;
		}
		pthread_barrier_destroy(&ready);
	}
	printf("observe after resign, %2d observer%s, %s: p50 %.2f ms, p99 %.2f ms\n", observers,
	       observers == 1 ? " " : "s", line ? "line (campaign's default)" : "poll (no waiting room)",
	       bench_pct(lat, n, 0.5), bench_pct(lat, n, 0.99));
	for (int j = 0; j < observers; j++)
		lks_conn_close(w[j].c);
	lks_conn_close(leader);
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: election_bench postgresql|mysql [rounds]\n");
		return 64;
	}
	url = getenv(strcmp(argv[1], "postgresql") ? "LKS_MYSQL_URL" : "LKS_PG_URL");
	if (!url) {
		fprintf(stderr, "election_bench: set LKS_PG_URL / LKS_MYSQL_URL\n");
		return 64;
	}
	if (argc > 2 && (rounds = atoi(argv[2])) < 1)
		rounds = 1;
	lks_library_init();
	lks_conn *c = open_conn();
	if (lks_lease_install(c) != LKS_OK)
		die(c, "install");
	lks_conn_close(c);
	printf("election_bench %s, %d rounds\n", argv[1], rounds);
	handover();
	for (int line = 1; line >= 0; line--) {
		observe_bench(1, line);
		observe_bench(16, line);
	}
	return 0;
}
