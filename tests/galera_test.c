/* Leases on a MariaDB Galera cluster (issue #11): three nodes on loopback,
 * started by scripts/common.sh galera_cluster, named by LKS_GALERA_URLS
 * (three URLs, space-separated).
 *
 * contended_load: 4 clients per node (half of them polling without the
 * waiting room, whose batons are per node anyway) acquire one lease (wait 3 s), write
 * through it (fenced) and release. Asserts: never two holders, fences
 * unique and increasing, no waiting acquire returns LKS_ETRANSIENT, and the
 * counter written through the lease equals the acknowledged writes on every
 * node.
 *
 * stale_holder_on_lagging_node: a holder on node 1 is inside its fenced
 * write when its lease expires; a large transaction committed on node 3
 * makes nodes 1 and 2 lag, and node 2 takes the lease over. The stale
 * holder's write must not commit after the takeover: its fenced write
 * returns LKS_LOST and wrote nothing, or it committed before the takeover
 * and the new holder saw it.
 *
 * reads_see_latest_on_lagging_node: right after a takeover elsewhere, a
 * lagging node's inspect, renew and release see it.
 *
 * once_across_nodes: 4 callers per node run one key at once (lks_once_run,
 * an INSERT into a ledger as the effect), for several keys: one ledger row
 * and one run per key; every caller gets the result.
 *
 * purge_refused_on_galera: lks_lease_purge refuses a Galera node.
 *
 * node_killed_under_load: the contended load again, node 3 killed with
 * SIGKILL a third of the way in, then rejoining. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "lockstock.h"
#include "tap.h"

#define NODES 3
#define PER_NODE 4
#define MAX_GRANTS 100000

static char urls[NODES][512];
/* the stale holder writes this long after the takeover began; the large
 * transaction has this many rows (env: LKS_GALERA_DELAY_MS, _BIG_ROWS) */
static int write_delay_ms = 0, big_rows = 100000;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lks_conn *open_node(int n)
{
	lks_conn *c = NULL;
	if (lks_conn_open(&c, urls[n]) != LKS_OK)
		fail_msg("node %d: %s", n + 1, c ? lks_conn_errmsg(c) : "out of memory");
	return c;
}

static void exec_ok(lks_conn *c, const char *sql)
{
	if (lks_conn_exec(c, sql) != LKS_OK)
		fail_msg("%s: %s", sql, lks_conn_errmsg(c));
}

/* a count read after the node caught up with the cluster */
static int64_t synced_int(lks_conn *c, const char *sql)
{
	char q[512];
	int64_t v = -1;
	snprintf(q, sizeof q, "SET STATEMENT wsrep_sync_wait = 1 FOR %s", sql);
	if (lks_conn_query_int(c, q, NULL, 0, &v) != LKS_OK)
		fail_msg("%s: %s", sql, lks_conn_errmsg(c));
	return v;
}

/* ---- contended load ---------------------------------------------------- */

typedef struct worker {
	int node;
	bool polls; /* no waiting room */
	int64_t deadline_ms;
	atomic_int *inside;
	int64_t fences[MAX_GRANTS / (NODES * PER_NODE)];
	atomic_bool *killed; /* this worker's node was killed */
	int grants, acked, lost, transient_writes, early_transient, timeouts, overlaps, errors;
	int unknown; /* fenced writes whose node died before answering */
	char first_error[256];
} worker;

static int add_one(lks_conn *c, int64_t fence, void *arg)
{
	lks_value p[2] = {LKS_INT(fence), LKS_INT(*(int *)arg)};
	int64_t n;
	int rc = lks_conn_query_int(c, "INSERT INTO g_writes (fence, node) VALUES (?, ?)", p, 2, &n);
	if (rc == LKS_OK)
		rc = lks_conn_query_int(c, "UPDATE g_counter SET n = n + 1 WHERE id = 1", NULL, 0, &n);
	return rc;
}

static void note_error(worker *w, lks_conn *c, const char *what)
{
	if (!w->errors++)
		snprintf(w->first_error, sizeof w->first_error, "%s: %s", what, lks_conn_errmsg(c));
}

/* A call on a node that was killed fails with the connection; the client
 * stops there, as a service would until it reconnects elsewhere. */
static bool node_gone(worker *w, int rc)
{
	return w->killed && atomic_load(w->killed) && (rc == LKS_ECONN || rc == LKS_EUNKNOWN);
}

static void *load_thread(void *arg)
{
	worker *w = arg;
	lks_conn *c = NULL;
	if (lks_conn_open(&c, urls[w->node]) != LKS_OK) {
		note_error(w, c, "open");
		lks_conn_close(c);
		return NULL;
	}
	while (mono_ms() < w->deadline_ms && w->grants < (int)(sizeof w->fences / sizeof *w->fences)) {
		lks_lease *l = NULL;
		int node = w->node + 1;
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		o.waiting_room = w->polls ? 0 : 1; /* pollers race each other's grants */
		int rc = lks_lease_acquire(&l, c, "g:hot", 3000, 3000, &o);
		if (rc == LKS_TIMEOUT) {
			w->timeouts++;
			continue;
		}
		if (rc == LKS_ETRANSIENT) {
			w->early_transient++;
			continue;
		}
		if (node_gone(w, rc))
			break;
		if (rc) {
			note_error(w, c, "acquire");
			continue;
		}
		if (atomic_fetch_add(w->inside, 1) != 0)
			w->overlaps++;
		w->fences[w->grants++] = lks_lease_fence(l);
		rc = lks_lease_fenced_write(c, l, add_one, &node);
		atomic_fetch_sub(w->inside, 1);
		if (rc == LKS_OK)
			w->acked++;
		else if (rc == LKS_LOST)
			w->lost++;
		else if (rc == LKS_ETRANSIENT)
			w->transient_writes++;
		else if (node_gone(w, rc))
			w->unknown++;
		else
			note_error(w, c, "fenced write");
		if (node_gone(w, rc)) {
			lks_lease_free(l);
			break;
		}
		rc = lks_lease_release(c, l);
		lks_lease_free(l);
		if (node_gone(w, rc))
			break;
		if (rc && rc != LKS_LOST)
			note_error(w, c, "release");
	}
	lks_conn_close(c);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The load for `seconds`; with kill_node >= 0 that node is killed (SIGKILL)
 * a third of the way in and rejoins afterwards. */
static void run_load(int64_t seconds, int kill_node)
{
	static worker w[NODES * PER_NODE];
	static int64_t all[MAX_GRANTS];
	pthread_t th[NODES * PER_NODE];
	atomic_int inside = 0;
	atomic_bool killed = false;
	int n = 0, acked = 0, lost = 0, transient = 0, timeouts = 0, early = 0, unknown = 0;
	int64_t counter[NODES];
	lks_conn *c[NODES];
	char ctl[64], cmd[600];
	for (int i = 0; i < NODES; i++)
		c[i] = open_node(i);
	exec_ok(c[0], "CREATE OR REPLACE TABLE g_counter (id int PRIMARY KEY, n bigint NOT NULL)");
	exec_ok(c[0], "CREATE OR REPLACE TABLE g_writes (fence bigint PRIMARY KEY, node int NOT NULL)");
	exec_ok(c[0], "INSERT INTO g_counter VALUES (1, 0)");
	for (int i = 0; i < NODES * PER_NODE; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].node = i % NODES;
		w[i].polls = i >= NODES * PER_NODE / 2;
		w[i].inside = &inside;
		w[i].killed = w[i].node == kill_node ? &killed : NULL;
		w[i].deadline_ms = mono_ms() + seconds * 1000;
		pthread_create(&th[i], NULL, load_thread, &w[i]);
	}
	if (kill_node >= 0) {
		snprintf(ctl, sizeof ctl, "LKS_GALERA_CTL_%d", kill_node + 1);
		if (!getenv(ctl))
			fail_msg("%s is not set (scripts/common.sh galera_cluster)", ctl);
		usleep((useconds_t)(seconds * 1000000 / 3));
		lks_conn_close(c[kill_node]);
		atomic_store(&killed, true);
		snprintf(cmd, sizeof cmd, "%s stop", getenv(ctl));
		assert_int_equal(system(cmd), 0);
	}
	for (int i = 0; i < NODES * PER_NODE; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NODES * PER_NODE; i++) {
		if (w[i].errors)
			fail_msg("client %d (node %d): %d errors, first: %s", i, w[i].node + 1, w[i].errors,
			         w[i].first_error);
		assert_int_equal(w[i].overlaps, 0);
		for (int k = 1; k < w[i].grants; k++)
			assert_true(w[i].fences[k] > w[i].fences[k - 1]);
		memcpy(all + n, w[i].fences, (size_t)w[i].grants * sizeof *all);
		n += w[i].grants;
		acked += w[i].acked;
		lost += w[i].lost;
		transient += w[i].transient_writes;
		timeouts += w[i].timeouts;
		early += w[i].early_transient;
		unknown += w[i].unknown;
	}
	qsort(all, (size_t)n, sizeof *all, cmp_i64);
	for (int k = 1; k < n; k++)
		assert_true(all[k] > all[k - 1]); /* no fence granted twice */
	if (kill_node >= 0) { /* the node rejoins (state transfer) */
		snprintf(cmd, sizeof cmd, "%s start", getenv(ctl));
		assert_int_equal(system(cmd), 0);
		c[kill_node] = open_node(kill_node);
	}
	for (int i = 0; i < NODES; i++) {
		counter[i] = synced_int(c[i], "SELECT n FROM g_counter WHERE id = 1");
		assert_int_equal(synced_int(c[i], "SELECT count(*) FROM g_writes"), counter[i]);
		assert_int_equal(counter[i], counter[0]);
		lks_conn_close(c[i]);
	}
	print_message("    %d grants from %d nodes x %d clients in %lld s%s; fenced writes: %d ok,"
	              " %d lost, %d transient, %d unknown (node killed); counter %lld on every node;"
	              " %d timeouts, %d early transient returns\n",
	              n, NODES, PER_NODE, (long long)seconds,
	              kill_node >= 0 ? ", one node killed a third in" : "", acked, lost, transient,
	              unknown, (long long)counter[0], timeouts, early);
	assert_int_equal(early, 0);
	assert_true(n > 0);
	/* every acknowledged write is there; of those whose node died before
	 * answering, some may be */
	assert_true(counter[0] >= acked && counter[0] <= acked + unknown);
}

static void contended_load(void **state)
{
	const char *env = getenv("LKS_GALERA_SECONDS");
	(void)state;
	run_load(env ? atoi(env) : 8, -1);
}

/* A node killed under load: clients on the others go on (the lease its
 * client held expires and is taken over), nothing granted twice, no
 * acknowledged write lost, and the node rejoins with the same data. */
static void node_killed_under_load(void **state)
{
	const char *env = getenv("LKS_GALERA_SECONDS");
	(void)state;
	run_load(env ? atoi(env) : 12, NODES - 1);
}

/* ---- a stale holder on a lagging node ----------------------------------- */

typedef struct stale_round {
	int round;
	atomic_int step; /* 1: A is inside its write; 2: B started acquiring; 3: B granted */
	int64_t b_fence, a_expired_ms;
	int b_rc, b_seen;
	bool ordered; /* the takeover was ordered before the stale write */
	lks_lease *a_lease;
	lks_conn *watch;
} stale_round;

static int stale_write(lks_conn *c, int64_t fence, void *arg)
{
	stale_round *r = arg;
	lks_value p[2] = {LKS_INT(r->round), LKS_INT(fence)};
	lks_value name = LKS_TEXT("g:stale");
	int64_t n, seen = 0;
	int64_t until = mono_ms() + 20000;
	atomic_store(&r->step, 1);
	/* stall until node 2's takeover is ordered in the cluster: node 3,
	 * which does not lag (the large transaction is its own), shows it */
	while (atomic_load(&r->step) < 2 && mono_ms() < until)
		usleep(1000);
	while (seen <= fence && mono_ms() < until) {
		/* node 3 applies writes after their commit: the row may not be
		 * there yet (no row: LKS_NOT_FOUND, seen 0) */
		int rc = lks_conn_query_int(r->watch, "SELECT fence FROM lks_lease WHERE name = ?", &name, 1,
		                            &seen);
		if (rc == LKS_NOT_FOUND)
			seen = 0;
		else if (rc)
			fail_msg("watch on node 3: %s", lks_conn_errmsg(r->watch));
		if (seen <= fence)
			usleep(2000);
	}
	r->ordered = seen > fence;
	usleep((useconds_t)write_delay_ms * 1000);
	return lks_conn_query_int(c, "INSERT INTO g_stale (round, fence) VALUES (?, ?)", p, 2, &n);
}

static int look_for_stale(lks_conn *c, int64_t fence, void *arg)
{
	stale_round *r = arg;
	lks_value p = LKS_INT(r->round);
	int64_t n = 0;
	(void)fence;
	int rc = lks_conn_query_int(c, "SELECT count(*) FROM g_stale WHERE round = ?", &p, 1, &n);
	r->b_seen = (int)n;
	return rc;
}

typedef struct taker {
	stale_round *r;
	lks_conn *b, *big;
} taker;

static void *take_over(void *arg)
{
	taker *t = arg;
	stale_round *r = t->r;
	lks_lease *l = NULL;
	while (atomic_load(&r->step) == 0)
		usleep(1000);
	if (atomic_load(&r->step) < 0)
		return NULL; /* the stale holder never got inside its write */
	/* A's lease (600 ms) expires inside its write; then node 3 commits a
	 * large transaction that nodes 1 and 2 apply before anything after it.
	 * The takeover waits up to 20 s: under the ThreadSanitizer pass a wait
	 * of 5 s once ran out while node 2 applied it. */
	while (mono_ms() < r->a_expired_ms)
		usleep(5000);
	if (lks_conn_exec(t->big, "UPDATE g_big SET v = v + 1"))
		fail_msg("big transaction: %s", lks_conn_errmsg(t->big));
	atomic_store(&r->step, 2);
	r->b_rc = lks_lease_acquire(&l, t->b, "g:stale", 5000, 20000, NULL);
	if (r->b_rc == LKS_OK) {
		r->b_fence = lks_lease_fence(l);
		atomic_store(&r->step, 3);
		if (lks_lease_fenced_write(t->b, l, look_for_stale, r) != LKS_OK)
			fail_msg("new holder's read: %s", lks_conn_errmsg(t->b));
		lks_lease_release(t->b, l);
		lks_lease_free(l);
	}
	return NULL;
}

static void stale_holder_on_lagging_node(void **state)
{
	const char *env = getenv("LKS_GALERA_ROUNDS");
	int rounds = env ? atoi(env) : 8, lost = 0, before = 0, stale = 0, gaps = 0;
	char q[128];
	lks_conn *a = open_node(0), *a2 = open_node(0), *b = open_node(1), *big = open_node(2);
	lks_conn *watch = open_node(2);
	int ordered = 0;
	(void)state;
	exec_ok(a, "CREATE OR REPLACE TABLE g_stale (round int PRIMARY KEY, fence bigint NOT NULL)");
	exec_ok(a, "CREATE OR REPLACE TABLE g_big (id int PRIMARY KEY, v int NOT NULL)");
	snprintf(q, sizeof q, "INSERT INTO g_big SELECT seq, 0 FROM seq_1_to_%d", big_rows);
	exec_ok(a, q);
	for (int i = 0; i < rounds; i++) {
		stale_round r = {.round = i, .watch = watch};
		taker t = {.r = &r, .b = b, .big = big};
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		pthread_t th;
		int64_t written;
		int rc;
		if (lks_lease_acquire(&r.a_lease, a, "g:stale", 600, 5000, NULL))
			fail_msg("round %d: acquire on node 1: %s", i, lks_conn_errmsg(a));
		r.a_expired_ms = mono_ms() + 600 + 100;
		pthread_create(&th, NULL, take_over, &t);
		rc = lks_lease_fenced_write(a, r.a_lease, stale_write, &r);
		if (atomic_load(&r.step) == 0) {
			atomic_store(&r.step, -1);
			pthread_join(th, NULL);
			fail_msg("round %d: the guard refused a fresh grant: %s (%s)", i, lks_strerror(rc),
			         lks_conn_errmsg(a));
		}
		if (rc != LKS_OK && rc != LKS_LOST)
			fail_msg("round %d: stale holder's fenced write: %s (%s)", i, lks_strerror(rc),
			         lks_conn_errmsg(a));
		/* node 1 tells the takeover at once, lagging or not */
		if (atomic_load(&r.step) == 3) {
			assert_int_equal(lks_lease_inspect(a2, "g:stale", &info), LKS_OK);
			assert_true(info.fence >= r.b_fence);
			assert_int_equal(lks_lease_renew(a2, r.a_lease, 600), LKS_LOST);
		}
		pthread_join(th, NULL);
		ordered += r.ordered;
		assert_int_equal(r.b_rc, LKS_OK);
		/* the takeover's fence is above the stale one: usually the next;
		 * once, under the ThreadSanitizer pass's load, two above (cause not
		 * known yet; counted and printed). Safety holds either way: fences
		 * only grow and the stale write is checked below */
		assert_true(r.b_fence > lks_lease_fence(r.a_lease));
		gaps += r.b_fence != lks_lease_fence(r.a_lease) + 1;
		snprintf(q, sizeof q, "SELECT count(*) FROM g_stale WHERE round = %d", i);
		written = synced_int(a2, q);
		if (rc == LKS_LOST) {
			lost++;
			assert_int_equal(written, 0); /* refused: nothing written */
		} else if (written == 1 && r.b_seen == 1 && !r.ordered) {
			before++; /* committed before the takeover, which saw it: fine */
		} else {
			stale++; /* acknowledged after the takeover was ordered */
		}
		lks_lease_free(r.a_lease);
	}
	print_message("    %d rounds (%d with the takeover ordered first): %d stale writes refused"
	              " (LKS_LOST), %d committed before the takeover, %d committed after it;"
	              " %d takeovers skipped a fence\n",
	              rounds, ordered, lost, before, stale, gaps);
	assert_int_equal(stale, 0);
	lks_conn_close(a);
	lks_conn_close(a2);
	lks_conn_close(b);
	lks_conn_close(big);
	lks_conn_close(watch);
}

/* ---- reads that decide, on a lagging node -------------------------------- */

/* Node 2 ends node 1's grant right after node 3 committed a large
 * transaction, so node 1 has both still to apply. A plain read on node 1
 * may show the old grant (counted, to show the lag is real); inspect and
 * renew through lockstock must not. */
static void reads_see_latest_on_lagging_node(void **state)
{
	const char *env = getenv("LKS_GALERA_ROUNDS");
	int rounds = env ? atoi(env) : 8, plain_stale = 0;
	lks_conn *a = open_node(0), *a2 = open_node(0), *b = open_node(1), *big = open_node(2);
	lks_value name = LKS_TEXT("g:read");
	(void)state;
	for (int i = 0; i < rounds; i++) {
		lks_lease *l = NULL;
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		int64_t plain = 0;
		if (lks_lease_acquire(&l, a, "g:read", 60000, 5000, NULL))
			fail_msg("acquire on node 1: %s", lks_conn_errmsg(a));
		exec_ok(big, "UPDATE g_big SET v = v + 1");
		assert_int_equal(lks_lease_force_release(b, "g:read", &info), LKS_OK);
		assert_int_equal(info.fence, lks_lease_fence(l));
		if (lks_conn_query_int(a2, "SELECT fence FROM lks_lease WHERE name = ?", &name, 1, &plain))
			fail_msg("plain read: %s", lks_conn_errmsg(a2));
		plain_stale += plain == lks_lease_fence(l);
		assert_int_equal(lks_lease_inspect(a2, "g:read", &info), LKS_OK);
		assert_false(info.held);
		assert_int_equal(info.fence, lks_lease_fence(l) + 1);
		assert_int_equal(lks_lease_renew(a, l, 60000), LKS_LOST);
		assert_int_equal(lks_lease_release(a, l), LKS_LOST);
		lks_lease_free(l);
	}
	print_message("    %d rounds: a plain read on the lagging node showed the old grant %d times;"
	              " inspect, renew and release never did\n", rounds, plain_stale);
	lks_conn_close(a);
	lks_conn_close(a2);
	lks_conn_close(b);
	lks_conn_close(big);
}

/* ---- processed once and cleanup across nodes --------------------------- */

typedef struct once_caller {
	int node;
	const char *key;
	atomic_int *runs;
	int rc, replayed, retries;
} once_caller;

static int ledger_effect(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	once_caller *oc = arg;
	lks_value p[2] = {LKS_TEXT(oc->key), LKS_INT(lks_once_fence(ctx))};
	int64_t n;
	int rc = lks_conn_query_int(c, "INSERT INTO g_once_ledger (request, fence) VALUES (?, ?)", p,
	                            2, &n);
	atomic_fetch_add(oc->runs, 1);
	return rc == LKS_NOT_FOUND ? lks_once_set_result(ctx, 201, "ok", 2) : rc;
}

static void *once_call(void *arg)
{
	once_caller *oc = arg;
	lks_conn *c = open_node(oc->node);
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	o.wait_ms = 30000;
	/* a certification conflict is the cluster's answer to a race: a
	 * service retries it, as it would a deadlock */
	while ((oc->rc = lks_once_run(c, "g", oc->key, &o, ledger_effect, oc, &r)) ==
	           LKS_ETRANSIENT && oc->retries < 20)
		oc->retries++;
	oc->replayed = r.replayed;
	lks_once_result_clear(&r);
	lks_conn_close(c);
	return NULL;
}

static void once_across_nodes(void **state)
{
	lks_conn *c = open_node(0);
	(void)state;
	exec_ok(c, "DROP TABLE IF EXISTS g_once_ledger");
	exec_ok(c, "CREATE TABLE g_once_ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
	           " request VARCHAR(64) NOT NULL, fence BIGINT NOT NULL)");
	if (lks_once_install(c, NULL))
		fail_msg("once install: %s", lks_conn_errmsg(c));
	for (int k = 0; k < 4; k++) {
		char key[32], q[128];
		atomic_int runs = 0;
		once_caller oc[NODES * PER_NODE];
		pthread_t th[NODES * PER_NODE];
		int replayed = 0, retries = 0;
		snprintf(key, sizeof key, "order-%d", k);
		/* the suite runs twice on one cluster (ASan, TSan): a record of
		 * the earlier run would make every caller a replay */
		int frc = lks_once_forget(c, NULL, "g", key);
		if (frc != LKS_OK && frc != LKS_NOT_FOUND)
			fail_msg("forget %s: %s", key, lks_conn_errmsg(c));
		for (int i = 0; i < NODES * PER_NODE; i++) {
			oc[i] = (once_caller){.node = i % NODES, .key = key, .runs = &runs};
			assert_int_equal(pthread_create(&th[i], NULL, once_call, &oc[i]), 0);
		}
		for (int i = 0; i < NODES * PER_NODE; i++) {
			pthread_join(th[i], NULL);
			if (oc[i].rc != LKS_OK)
				fail_msg("key %s, caller %d on node %d: %s", key, i, oc[i].node,
				         lks_strerror(oc[i].rc));
			replayed += oc[i].replayed;
			retries += oc[i].retries;
		}
		snprintf(q, sizeof q, "SELECT COUNT(*) FROM g_once_ledger WHERE request = '%s'", key);
		for (int n = 0; n < NODES; n++) {
			lks_conn *cn = open_node(n);
			assert_int_equal(synced_int(cn, q), 1);
			lks_conn_close(cn);
		}
		assert_int_equal(replayed, NODES * PER_NODE - 1);
		print_message("    %s: 1 run, %d replays, %d retried after a certification conflict;"
		              " committed runs %d\n", key, replayed, retries, atomic_load(&runs));
	}
	lks_conn_close(c);
}

/* Cleanup is refused on a Galera node for now: under grants on other
 * nodes it left a grant hanging (see the README). Nothing is deleted. */
static void purge_refused_on_galera(void **state)
{
	lks_conn *c = open_node(1);
	int64_t n = -1;
	(void)state;
	assert_int_equal(lks_lease_purge(c, 0, 10, &n), LKS_EINVAL);
	assert_int_equal(n, 0);
	assert_non_null(strstr(lks_conn_errmsg(c), "Galera"));
	lks_conn_close(c);
}

static int setup(void **state)
{
	lks_conn *c = open_node(0);
	(void)state;
	if (lks_lease_install(c) != LKS_OK)
		fail_msg("install: %s", lks_conn_errmsg(c));
	lks_conn_close(c);
	return 0;
}

/* ---- semaphores, sets, renewer and election across nodes ------------- */

typedef struct prim_worker {
	pthread_t th;
	int node, id;
	atomic_int *sem_inside, *set_inside;
	int sem_max_seen, overlaps, errors, grants, reconnects;
} prim_worker;

static int sem_max;
static pthread_mutex_t prim_mu = PTHREAD_MUTEX_INITIALIZER;

/* A connection the node closed (on a starved machine a Galera node may end
 * a session it aborted) is an outage, not a wrong answer: reconnect, count
 * it and say so, up to 3 times; the invariants are asserted all the same. */
static bool reconnect(prim_worker *w, lks_conn **c, const char *what)
{
	fprintf(stderr, "# %s on node %d: connection lost (%s); reconnecting\n", what, w->node + 1,
	        lks_conn_errmsg(*c));
	lks_conn_close(*c);
	*c = NULL;
	if (++w->reconnects > 3 || lks_conn_open(c, urls[w->node]) != LKS_OK) {
		w->errors++;
		return false;
	}
	return true;
}

static void *prim_loop(void *arg)
{
	prim_worker *w = arg;
	lks_conn *c = NULL;
	const char *sets[3][2] = {{"g:s0", "g:s1"}, {"g:s1", "g:s2"}, {"g:s2", "g:s0"}};
	if (lks_conn_open(&c, urls[w->node]) != LKS_OK) {
		w->errors++;
		lks_conn_close(c);
		return NULL;
	}
	for (int i = 0; i < 12; i++) {
		lks_lease *l = NULL, *set[2] = {NULL, NULL};
		int rc = lks_semaphore_acquire(&l, c, "g:sem", 2, 20000, 60000, NULL);
		if (rc == LKS_ECONN) {
			if (!reconnect(w, &c, "semaphore"))
				break;
			continue;
		}
		if (rc == LKS_OK) {
			int now = atomic_fetch_add(w->sem_inside, 1) + 1;
			pthread_mutex_lock(&prim_mu);
			if (now > sem_max)
				sem_max = now;
			pthread_mutex_unlock(&prim_mu);
			usleep(2000); /* work while holding a permit */
			atomic_fetch_sub(w->sem_inside, 1);
			if (lks_lease_release(c, l) != LKS_OK)
				w->errors++;
			lks_lease_free(l);
			w->grants++;
		} else if (rc != LKS_ETRANSIENT) {
			fprintf(stderr, "ERROR: semaphore on node %d: %s\n", w->node + 1, lks_conn_errmsg(c));
			w->errors++;
		}
		/* overlapping sets of two names, from every node */
		rc = lks_lease_acquire_all(set, c, sets[(w->id + i) % 3], 2, 20000, 60000, NULL);
		if (rc == LKS_ECONN) {
			if (!reconnect(w, &c, "set"))
				break;
			continue;
		}
		if (rc == LKS_OK) {
			if (atomic_fetch_add(&w->set_inside[(w->id + i) % 3], 1) != 0)
				w->overlaps++;
			atomic_fetch_sub(&w->set_inside[(w->id + i) % 3], 1);
			if (lks_lease_release_all(c, set, 2) != LKS_OK)
				w->errors++;
			lks_lease_free(set[0]);
			lks_lease_free(set[1]);
		} else if (rc != LKS_ETRANSIENT) {
			fprintf(stderr, "ERROR: set on node %d: %s\n", w->node + 1, lks_conn_errmsg(c));
			w->errors++;
		}
	}
	lks_conn_close(c);
	return NULL;
}

static void count_lost(const lks_lease *l, int status, void *arg)
{
	(void)l;
	(void)status;
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* The new primitives through every node: a semaphore of 2 permits never
 * has 3 holders; sets of names overlapping across nodes never share a name;
 * a renewer on node 1 keeps 50 leases past their TTL; a leader elected
 * through node 1 is seen, with its value, through node 2. */
static void primitives_across_nodes(void **state)
{
	prim_worker w[NODES * 2];
	atomic_int sem_inside = 0, lost = 0;
	static atomic_int set_inside[3];
	lks_conn *c1 = open_node(0), *c2 = open_node(1);
	lks_renewer *r = NULL;
	lks_renewer_options ro = LKS_RENEWER_OPTIONS_INIT;
	static lks_lease *held[50];
	lks_lease *office = NULL;
	lks_lease_info leader = LKS_LEASE_INFO_INIT, seen = LKS_LEASE_INFO_INIT;
	char value[32], name[32];
	size_t len = 0;
	int64_t t0;
	(void)state;
	for (int i = 0; i < NODES * 2; i++) {
		w[i] = (prim_worker){.node = i % NODES, .id = i, .sem_inside = &sem_inside,
		                     .set_inside = set_inside};
		pthread_create(&w[i].th, NULL, prim_loop, &w[i]);
	}
	/* meanwhile: the renewer on node 1, TTL 6 s: a renewal every 2 s
	 * rides out a stall of a few seconds on a starved machine */
	ro.on_lost = count_lost;
	ro.arg = &lost;
	assert_int_equal(lks_renewer_start(&r, c1, NULL, &ro), LKS_OK);
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "g:renew:%d", i);
		int rc = lks_lease_acquire(&held[i], c1, name, 6000, 10000, NULL);
		/* a node that closed the connection (a starved machine): an
		 * outage, reconnected and said, at most 3 times in all */
		for (int k = 0; rc == LKS_ECONN && k < 3; k++) {
			fprintf(stderr, "# renewer's handle on node 1: %s; reconnecting\n", lks_conn_errmsg(c1));
			if ((rc = lks_conn_reset(c1)) == LKS_OK)
				rc = lks_lease_acquire(&held[i], c1, name, 6000, 10000, NULL);
		}
		if (rc != LKS_OK) {
			for (int k = 0; k < NODES * 2; k++) /* the workers point into this frame */
				pthread_join(w[k].th, NULL);
			fail_msg("acquire %s on node 1: %s", name, lks_conn_errmsg(c1));
		}
		assert_int_equal(lks_renewer_add(r, held[i]), LKS_OK);
	}
	t0 = mono_ms();
	for (int i = 0; i < NODES * 2; i++)
		pthread_join(w[i].th, NULL);
	while (mono_ms() - t0 < 13000) /* past two TTLs of every lease */
		usleep(50000);
	assert_int_equal(atomic_load(&lost), 0);
	for (int i = 0; i < 50; i++) {
		assert_false(lks_lease_is_lost(held[i]));
		assert_int_equal(lks_lease_release(c1, held[i]), LKS_OK);
		lks_lease_free(held[i]);
	}
	lks_renewer_stop(r);
	int grants = 0, reconnects = 0;
	for (int i = 0; i < NODES * 2; i++) {
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].overlaps, 0);
		grants += w[i].grants;
		reconnects += w[i].reconnects;
	}
	assert_true(grants > 0);
	assert_true(sem_max <= 2);
	/* election: office through node 1, seen through node 2 */
	assert_int_equal(lks_election_campaign(&office, c1, "g:office", "n1", 2, 20000, 10000, NULL), LKS_OK);
	seen.held = 0;
	seen.fence = 0;
	assert_int_equal(lks_election_observe(c2, "g:office", &seen, 10000, &leader, value, sizeof value, &len),
	                 LKS_OK);
	assert_true(leader.held);
	assert_int_equal(leader.fence, lks_lease_fence(office));
	assert_int_equal(len, 2);
	assert_int_equal(lks_election_resign(c1, office), LKS_OK);
	lks_lease_free(office);
	print_message("    %d semaphore grants through 3 nodes, at most %d holders of 2 permits"
	              " (%d reconnects); 50 leases kept by one renewer; a leader seen across nodes\n",
	              grants, sem_max, reconnects);
	lks_conn_close(c1);
	lks_conn_close(c2);
}

/* lockstock check through a node: the operator's verdict on the cluster */
static const char *cli_path;

static void check_command_through_a_node(void **state)
{
	char cmd[2048];
	(void)state;
	snprintf(cmd, sizeof cmd, "LOCKSTOCK_URL='%s' %s check --duration 3s --workers 6 >&2", urls[1], cli_path);
	assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(contended_load),
		cmocka_unit_test(check_command_through_a_node),
		cmocka_unit_test(primitives_across_nodes),
		cmocka_unit_test(stale_holder_on_lagging_node),
		cmocka_unit_test(reads_see_latest_on_lagging_node),
		cmocka_unit_test(once_across_nodes),
		cmocka_unit_test(purge_refused_on_galera),
		cmocka_unit_test(node_killed_under_load), /* last: it restarts node 3 */
	};
	const char *env = getenv("LKS_GALERA_URLS");
	if (argc != 2) {
		fprintf(stderr, "usage: galera_test PATH-TO-LOCKSTOCK\n");
		return 1;
	}
	cli_path = argv[1];
	if (!env || sscanf(env, "%511s %511s %511s", urls[0], urls[1], urls[2]) != 3) {
		/* never turn a missing cluster into skipped tests */
		fprintf(stderr, "FAILED: LKS_GALERA_URLS must name three Galera nodes;"
		                " scripts/test.sh starts them (scripts/common.sh galera_cluster)\n");
		return 1;
	}
	if (getenv("LKS_GALERA_DELAY_MS"))
		write_delay_ms = atoi(getenv("LKS_GALERA_DELAY_MS"));
	if (getenv("LKS_GALERA_BIG_ROWS"))
		big_rows = atoi(getenv("LKS_GALERA_BIG_ROWS"));
	if (getenv("LKS_TEST_FILTER")) /* for development: one test by name */
		cmocka_set_test_filter(getenv("LKS_TEST_FILTER"));
	lks_library_init();
	return cmocka_run_group_tests_name("galera", tests, setup, NULL);
}
