/* Integration: processed once (issue #18). Each effect is a row in a
 * ledger, written by the callback in the run's own transaction, so "once"
 * is counted on the server. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdbool.h>
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
	bool then_small;    /* after a refused oversize result, set a small one */
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
		if (ch->then_small) /* #29 item 6: a later result does not undo the refusal */
			assert_int_equal(lks_once_set_result(ctx, 200, "ok", 2), LKS_OK);
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
	huge.then_small = true;
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
	/* the caller's open transaction: refused, nothing written (a rollback
	 * would undo the record but not the claim's fence) */
	assert_int_equal(lks_conn_exec(f->c, "BEGIN"), LKS_OK);
	assert_int_equal(lks_once_run(f->c, "s", "in-tx", NULL, charge_once, &ch, NULL), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "transaction"));
	assert_int_equal(lks_conn_exec(f->c, "ROLLBACK"), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_once WHERE request_key = 'in-tx'"), 0);
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
	/* #29 item 2: keys shorter than the longest key lockstock writes fail
	 * at the record's INSERT, or are cut and never found again */
	if (T_BACKEND == LKS_BACKEND_MYSQL) {
		t_exec(f->c, "CREATE TABLE once_short (scope VARBINARY(255), request_key VARBINARY(16),"
		             " fingerprint VARBINARY(1024), code INT, result MEDIUMBLOB, fence BIGINT,"
		             " failed TINYINT, completed_at DATETIME(6), PRIMARY KEY (scope, request_key))");
		assert_int_equal(lks_once_install(f->c, "once_short"), LKS_EINVAL);
		assert_non_null(strstr(lks_conn_errmsg(f->c), "request_key is varbinary(16)"));
	}
	/* #29 item 3: a steps table without its key would keep a second row
	 * per key, and a retry would load the older step */
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "CREATE TABLE once_st_steps (scope text, request_key text, step text,"
	                   " data bytea, fence bigint, saved_at timestamptz)"
	                 : "CREATE TABLE once_st_steps (scope VARBINARY(255), request_key VARBINARY(255),"
	                   " step VARBINARY(64), data MEDIUMBLOB, fence BIGINT, saved_at DATETIME(6))");
	assert_int_equal(lks_once_install(f->c, "once_st"), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "once steps table"));
	assert_non_null(strstr(lks_conn_errmsg(f->c), "primary key"));
	if (T_BACKEND == LKS_BACKEND_MYSQL) {
		t_exec(f->c, "DROP TABLE once_st_steps");
		t_exec(f->c, "CREATE TABLE once_st_steps (scope VARBINARY(255), request_key VARBINARY(255),"
		             " step VARBINARY(8), data MEDIUMBLOB, fence BIGINT, saved_at DATETIME(6),"
		             " PRIMARY KEY (scope, request_key))");
		assert_int_equal(lks_once_install(f->c, "once_st"), LKS_EINVAL);
		assert_non_null(strstr(lks_conn_errmsg(f->c), "step is varbinary(8)"));
	}
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
	lks_once_result r = {0};
	/* #30: the defaults (NULL options): a duplicate waits and replays */
	d->rc = lks_once_run(c, "checkout", "order-dup", NULL, charge_once, d->ch, &r);
	d->replayed = r.replayed;
	lks_once_result_clear(&r);
	lks_conn_close(c);
	return NULL;
}

/* 8 threads of this process call the key at once; *ran and *replayed
 * count the outcomes, *errors everything else. */
static void eight_callers(const char *url, charge *ch, int *ran, int *replayed, int *errors)
{
	enum { THREADS = 8 };
	dup_caller d[THREADS];
	pthread_t th[THREADS];
	*ran = *replayed = *errors = 0;
	for (int i = 0; i < THREADS; i++) {
		d[i] = (dup_caller){.url = url, .ch = ch};
		pthread_create(&th[i], NULL, call_same_key, &d[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (d[i].rc != LKS_OK)
			(*errors)++;
		else if (d[i].replayed)
			(*replayed)++;
		else
			(*ran)++;
	}
}

/* 4 processes x 8 threads call one key at once, over rounds: exactly one
 * effect per round; one caller ran it, the 31 others got the replay. */
void once_concurrent_duplicates_run_once(void **state)
{
	fx *f = *state;
	enum { PROCS = 4, ROUNDS = 3 };
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	make_ledger(f->c);
	for (int round = 0; round < ROUNDS; round++) {
		charge ch = {.request = "order-dup"};
		int go[2], ran = 0, replayed = 0, errors = 0;
		pid_t kids[PROCS - 1];
		t_exec(f->c, "DELETE FROM lks_once");
		t_exec(f->c, "DELETE FROM ledger");
		assert_int_equal(pipe(go), 0);
		for (int k = 0; k < PROCS - 1; k++) {
			kids[k] = fork();
			assert_true(kids[k] >= 0);
			if (kids[k] == 0) {
				char b;
				int r1, r2, e;
				close(go[1]);
				if (read(go[0], &b, 1) != 0) /* EOF: all start together */
					_exit(100);
				eight_callers(f->url, &ch, &r1, &r2, &e);
				_exit(e ? 100 : r1); /* how many ran here: 0 or 1 */
			}
		}
		close(go[0]);
		close(go[1]); /* go */
		eight_callers(f->url, &ch, &ran, &replayed, &errors);
		assert_int_equal(errors, 0);
		for (int k = 0; k < PROCS - 1; k++) {
			int status;
			assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
			ran += WEXITSTATUS(status);
		}
		assert_int_equal(ran, 1);
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
	now.wait_ms = 0; /* busy on request */
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
	int64_t first_fence = 0;
	lks_once_result r = {0};
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	for (int i = 0; i < 5; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(lks_once_run(f->c, "jobs", key, NULL, record_only, NULL, &r), LKS_OK);
		if (i == 0)
			first_fence = r.fence;
		lks_once_result_clear(&r);
	}
	/* kept: younger than an hour */
	assert_int_equal(lks_once_purge(f->c, NULL, 3600000, 2, &deleted), LKS_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 2, &deleted), LKS_OK);
	assert_int_equal(deleted, 5);
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_once"), 0);
	/* the claims' lease rows go too; the key's next claim fences higher */
	assert_int_equal(lks_lease_purge(f->c, 0, 2, &deleted), LKS_OK);
	assert_int_equal(deleted, 5);
	assert_int_equal(lks_once_run(f->c, "jobs", "k0", NULL, record_only, NULL, &r), LKS_OK);
	assert_int_equal(r.replayed, 0);
	assert_true(r.fence > first_fence);
	lks_once_result_clear(&r);
	assert_int_equal(lks_once_purge(f->c, NULL, -1, 2, &deleted), LKS_EINVAL);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 0, &deleted), LKS_EINVAL);
	assert_int_equal(lks_once_purge(f->c, NULL, 0, 10001, &deleted), LKS_EINVAL);
}

/* ---- crashes, stalls and a cut COMMIT ---------------------------------- */

static int effect_then_hang(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	int *ready = arg; /* a pipe: tell the parent the effect is written */
	lks_value p[2] = {LKS_TEXT("order-crash"), LKS_INT(lks_once_fence(ctx))};
	int64_t ignored;
	if (t_int(c, &ignored, "INSERT INTO ledger (request, fence) VALUES (?, ?)", p, 2) > 0)
		_exit(3);
	if (write(ready[1], "x", 1) != 1)
		_exit(4);
	for (;;)
		pause(); /* SIGKILLed here, inside the transaction */
}

static pid_t fork_run(const char *url, lks_once_fn fn, int ready[2], int64_t claim_ttl_ms)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lks_conn *c = NULL;
		lks_once_options o = LKS_ONCE_OPTIONS_INIT;
		o.claim_ttl_ms = claim_ttl_ms;
		if (lks_conn_open(&c, url))
			_exit(2);
		int rc = lks_once_run(c, "checkout", "order-crash", &o, fn, ready, NULL);
		_exit(rc == LKS_LOST ? 79 : rc == LKS_OK ? 0 : 5);
	}
	return pid;
}

/* A holder SIGKILLed inside its callback: its transaction (effect and all)
 * is rolled back with its connection; the next caller, once the claim
 * expires, runs it once. One effect in all. */
void once_holder_killed_inside_callback(void **state)
{
	fx *f = *state;
	int ready[2], status;
	char b;
	lks_once_options wait = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	charge next = {.request = "order-crash"};
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	make_ledger(f->c);
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork_run(f->url, effect_then_hang, ready, 1000);
	assert_int_equal(read(ready[0], &b, 1), 1); /* its effect is written, uncommitted */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	wait.wait_ms = 60000;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-crash", &wait, charge_once, &next, &r),
	                 LKS_OK);
	assert_int_equal(r.replayed, 0);
	assert_int_equal(atomic_load(&next.runs), 1);
	assert_int_equal(ledger_rows(f->c, "order-crash"), 1);
	lks_once_result_clear(&r);
	close(ready[0]);
	close(ready[1]);
}

/* Stop the process right after its claim is granted, before its fenced
 * transaction: it outlives the claim while it is stopped. */
static void stop_at_grant(const lks_event *ev, void *arg)
{
	(void)arg;
	if (ev->kind == LKS_EVENT_ACQUIRED)
		raise(SIGSTOP);
}

static int count_claims(const lks_lease_info *info, void *arg)
{
	if (!strncmp(info->name, "lks-once:", 9))
		(*(int *)arg)++;
	return 0;
}

/* A holder stopped past its claim while another caller takes over and
 * completes, then resumed: it gets the other's result, never runs the
 * callback; one effect. */
void once_stalled_holder_is_lost(void **state)
{
	fx *f = *state;
	int status, held = 1;
	lks_once_options wait = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	charge other = {.request = "order-crash"};
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	make_ledger(f->c);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lks_conn *c = NULL;
		lks_once_options o = LKS_ONCE_OPTIONS_INIT;
		charge mine = {.request = "order-crash"};
		o.claim_ttl_ms = 500;
		if (lks_conn_open(&c, f->url) || lks_conn_set_event_hook(c, stop_at_grant, NULL))
			_exit(2);
		lks_once_result res = {0};
		int rc = lks_once_run(c, "checkout", "order-crash", &o, charge_once, &mine, &res);
		/* 10: it found the other's record (the replay); 79: LKS_LOST */
		_exit(rc == LKS_LOST ? 79 : rc == LKS_OK && res.replayed ? 10 : rc == LKS_OK ? 0 : 5);
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid); /* stopped at its grant */
	assert_true(WIFSTOPPED(status));
	/* observed: its claim expires on the server */
	for (int i = 0; i < 6000 && held; i++) {
		held = 0;
		assert_int_equal(lks_lease_list(f->c, count_claims, &held), LKS_OK);
		if (held)
			usleep(10000);
	}
	assert_int_equal(held, 0);
	wait.wait_ms = 60000;
	assert_int_equal(lks_once_run(f->c, "checkout", "order-crash", &wait, charge_once, &other, &r),
	                 LKS_OK);
	assert_int_equal(r.replayed, 0);
	kill(pid, SIGCONT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	/* resumed, it finds the record before its transaction and replays it
	 * (had it been stopped inside, its guard would refuse it: LKS_LOST) */
	assert_int_equal(WEXITSTATUS(status), 10);
	assert_int_equal(ledger_rows(f->c, "order-crash"), 1);
	lks_once_result_clear(&r);
}

static int slow_commit_effect(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	lks_value p = LKS_INT(lks_once_fence(ctx));
	int64_t ignored;
	(void)arg;
	int rc = t_int(c, &ignored, "INSERT INTO slow_ledger VALUES (?)", &p, 1);
	return rc == LKS_NOT_FOUND ? LKS_OK : rc;
}

typedef struct commit_killer {
	const char *url;
	int64_t session;
} commit_killer;

/* Terminate the session once it is seen running its COMMIT. */
static void *kill_in_commit(void *arg)
{
	commit_killer *k = arg;
	lks_conn *c = t_open(k->url);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld"
	                          " AND state = 'active' AND query = 'COMMIT'", (long long)k->session);
	for (int i = 0; i < 6000 && t_int1(c, sql) == 0; i++)
		usleep(5000);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)::int", (long long)k->session);
	t_int1(c, sql);
	lks_conn_close(c);
	return NULL;
}

/* The connection cut during COMMIT: LKS_EUNKNOWN; calling again with the
 * key resolves it, and there is exactly one effect. PostgreSQL only: a
 * deferred constraint trigger holds COMMIT open, which MySQL cannot. */
void once_cut_commit_then_retry(void **state)
{
	fx *f = *state;
	lks_conn *victim;
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	commit_killer k = {.url = f->url};
	pthread_t th;
	int rc;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL || T_POOLED) {
		print_message("    PostgreSQL without a pooler only (a deferred trigger, one session)\n");
		return;
	}
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	t_exec(f->c, "CREATE TABLE slow_ledger (fence bigint)");
	t_exec(f->c, "CREATE FUNCTION slow_ledger_fn() RETURNS trigger LANGUAGE plpgsql AS"
	             " $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$");
	t_exec(f->c, "CREATE CONSTRAINT TRIGGER slow_ledger_tr AFTER INSERT ON slow_ledger"
	             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_ledger_fn()");
	victim = t_open(f->url);
	k.session = t_session_id(victim);
	o.claim_ttl_ms = 1000;
	pthread_create(&th, NULL, kill_in_commit, &k);
	rc = lks_once_run(victim, "jobs", "cut", &o, slow_commit_effect, NULL, NULL);
	pthread_join(th, NULL);
	assert_int_equal(rc, LKS_EUNKNOWN);
	lks_conn_close(victim);
	/* the retry resolves it: here COMMIT had not landed, so it runs */
	o.wait_ms = 60000;
	assert_int_equal(lks_once_run(f->c, "jobs", "cut", &o, slow_commit_effect, NULL, &r), LKS_OK);
	assert_int_equal(r.replayed, 0);
	lks_once_result_clear(&r);
	assert_int_equal(lks_once_run(f->c, "jobs", "cut", &o, slow_commit_effect, NULL, &r), LKS_OK);
	assert_int_equal(r.replayed, 1);
	lks_once_result_clear(&r);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM slow_ledger"), 1);
}

/* #18 item 2: steps for effects outside the database. Progress is saved in
 * fenced transactions of its own on the caller's lease; a holder that lost
 * its lease cannot overwrite it; whoever takes over sees the last step and
 * resumes; the record's transaction deletes the step. */
void once_steps_resume_after_takeover(void **state)
{
	fx *f = *state;
	lks_lease *l = NULL, *l2 = NULL;
	lks_once_result d = {0};
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char step[LKS_ONCE_STEP_MAX + 1], long_step[LKS_ONCE_STEP_MAX + 2];
	assert_int_equal(lks_once_install(f->c, NULL), LKS_OK);
	assert_int_equal(lks_lease_acquire(&l, f->c, "pay:order-9", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_once_lookup(f->c, "pay", "order-9", NULL, NULL), LKS_NOT_FOUND);
	assert_int_equal(lks_once_step_load(f->c, "pay", "order-9", NULL, step, &d), LKS_NOT_FOUND);
	/* before the external call, and after it */
	assert_int_equal(lks_once_step_save(f->c, l, "pay", "order-9", NULL, "charging", "idem-1", 6), LKS_OK);
	assert_int_equal(lks_once_step_load(f->c, "pay", "order-9", NULL, step, &d), LKS_OK);
	assert_string_equal(step, "charging");
	assert_int_equal(d.len, 6);
	assert_memory_equal(d.data, "idem-1", 6);
	assert_int_equal(d.fence, lks_lease_fence(l));
	lks_once_result_clear(&d);
	assert_int_equal(lks_once_step_save(f->c, l, "pay", "order-9", NULL, "charged", "pay-42", 6), LKS_OK);
	/* the holder stalls and loses its lease: its saves are refused */
	assert_int_equal(lks_lease_force_release(f->c, "pay:order-9", &info), LKS_OK);
	assert_int_equal(lks_once_step_save(f->c, l, "pay", "order-9", NULL, "refunded", NULL, 0), LKS_LOST);
	/* whoever takes over resumes after the last step */
	assert_int_equal(lks_lease_acquire(&l2, f->c, "pay:order-9", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_once_step_load(f->c, "pay", "order-9", NULL, step, &d), LKS_OK);
	assert_string_equal(step, "charged");
	assert_memory_equal(d.data, "pay-42", 6);
	lks_once_result_clear(&d);
	assert_int_equal(lks_once_complete(f->c, l2, "pay", "order-9", NULL, 200, "ok", 2), LKS_OK);
	assert_int_equal(lks_once_step_load(f->c, "pay", "order-9", NULL, step, &d), LKS_NOT_FOUND);
	assert_int_equal(lks_once_lookup(f->c, "pay", "order-9", NULL, &d), LKS_OK);
	assert_int_equal(d.code, 200);
	lks_once_result_clear(&d);
	/* completed: the stale holder cannot record it again */
	assert_int_equal(lks_once_complete(f->c, l, "pay", "order-9", NULL, 200, "ok", 2), LKS_CONFLICT);
	/* bad input */
	memset(long_step, 's', sizeof long_step - 1);
	long_step[sizeof long_step - 1] = '\0';
	assert_int_equal(lks_once_step_save(f->c, l2, "pay", "k", NULL, "", NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_once_step_save(f->c, l2, "pay", "k", NULL, long_step, NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_once_step_save(f->c, NULL, "pay", "k", NULL, "s", NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_once_step_save(f->c, l2, "pay", "k", NULL, "s", NULL, 5), LKS_EINVAL);
	assert_int_equal(lks_once_step_load(f->c, "pay", "k", NULL, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_release(f->c, l2), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(l2);
}
