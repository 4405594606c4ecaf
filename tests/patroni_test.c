/* Failover under Patroni (issue #20). Sixteen workers each hold a lease of
 * their own under auto-renew (half with a TTL shorter than a failover, half
 * longer) and write through it (fenced), and take a contended lease in
 * turn, over a multi-host URL with target_session_attrs=read-write. Mid-load
 * the primary's postmaster is SIGKILLed and Patroni promotes the standby on
 * its own; later a planned switchover moves the primary back.
 *
 * Usage: patroni_test sync|async; the environment names the cluster
 * (scripts/common.sh patroni_cluster): LKS_PATRONI_<MODE>_URL, _KILL,
 * _SWITCHOVER, _LIST. With synchronous_mode (strict) the test asserts: no
 * fence of the contended lease granted twice, no acknowledged fenced write
 * lost, and no worker believes it holds its lease while the server says
 * otherwise (each is kept, renewed on the new primary, or reported lost).
 * Asynchronous: it reports fences granted again and acknowledged writes
 * lost, and fails on nothing but a broken client. Then lockstock check
 * runs on the cluster as it is, and once more through a failover that
 * loses what was in flight to the replica: the asynchronous cluster's
 * lost grants must show in its verdict, the synchronous one must pass. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "lockstock.h"
#include "tap.h"

#define WORKERS 16
#define MAX_WRITES 100000

static const char *url, *kill_cmd, *switch_cmd, *list_cmd, *repl_cmd, *cli_path;
static bool sync_mode;
static atomic_bool stop;
static atomic_int phase; /* 0 before the kill, 1 after, 2 after the switchover */

typedef struct ack {
	int64_t fence;
	int own; /* 1: through the worker's own lease; 0: the contended one */
} ack;

typedef struct worker {
	pthread_t th;
	int id;
	int64_t ttl_ms;
	ack *acks; /* acknowledged fenced writes */
	int nacks;
	int64_t hot_fences[MAX_WRITES];
	int nhot;
	int64_t unknown, refused, reconnects, lost_reports, reacquired;
	atomic_int lost_flag;
	lks_lease *own;
	char name[32];
	bool believes; /* at the end: holds its lease, by its own account */
	bool wrong;    /* ... and the server says otherwise */
} worker;

static worker workers[WORKERS];

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lks_conn *connect_retry(void)
{
	lks_conn *c = NULL;
	for (int i = 0; i < 600; i++) {
		if (lks_conn_open(&c, url) == LKS_OK)
			return c;
		lks_conn_close(c);
		c = NULL;
		usleep(50000);
	}
	return NULL;
}

static void reconnect(lks_conn *c, worker *w)
{
	w->reconnects++;
	while (!atomic_load(&stop) && lks_conn_reset(c) != LKS_OK)
		usleep(50000);
}

/* one row per fenced write, and the counter, in the write's transaction */
static int log_row(lks_conn *c, const worker *w, int64_t fence, int own)
{
	char sql[160];
	snprintf(sql, sizeof sql, "INSERT INTO pt_log (worker, fence, own) VALUES (%d, %lld, %d)", w->id,
	         (long long)fence, own);
	int rc = lks_conn_exec(c, sql);
	return rc ? rc : lks_conn_exec(c, "UPDATE pt_counter SET n = n + 1");
}

static int log_write(lks_conn *c, int64_t fence, void *arg)
{
	return log_row(c, arg, fence, 1);
}

static int hot_write(lks_conn *c, int64_t fence, void *arg)
{
	return log_row(c, arg, fence, 0);
}

static void on_lost(const lks_lease *l, int status, void *arg)
{
	worker *w = arg;
	(void)l;
	(void)status;
	atomic_store(&w->lost_flag, 1);
}

static void record(worker *w, int rc, int64_t fence, int own)
{
	if (rc == LKS_OK && w->nacks < MAX_WRITES)
		w->acks[w->nacks++] = (ack){fence, own};
	else if (rc == LKS_EUNKNOWN || rc == LKS_ECONN)
		w->unknown++;
	else if (rc)
		w->refused++;
}

/* Take (or take again, after a loss) the worker's own lease, auto-renewed. */
static void take_own(lks_conn *c, worker *w)
{
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	ao.on_lost = on_lost;
	ao.arg = w;
	while (!atomic_load(&stop)) {
		int rc = lks_lease_acquire(&w->own, c, w->name, w->ttl_ms, 2 * w->ttl_ms + 20000, NULL);
		if (rc == LKS_OK && lks_lease_autorenew_start(w->own, c, NULL, &ao) == LKS_OK)
			return;
		if (rc == LKS_OK) { /* no renew connection now: give it back, again */
			lks_lease_release(c, w->own);
			lks_lease_free(w->own);
		}
		w->own = NULL;
		if (rc == LKS_ECONN || rc == LKS_EUNKNOWN || rc == LKS_OK)
			reconnect(c, w);
	}
}

static void *work(void *arg)
{
	worker *w = arg;
	lks_conn *c = connect_retry();
	if (!c)
		return NULL;
	take_own(c, w);
	for (int i = 0; !atomic_load(&stop); i++) {
		int rc;
		if (!w->own) {
			take_own(c, w);
			continue;
		}
		if (atomic_load(&w->lost_flag) || lks_lease_is_lost(w->own)) {
			/* reported lost: it never writes with it again; a new grant */
			w->lost_reports++;
			lks_lease_free(w->own);
			w->own = NULL;
			atomic_store(&w->lost_flag, 0);
			w->reacquired++;
			continue;
		}
		rc = lks_lease_fenced_write(c, w->own, log_write, w);
		record(w, rc, lks_lease_fence(w->own), 1);
		if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
			reconnect(c, w);
		if (i % 4 == 0) { /* the contended lease */
			lks_lease *hot = NULL;
			rc = lks_lease_acquire(&hot, c, "hot", 3000, 500, NULL);
			if (rc == LKS_OK) {
				if (w->nhot < MAX_WRITES)
					w->hot_fences[w->nhot++] = lks_lease_fence(hot);
				rc = lks_lease_fenced_write(c, hot, hot_write, w);
				record(w, rc, lks_lease_fence(hot), 0);
				if (rc != LKS_ECONN && rc != LKS_EUNKNOWN)
					lks_lease_release(c, hot);
				lks_lease_free(hot);
			}
			if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
				reconnect(c, w);
		}
		usleep(5000); /* a service's pace, not a benchmark's */
	}
	/* what it believes at the end (its lease, unless reported lost or past
	 * its local deadline), against what the server says right then: the
	 * server's expiry is a margin after the local deadline */
	if (w->own && !atomic_load(&w->lost_flag) && !lks_lease_is_lost(w->own)) {
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		w->believes = true;
		for (int i = 0; i < 100 && lks_lease_inspect(c, w->name, &info) != LKS_OK; i++) {
			lks_conn_reset(c);
			usleep(50000);
		}
		w->wrong = !(info.held && !strcmp(info.holder, lks_lease_holder(w->own)) &&
		             info.fence == lks_lease_fence(w->own));
	}
	if (w->own)
		lks_lease_autorenew_stop(w->own);
	lks_conn_close(c);
	return NULL;
}

static int64_t int1(lks_conn *c, const char *sql)
{
	int64_t v = -1;
	int rc = lks_conn_query_int(c, sql, NULL, 0, &v);
	if (rc)
		fail_msg("%s: %s", sql, lks_conn_errmsg(c));
	return v;
}

static void run(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

/* The cluster as patronictl lists it has a leader and (sync) a synchronous
 * standby, both running: waits for that, at most 120 s. */
static void wait_healthy(void)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd,
	         "%s | python3 -c 'import json,sys; m=json.load(sys.stdin); r=[(x[\"Role\"],x[\"State\"]) for x in m];"
	         " sys.exit(0 if (\"Leader\",\"running\") in r and any(s in (\"running\",\"streaming\") and"
	         " x in (%s) for x,s in r) else 1)' 2>/dev/null",
	         list_cmd, sync_mode ? "\"Sync Standby\",\"Sync Standby\"" : "\"Replica\",\"Sync Standby\"");
	for (int i = 0; i < 1200; i++) {
		if (system(cmd) == 0)
			return;
		usleep(100000);
	}
	run(list_cmd);
	fail_msg("the Patroni cluster did not become healthy");
}

/* Until a new primary accepts writes (a connection through the URL that
 * can write), at most 120 s; the time it took. */
static int64_t wait_writable(lks_conn *admin)
{
	int64_t t0 = mono_ms();
	while (mono_ms() - t0 < 120000) {
		if (lks_conn_reset(admin) == LKS_OK && lks_conn_exec(admin, "UPDATE pt_probe SET n = n + 1") == LKS_OK)
			return mono_ms() - t0;
		usleep(50000);
	}
	fail_msg("no writable primary 120 s after the kill");
	return -1;
}

static void failover_under_patroni(void **state)
{
	lks_conn *admin;
	int64_t ok = 0, unknown = 0, refused = 0, reconnects = 0, lost_reports = 0, ok_missing = 0;
	int64_t hot_grants = 0, hot_twice = 0, believes = 0, believes_wrong = 0, kept_long = 0;
	int64_t lost_long = 0;
	int64_t failover_ms, switch_ms;
	(void)state;
	wait_healthy();
	admin = connect_retry();
	assert_non_null(admin);
	assert_int_equal(lks_lease_install(admin), LKS_OK);
	lks_conn_exec(admin, "DROP TABLE IF EXISTS pt_counter, pt_log, pt_probe, pt_ack");
	assert_int_equal(lks_conn_exec(admin, "CREATE TABLE pt_ack (worker int, fence bigint, own int,"
	                                      " n int)"), LKS_OK);
	assert_int_equal(lks_conn_exec(admin, "CREATE TABLE pt_counter (n bigint NOT NULL)"), LKS_OK);
	assert_int_equal(lks_conn_exec(admin, "INSERT INTO pt_counter VALUES (0)"), LKS_OK);
	assert_int_equal(lks_conn_exec(admin, "CREATE TABLE pt_log (worker int, fence bigint, own int)"), LKS_OK);
	assert_int_equal(lks_conn_exec(admin, "CREATE TABLE pt_probe (n bigint NOT NULL)"), LKS_OK);
	assert_int_equal(lks_conn_exec(admin, "INSERT INTO pt_probe VALUES (0)"), LKS_OK);
	for (int i = 0; i < WORKERS; i++) {
		worker *w = &workers[i];
		memset(w, 0, sizeof *w);
		w->id = i;
		/* shorter than a failover (Patroni's ttl is 10 s), or longer */
		w->ttl_ms = i % 2 ? 30000 : 1500;
		snprintf(w->name, sizeof w->name, "pt:own:%d:%ld", i, (long)time(NULL));
		w->acks = calloc(MAX_WRITES, sizeof *w->acks);
		assert_non_null(w->acks);
		pthread_create(&w->th, NULL, work, w);
	}
	usleep(2000 * 1000);
	/* the primary's postmaster dies; Patroni promotes the standby */
	atomic_store(&phase, 1);
	run(kill_cmd);
	failover_ms = wait_writable(admin);
	usleep(3000 * 1000);
	/* a planned switchover once the old primary is back as a standby */
	wait_healthy();
	atomic_store(&phase, 2);
	int64_t t0 = mono_ms();
	run(switch_cmd);
	wait_writable(admin);
	switch_ms = mono_ms() - t0;
	usleep(3000 * 1000);
	atomic_store(&stop, true);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i].th, NULL);

	assert_int_equal(lks_conn_reset(admin), LKS_OK);
	int64_t counter = int1(admin, "SELECT n FROM pt_counter");
	int64_t logged = int1(admin, "SELECT count(*) FROM pt_log");
	for (int i = 0; i < WORKERS; i++) {
		worker *w = &workers[i];
		ok += w->nacks;
		unknown += w->unknown;
		refused += w->refused;
		reconnects += w->reconnects;
		lost_reports += w->lost_reports;
		lost_long += w->ttl_ms > 10000 ? w->lost_reports : 0;
		hot_grants += w->nhot;
		/* the acknowledged writes, counted per (fence, own), to the server */
		for (int k = 0; k < w->nacks;) {
			char sql[200];
			int n = 1;
			while (k + n < w->nacks && w->acks[k + n].fence == w->acks[k].fence &&
			       w->acks[k + n].own == w->acks[k].own)
				n++;
			snprintf(sql, sizeof sql, "INSERT INTO pt_ack VALUES (%d, %lld, %d, %d)", w->id,
			         (long long)w->acks[k].fence, w->acks[k].own, n);
			if (lks_conn_exec(admin, sql))
				fail_msg("%s: %s", sql, lks_conn_errmsg(admin));
			k += n;
		}
		/* never silently kept: what it believes, the server says */
		believes += w->believes;
		kept_long += w->believes && w->ttl_ms > 10000;
		believes_wrong += w->wrong;
	}
	/* acknowledged and not on the new primary */
	ok_missing = int1(admin, "SELECT coalesce(sum(greatest(a.n - coalesce(l.n, 0), 0)), 0) FROM"
	                         " (SELECT worker, fence, own, sum(n) AS n FROM pt_ack GROUP BY 1, 2, 3) a"
	                         " LEFT JOIN (SELECT worker, fence, own, count(*) AS n FROM pt_log"
	                         " GROUP BY 1, 2, 3) l USING (worker, fence, own)");
	/* the contended lease: no fence granted twice */
	for (int i = 0; i < WORKERS; i++)
		for (int k = 0; k < workers[i].nhot; k++)
			for (int j = i; j < WORKERS; j++)
				for (int m = j == i ? k + 1 : 0; m < workers[j].nhot; m++)
					hot_twice += workers[i].hot_fences[k] == workers[j].hot_fences[m];
	print_message("    %s, Patroni: writable again %lld ms after the postmaster's SIGKILL, %lld ms"
	              " after the switchover started\n",
	              sync_mode ? "synchronous_mode_strict" : "asynchronous", (long long)failover_ms,
	              (long long)switch_ms);
	print_message("    contended lease: %lld grants, %lld fences granted twice; fenced writes: %lld"
	              " acknowledged, %lld acknowledged and lost, %lld outcome unknown, %lld refused;"
	              " counter %lld, log %lld\n",
	              (long long)hot_grants, (long long)hot_twice, (long long)ok, (long long)ok_missing,
	              (long long)unknown, (long long)refused, (long long)counter, (long long)logged);
	print_message("    own leases: %lld reported lost and taken again (%lld of 1.5 s, %lld of 30 s),"
	              " %lld held at the end (%lld of them 30 s leases), %lld believed held but not;"
	              " %lld reconnects\n",
	              (long long)lost_reports, (long long)(lost_reports - lost_long), (long long)lost_long,
	              (long long)believes, (long long)kept_long, (long long)believes_wrong,
	              (long long)reconnects);
	assert_true(ok > 0 && hot_grants > 0);
	assert_int_equal(logged, counter); /* one transaction writes both */
	assert_int_equal(believes_wrong, 0); /* asynchronous too: a lease is never silently kept */
	/* a lease shorter than the failover could not be renewed through it
	 * (no primary took writes for failover_ms): each was reported lost */
	if (failover_ms > 3000)
		for (int i = 0; i < WORKERS; i++)
			if (workers[i].ttl_ms < 10000 && workers[i].lost_reports < 1)
				fail_msg("worker %d's lease of %lld ms was never reported lost through a failover of"
				         " %lld ms", i, (long long)workers[i].ttl_ms, (long long)failover_ms);
	if (sync_mode) {
		assert_int_equal(hot_twice, 0);
		assert_int_equal(ok_missing, 0);
		assert_true(counter >= ok && counter <= ok + unknown);
	}
	lks_conn_close(admin);
	for (int i = 0; i < WORKERS; i++) {
		lks_lease_free(workers[i].own);
		free(workers[i].acks);
	}
}

/* lockstock check through the multi-host URL, on the cluster as the
 * failover and switchover left it: sync must pass */
static void check_command_on_the_cluster(void **state)
{
	char cmd[2048];
	int st;
	(void)state;
	wait_healthy();
	snprintf(cmd, sizeof cmd, "LOCKSTOCK_URL='%s' %s check --duration 3s --workers 8 >&2", url, cli_path);
	st = system(cmd);
	print_message("    lockstock check: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	if (sync_mode)
		assert_int_equal(st, 0);
	else
		assert_true(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 1));
}

/* a number field of check's JSON line, -1 when absent */
static long long json_field(const char *json, const char *key)
{
	char pat[64];
	const char *p;
	snprintf(pat, sizeof pat, "\"%s\":", key);
	return (p = strstr(json, pat)) ? atoll(p + strlen(pat)) : -1;
}

/* lockstock check running while a failover loses what was in flight to
 * the replica: its WAL receiver is paused (a slow network), the primary's
 * postmaster SIGKILLed, the receiver killed, Patroni promotes. check must
 * see what the asynchronous cluster lost (fences handed out again, or
 * acknowledged writes gone: verdict violated, exit 1) and find nothing
 * wrong on the synchronous one (a commit waits for the replica). */
static void check_during_a_lossy_failover(void **state)
{
	char cmd[2048], line[4096] = "";
	FILE *out;
	int st;
	(void)state;
	wait_healthy();
	snprintf(cmd, sizeof cmd, "LOCKSTOCK_URL='%s' %s check --duration 20s --workers 4 --ttl 2s --json",
	         url, cli_path);
	out = popen(cmd, "r");
	assert_non_null(out);
	usleep(3000 * 1000); /* check is granting and writing by now */
	char c2[1100];
	snprintf(c2, sizeof c2, "%s stop", repl_cmd);
	run(c2);
	usleep(400 * 1000);
	run(kill_cmd);
	snprintf(c2, sizeof c2, "%s kill", repl_cmd);
	run(c2);
	while (fgets(line, sizeof line, out) && line[0] != '{')
		;
	st = pclose(out);
	print_message("    lockstock check during the failover: exit %d: %s",
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1, line);
	assert_true(WIFEXITED(st));
	long long twice = json_field(line, "fences_granted_twice");
	long long missing = json_field(line, "acknowledged_writes_missing");
	assert_true(twice >= 0 && missing >= 0);
	assert_true(json_field(line, "grants") > 0);
	if (sync_mode) {
		assert_int_equal(WEXITSTATUS(st), 0);
		assert_non_null(strstr(line, "\"verdict\":\"ok\""));
	} else {
		assert_int_equal(WEXITSTATUS(st), 1);
		assert_non_null(strstr(line, "\"verdict\":\"violated\""));
		assert_true(twice + missing > 0);
	}
}

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {cmocka_unit_test(failover_under_patroni),
	                                   cmocka_unit_test(check_command_on_the_cluster),
	                                   cmocka_unit_test(check_during_a_lossy_failover)};
	char name[64];
	const char *mode = argc == 3 ? argv[1] : "";
	cli_path = argc == 3 ? argv[2] : NULL;
	sync_mode = !strcmp(mode, "sync");
	if (!sync_mode && strcmp(mode, "async")) {
		fprintf(stderr, "usage: patroni_test sync|async PATH-TO-LOCKSTOCK\n");
		return 1;
	}
	url = getenv(sync_mode ? "LKS_PATRONI_SYNC_URL" : "LKS_PATRONI_ASYNC_URL");
	kill_cmd = getenv(sync_mode ? "LKS_PATRONI_SYNC_KILL" : "LKS_PATRONI_ASYNC_KILL");
	switch_cmd = getenv(sync_mode ? "LKS_PATRONI_SYNC_SWITCHOVER" : "LKS_PATRONI_ASYNC_SWITCHOVER");
	list_cmd = getenv(sync_mode ? "LKS_PATRONI_SYNC_LIST" : "LKS_PATRONI_ASYNC_LIST");
	repl_cmd = getenv(sync_mode ? "LKS_PATRONI_SYNC_REPLICATION" : "LKS_PATRONI_ASYNC_REPLICATION");
	if (!url || !kill_cmd || !switch_cmd || !list_cmd || !repl_cmd) {
		/* never turn a missing server into skipped tests */
		fprintf(stderr, "FAILED: LKS_PATRONI_%s_URL, _KILL, _SWITCHOVER, _LIST and _REPLICATION are not set;"
		                " scripts/test.sh starts the Patroni cluster\n", sync_mode ? "SYNC" : "ASYNC");
		return 1;
	}
	lks_library_init();
	snprintf(name, sizeof name, "patroni-%s", mode);
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
