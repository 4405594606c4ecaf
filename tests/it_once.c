/* Integration: processed once (issue #18). Each effect is a row in a
 * ledger, written by the callback in the run's own transaction, so "once"
 * is counted on the server. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "it.h"

static void make_ledger(lks_conn *c)
{
	t_exec(c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	              ? "CREATE TABLE ledger (id bigserial PRIMARY KEY, request text NOT NULL,"
	                " fence bigint NOT NULL)"
	              : "CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
	                " request VARCHAR(255) NOT NULL, fence BIGINT NOT NULL) ENGINE=InnoDB");
}

static int64_t ledger_rows(lks_conn *c, const char *request)
{
	lks_value p = LKS_TEXT(request);
	int64_t n = -1;
	assert_int_equal(t_int(c, &n, "SELECT COUNT(*) FROM ledger WHERE request = ?", &p, 1), LKS_OK);
	return n;
}

typedef struct charge {
	const char *request;
	atomic_int runs;
	int fail_with;      /* the callback returns this (0: succeeds) */
	size_t result_len;  /* bytes of result to set */
	atomic_int *gate;   /* non-NULL: wait inside until *gate is set */
	atomic_int inside;
} charge;

static int charge_once(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	charge *ch = arg;
	char result[64];
	lks_value p[2] = {LKS_TEXT(ch->request), LKS_INT(lks_once_fence(ctx))};
	int64_t ignored;
	int rc;
	atomic_fetch_add(&ch->runs, 1);
	atomic_store(&ch->inside, 1);
	for (int i = 0; ch->gate && i < 6000 && !atomic_load(ch->gate); i++)
		usleep(10000);
	rc = t_int(c, &ignored, "INSERT INTO ledger (request, fence) VALUES (?, ?)", p, 2);
	if (rc != LKS_OK && rc != LKS_NOT_FOUND)
		return rc;
	if (ch->result_len > sizeof result) {
		char *big = calloc(1, ch->result_len);
		rc = lks_once_set_result(ctx, 413, big, ch->result_len);
		free(big);
		(void)rc; /* ignored on purpose: the run must still fail */
	} else {
		snprintf(result, sizeof result, "charged %s at %s", ch->request, lks_once_attempt_id(ctx));
		assert_int_equal(lks_once_set_result(ctx, 201, result, strlen(result)), LKS_OK);
	}
	return ch->fail_with;
}

/* first run, replay, fingerprint, failures, oversized result, bad input */
void once_runs_once_and_replays(void **state)
{
	fx *f = *state;
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0}, r2 = {0};
	charge ch = {.request = "order-1"};
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK); /* idempotent */
	make_ledger(f->c);
	o.fingerprint = "sha256:aaaa";
	o.fingerprint_len = 11;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-1", &o, charge_once, &ch, &r), LKS_OK);
	assert_int_equal(r.replayed, 0);
	assert_int_equal(r.code, 201);
	assert_true(r.fence > 0);
	assert_non_null(strstr((char *)r.data, "charged order-1"));
	assert_int_equal(ledger_rows(f->c, "order-1"), 1);
	/* again: the stored result, nothing ran */
	assert_int_equal(lks_once_run(f->c, "checkout", "order-1", &o, charge_once, &ch, &r2), LKS_OK);
	assert_int_equal(r2.replayed, 1);
	assert_int_equal(r2.code, 201);
	assert_int_equal(r2.fence, r.fence);
	assert_true(r2.completed_at_us > 1700000000LL * 1000000);
	assert_int_equal(r2.len, r.len);
	assert_memory_equal(r2.data, r.data, r.len);
	assert_int_equal(atomic_load(&ch.runs), 1);
	lks_once_result_clear(&r2);
	/* the same key in another scope is another request */
	assert_int_equal(lks_once_run(f->c, "refund", "order-1", NULL, charge_once, &ch, NULL), LKS_OK);
	assert_int_equal(ledger_rows(f->c, "order-1"), 2);
	/* another fingerprint: refused, nothing changed */
	o.fingerprint = "sha256:bbbb";
	assert_int_equal(lks_once_run(f->c, "checkout", "order-1", &o, charge_once, &ch, &r2),
	                 LKS_MISMATCH);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "fingerprint"));
	assert_int_equal(ledger_rows(f->c, "order-1"), 2);
	/* a failing callback: rolled back, not recorded, so it runs again */
	charge bad = {.request = "order-2", .fail_with = LKS_EDB};
	assert_int_equal(lks_once_run(f->c, "checkout", "order-2", NULL, charge_once, &bad, NULL), LKS_EDB);
	assert_int_equal(ledger_rows(f->c, "order-2"), 0);
	assert_int_equal(lks_once_run(f->c, "checkout", "order-2", NULL, charge_once, &bad, NULL), LKS_EDB);
	assert_int_equal(atomic_load(&bad.runs), 2);
	/* with record_failures: the effect rolled back, the failure replayed */
	lks_once_options rf = LKS_ONCE_OPTIONS_INIT;
	rf.record_failures = 1;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-2", &rf, charge_once, &bad, &r2), LKS_OK);
	assert_int_equal(r2.failed, 1);
	assert_int_equal(r2.replayed, 0);
	assert_int_equal(ledger_rows(f->c, "order-2"), 0);
	lks_once_result_clear(&r2);
	assert_int_equal(lks_once_run(f->c, "checkout", "order-2", &rf, charge_once, &bad, &r2), LKS_OK);
	assert_int_equal(r2.failed, 1);
	assert_int_equal(r2.replayed, 1);
	assert_int_equal(r2.code, 201);
	assert_int_equal(atomic_load(&bad.runs), 3);
	lks_once_result_clear(&r2);
	/* a result over the limit: refused before COMMIT, nothing committed */
	lks_once_options small = LKS_ONCE_OPTIONS_INIT;
	charge huge = {.request = "order-3", .result_len = 4096};
	small.max_result_bytes = 1024;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-3", &small, charge_once, &huge, NULL),
	                 LKS_EINVAL);
	assert_int_equal(ledger_rows(f->c, "order-3"), 0);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_once WHERE request_key = 'order-3'"), 0);
	/* bad input: a clear error, nothing written */
	char big[300];
	memset(big, 'k', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	lks_once_options badfp = LKS_ONCE_OPTIONS_INIT;
	badfp.fingerprint = big;
	badfp.fingerprint_len = LKS_ONCE_FINGERPRINT_MAX + 1;
	lks_once_options badv = LKS_ONCE_OPTIONS_INIT;
	badv.version = 99;
	lks_once_options badttl = LKS_ONCE_OPTIONS_INIT;
	badttl.claim_ttl_ms = -1;
	struct {
		const char *scope, *key;
		const lks_once_options *o;
		lks_once_fn fn;
	} bads[] = {{NULL, "k", NULL, charge_once},  {"", "k", NULL, charge_once},
	            {"s", NULL, NULL, charge_once},  {"s", "", NULL, charge_once},
	            {"s", big, NULL, charge_once},   {"s", "bad\xff", NULL, charge_once},
	            {"s", "k", &badfp, charge_once}, {"s", "k", &badv, charge_once},
	            {"s", "k", &badttl, charge_once}, {"s", "k", NULL, NULL}};
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		assert_int_equal(lks_once_run(f->c, bads[i].scope, bads[i].key, bads[i].o, bads[i].fn, &ch,
		                              NULL),
		                 LKS_EINVAL);
		assert_true(strlen(lks_conn_errmsg(f->c)) > 0);
	}
	assert_int_equal(lks_once_run(NULL, "s", "k", NULL, charge_once, &ch, NULL), LKS_EINVAL);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_once"), 3);
	assert_int_equal(lks_once_install(f->c, "bad name"), LKS_EINVAL);
	lks_once_result_clear(&r);
}

/* A table of the wrong shape is refused at install, with what is wrong. */
void once_install_refuses_wrong_shape(void **state)
{
	fx *f = *state;
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "CREATE TABLE once_nokey (scope text, request_key text, fingerprint bytea,"
	                   " code integer, result bytea, fence bigint, failed boolean,"
	                   " completed_at timestamptz)"
	                 : "CREATE TABLE once_nokey (scope VARBINARY(255), request_key VARBINARY(255),"
	                   " fingerprint VARBINARY(1024), code INT, result MEDIUMBLOB, fence BIGINT,"
	                   " failed TINYINT, completed_at DATETIME(6), id INT PRIMARY KEY)");
	assert_int_equal(lks_once_install(f->c, "once_nokey"), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "primary key"));
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL ? "CREATE TABLE once_cols (scope text)"
	                                                 : "CREATE TABLE once_cols (scope VARBINARY(255))");
	assert_int_equal(lks_once_install(f->c, "once_cols"), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "without column"));
}

typedef struct dup_caller {
	const char *url;
	charge *ch;
	int rc, replayed;
} dup_caller;

static void *call_same_key(void *arg)
{
	dup_caller *d = arg;
	lks_conn *c = t_open(d->url);
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	o.wait_ms = 60000;
	d->rc = lks_once_run(c, "checkout", "order-dup", &o, charge_once, d->ch, &r);
	d->replayed = r.replayed;
	lks_once_result_clear(&r);
	lks_conn_close(c);
	return NULL;
}

/* Many callers with one key at once, over many rounds: exactly one effect
 * per key; one caller ran it, every other got the replay. */
void once_concurrent_duplicates_run_once(void **state)
{
	fx *f = *state;
	enum { THREADS = 8, ROUNDS = 5 };
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	make_ledger(f->c);
	for (int round = 0; round < ROUNDS; round++) {
		char request[32];
		charge ch = {.request = request};
		dup_caller d[THREADS];
		pthread_t th[THREADS];
		int ran = 0, replayed = 0;
		snprintf(request, sizeof request, "order-dup");
		t_exec(f->c, "DELETE FROM lks_once");
		t_exec(f->c, "DELETE FROM ledger");
		for (int i = 0; i < THREADS; i++) {
			d[i] = (dup_caller){.url = f->url, .ch = &ch};
			pthread_create(&th[i], NULL, call_same_key, &d[i]);
		}
		for (int i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(d[i].rc, LKS_OK);
			ran += !d[i].replayed;
			replayed += d[i].replayed;
		}
		assert_int_equal(ran, 1);
		assert_int_equal(replayed, THREADS - 1);
		assert_int_equal(atomic_load(&ch.runs), 1);
		assert_int_equal(ledger_rows(f->c, "order-dup"), 1);
	}
}

typedef struct blocked_run {
	const char *url;
	charge ch;
	atomic_int gate;
	int rc;
} blocked_run;

static void *run_blocked(void *arg)
{
	blocked_run *b = arg;
	lks_conn *c = t_open(b->url);
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	o.claim_ttl_ms = 500; /* it outlives its claim inside the transaction */
	b->rc = lks_once_run(c, "checkout", "order-slow", &o, charge_once, &b->ch, NULL);
	lks_conn_close(c);
	return NULL;
}

static int count_claim(const lks_lease_info *info, void *arg)
{
	if (!strncmp(info->name, "lks-once:", 9))
		(*(int *)arg)++;
	return 0;
}

static int held_claims(lks_conn *c)
{
	int n = 0;
	assert_int_equal(lks_lease_list(c, count_claim, &n), LKS_OK);
	return n;
}

/* A concurrent duplicate without a wait is busy (409); with a wait it gets
 * the replay once the first run commits, even when that run outlived its
 * claim's TTL inside its transaction: the fenced transaction holds the claim
 * row, so a takeover waits for it and then finds the record. */
void once_busy_then_replay(void **state)
{
	fx *f = *state;
	blocked_run b = {.url = f->url, .ch = {.request = "order-slow"}};
	lks_once_options now = LKS_ONCE_OPTIONS_INIT, wait = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	charge second = {.request = "order-slow"};
	pthread_t th;
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	make_ledger(f->c);
	b.ch.gate = &b.gate;
	pthread_create(&th, NULL, run_blocked, &b);
	for (int i = 0; i < 6000 && !atomic_load(&b.ch.inside); i++)
		usleep(10000);
	assert_true(atomic_load(&b.ch.inside));
	assert_int_equal(lks_once_run(f->c, "checkout", "order-slow", &now, charge_once, &second, NULL),
	                 LKS_BUSY);
	/* observed: the first claim expires on the server while its run waits */
	for (int i = 0; i < 6000 && held_claims(f->c) > 0; i++)
		usleep(10000);
	assert_int_equal(held_claims(f->c), 0);
	atomic_store(&b.gate, 1);
	wait.wait_ms = 60000;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-slow", &wait, charge_once, &second, &r),
	                 LKS_OK);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, LKS_OK);
	assert_int_equal(r.replayed, 1);
	assert_int_equal(atomic_load(&second.runs), 0);
	assert_int_equal(ledger_rows(f->c, "order-slow"), 1);
	lks_once_result_clear(&r);
}

static int record_only(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	(void)c;
	(void)arg;
	return lks_once_set_result(ctx, 1, "x", 1);
}

/* Purge: records older than the retention go, in batches; a key used again
 * after its record was purged is a new request. */
void once_purge_in_batches(void **state)
{
	fx *f = *state;
	int64_t deleted = -1;
	lks_once_result r = {0};
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	for (int i = 0; i < 5; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(lks_once_run(f->c, "jobs", key, NULL, record_only, NULL, NULL), LKS_OK);
	}
	/* kept: younger than an hour */
	assert_int_equal(lks_once_purge(f->c, NULL, 3600000, 2, &deleted), LKS_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 2, &deleted), LKS_OK);
	assert_int_equal(deleted, 5);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_once"), 0);
	assert_int_equal(lks_once_run(f->c, "jobs", "k0", NULL, record_only, NULL, &r), LKS_OK);
	assert_int_equal(r.replayed, 0);
	lks_once_result_clear(&r);
	assert_int_equal(lks_once_purge(f->c, NULL, -1, 2, &deleted), LKS_EINVAL);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 0, &deleted), LKS_EINVAL);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 10001, &deleted), LKS_EINVAL);
}
