/* Integration: optimistic CAS, reads, retry helper, caller transactions. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "it.h"

static void make_items(lks_conn *c)
{
	t_exec(c, "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL,"
	          " note varchar(100), small_version int NOT NULL DEFAULT 0,"
	          " version bigint NOT NULL DEFAULT 0)");
	t_exec(c, "INSERT INTO items (id, qty, note) VALUES (1, 10, 'a'), (2, 20, NULL)");
}

static const lks_row_ref item1 = {"items", "id", "version", {LKS_TYPE_INT, 1, NULL}};

void cas_applied_conflict_not_found(void **state)
{
	fx *f = *state;
	const char *cols[] = {"qty", "note"};
	lks_value vals[] = {LKS_INT(9), LKS_TEXT("it's \"quoted\"; DROP TABLE items")};
	lks_row_ref missing = item1;
	const char *const *texts;
	int64_t v = -7;
	make_items(f->c);

	assert_int_equal(lks_cas_update(f->c, &item1, 0, cols, vals, 2, &v), LKS_OK);
	assert_int_equal(v, 1);
	/* same expected version again: somebody (we) already won */
	vals[0] = LKS_INT(8);
	v = -7;
	assert_int_equal(lks_cas_update(f->c, &item1, 0, cols, vals, 2, &v), LKS_CONFLICT);
	assert_int_equal(v, 1);
	missing.key = LKS_INT(99);
	assert_int_equal(lks_cas_update(f->c, &missing, 0, cols, vals, 2, &v), LKS_NOT_FOUND);
	assert_int_equal(lks_cas_read(f->c, &missing, NULL, 0, &v, NULL), LKS_NOT_FOUND);

	/* the applied values landed, the rejected ones did not */
	assert_int_equal(lks_cas_read(f->c, &item1, cols, 2, &v, &texts), LKS_OK);
	assert_int_equal(v, 1);
	assert_string_equal(texts[0], "9");
	assert_string_equal(texts[1], "it's \"quoted\"; DROP TABLE items");
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM items"), 2);
}

void cas_read_null_and_text_key(void **state)
{
	fx *f = *state;
	const char *cols[] = {"note", "qty"};
	lks_row_ref r2 = {"items", "id", "version", LKS_INT(2)};
	lks_row_ref bykey = {"kv", "k", "version", LKS_TEXT("alpha")};
	const char *const *texts;
	lks_value nullv = LKS_NULLV;
	int64_t v;
	make_items(f->c);
	assert_int_equal(lks_cas_read(f->c, &r2, cols, 2, &v, &texts), LKS_OK);
	assert_null(texts[0]);
	assert_string_equal(texts[1], "20");
	/* a NULL value can be written */
	assert_int_equal(lks_cas_update(f->c, &item1, 0, cols, &nullv, 1, &v), LKS_OK);
	assert_int_equal(lks_cas_read(f->c, &item1, cols, 1, &v, &texts), LKS_OK);
	assert_null(texts[0]);
	/* text keys, long values */
	t_exec(f->c, "CREATE TABLE kv (k varchar(64) PRIMARY KEY, val text, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO kv VALUES ('alpha', 'x', 41)");
	char big[5000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	const char *vc[] = {"val"};
	lks_value bv = LKS_TEXT(big);
	assert_int_equal(lks_cas_update(f->c, &bykey, 41, vc, &bv, 1, &v), LKS_OK);
	assert_int_equal(v, 42);
	assert_int_equal(lks_cas_read(f->c, &bykey, vc, 1, &v, &texts), LKS_OK);
	assert_int_equal(strlen(texts[0]), sizeof big - 1);
}

void cas_inside_caller_transaction(void **state)
{
	fx *f = *state;
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	int64_t v;
	make_items(f->c);
	t_exec(f->c, "BEGIN");
	assert_int_equal(lks_cas_update(f->c, &item1, 0, cols, &one, 1, &v), LKS_OK);
	assert_int_equal(v, 1);
	/* visible inside the transaction, and the library did not commit it */
	assert_int_equal(t_int1(f->c, "SELECT version FROM items WHERE id = 1"), 1);
	t_exec(f->c, "ROLLBACK");
	assert_int_equal(t_int1(f->c, "SELECT version FROM items WHERE id = 1"), 0);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM items WHERE id = 1"), 10);
}

void cas_version_overflow(void **state)
{
	fx *f = *state;
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	lks_row_ref small = {"items", "id", "small_version", LKS_INT(1)};
	int64_t v;
	make_items(f->c);
	t_exec(f->c, "UPDATE items SET small_version = 2147483647, version = 9223372036854775806 WHERE id = 1");
	/* int column at its maximum: the server refuses, we say overflow */
	assert_int_equal(lks_cas_update(f->c, &small, 2147483647, cols, &one, 1, &v), LKS_EOVERFLOW);
	assert_int_equal(lks_conn_errcode(f->c), LKS_EOVERFLOW);
	/* bigint: one step to the maximum is fine, the next is an error */
	assert_int_equal(lks_cas_update(f->c, &item1, INT64_MAX - 1, cols, &one, 1, &v), LKS_OK);
	assert_true(v == INT64_MAX);
	assert_int_equal(lks_cas_update(f->c, &item1, INT64_MAX, cols, &one, 1, &v), LKS_EOVERFLOW);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM items WHERE id = 1"), 1);
	assert_int_equal(t_int1(f->c, "SELECT small_version FROM items WHERE id = 1"), 2147483647);
}

/* ---- retry: N threads x M increments through read-decide-write ---- */

typedef struct incr {
	const char *url;
	pthread_barrier_t *bar;
	int m;
	int failures;
	lks_retry_stats total;
} incr;

static int increment(lks_conn *c, int attempt, void *arg)
{
	const char *cols[] = {"qty"};
	const char *const *texts;
	int64_t v, qty;
	int rc;
	(void)attempt;
	(void)arg;
	if ((rc = lks_cas_read(c, &item1, cols, 1, &v, &texts)))
		return rc;
	qty = strtoll(texts[0], NULL, 10);
	lks_value nv = LKS_INT(qty + 1);
	return lks_cas_update(c, &item1, v, cols, &nv, 1, NULL);
}

static void *incr_thread(void *arg)
{
	incr *w = arg;
	lks_conn *c = NULL;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT;
	o.max_attempts = 1000;
	o.timeout_ms = 60000;
	o.base_delay_us = 100;
	o.max_delay_us = 5000;
	if (lks_conn_open(&c, w->url)) {
		w->failures = w->m;
		lks_conn_close(c);
		pthread_barrier_wait(w->bar);
		return NULL;
	}
	pthread_barrier_wait(w->bar);
	for (int i = 0; i < w->m; i++) {
		lks_retry_stats st;
		if (lks_retry(c, &o, increment, NULL, &st) != LKS_OK)
			w->failures++;
		w->total.attempts += st.attempts;
		w->total.conflicts += st.conflicts;
	}
	lks_conn_close(c);
	return NULL;
}

void retry_threads_no_lost_update(void **state)
{
	enum { N = 8, M = 60 };
	fx *f = *state;
	pthread_t th[N];
	incr w[N];
	pthread_barrier_t bar;
	int conflicts = 0, attempts = 0;
	make_items(f->c);
	t_exec(f->c, "UPDATE items SET qty = 0 WHERE id = 1");
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (incr){.url = f->url, .bar = &bar, .m = M};
		pthread_create(&th[i], NULL, incr_thread, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
		conflicts += w[i].total.conflicts;
		attempts += w[i].total.attempts;
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM items WHERE id = 1"), N * M);
	assert_int_equal(t_int1(f->c, "SELECT version FROM items WHERE id = 1"), N * M);
	assert_int_equal(attempts, N * M + conflicts);
	print_message("    %d increments, %d attempts, %d conflicts retried\n", N * M, attempts, conflicts);
}

static int count_calls(lks_conn *c, int attempt, void *arg)
{
	lks_row_ref missing = item1;
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	(*(int *)arg)++;
	missing.key = LKS_INT(404);
	(void)attempt;
	return lks_cas_update(c, &missing, 0, cols, &one, 1, NULL);
}

void retry_never_retries_not_found(void **state)
{
	fx *f = *state;
	int calls = 0;
	lks_retry_stats st;
	make_items(f->c);
	assert_int_equal(lks_retry(f->c, NULL, count_calls, &calls, &st), LKS_NOT_FOUND);
	assert_int_equal(calls, 1);
	assert_int_equal(st.attempts, 1);
	assert_int_equal(st.gave_up, 0);
}

/* The server's own transient errors (deadlock, serialization failure) are
 * retried in a fresh transaction. */
static int transient_then_apply(lks_conn *c, int attempt, void *arg)
{
	const char *cols[] = {"qty"};
	lks_value v = LKS_INT(77);
	int rc;
	(void)arg;
	if ((rc = lks_conn_exec(c, "BEGIN")))
		return rc;
	if (attempt <= 2) {
		rc = lks_conn_exec(c, T_BACKEND == LKS_BACKEND_POSTGRESQL
		                          ? "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '40001'; END $$"
		                          : "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'simulated deadlock'");
		return rc; /* left the transaction open: the helper rolls back */
	}
	if ((rc = lks_cas_update(c, &item1, 0, cols, &v, 1, NULL)))
		return rc;
	return lks_conn_exec(c, "COMMIT");
}

void retry_transient_server_errors(void **state)
{
	fx *f = *state;
	lks_retry_stats st;
	make_items(f->c);
	assert_int_equal(lks_retry(f->c, NULL, transient_then_apply, NULL, &st), LKS_OK);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(st.transient, 2);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM items WHERE id = 1"), 77);
}

static int always_conflict(lks_conn *c, int attempt, void *arg)
{
	(void)c; (void)attempt; (void)arg;
	return LKS_CONFLICT;
}

void retry_gives_up_on_attempts_and_deadline(void **state)
{
	fx *f = *state;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT;
	lks_retry_stats st;
	o.max_attempts = 4;
	o.base_delay_us = 10;
	o.max_delay_us = 100;
	assert_int_equal(lks_retry(f->c, &o, always_conflict, NULL, &st), LKS_CONFLICT);
	assert_int_equal(st.attempts, 4);
	assert_int_equal(st.conflicts, 4);
	assert_int_equal(st.gave_up, LKS_CONFLICT);
	o.max_attempts = 1000000;
	o.timeout_ms = 50;
	o.base_delay_us = 1000;
	o.max_delay_us = 2000;
	assert_int_equal(lks_retry(f->c, &o, always_conflict, NULL, &st), LKS_TIMEOUT);
	assert_int_equal(st.gave_up, LKS_TIMEOUT);
	assert_true(st.attempts > 1);
}

/* Statements are prepared once per connection and reused: the server's own
 * count of prepared statements does not grow with the number of calls. */
void statements_prepared_once(void **state)
{
	fx *f = *state;
	const char *cols[] = {"qty"};
	int64_t v = 0, before, after;
	lks_lease *l = NULL;
	make_items(f->c);
	const char *count = T_BACKEND == LKS_BACKEND_POSTGRESQL
	                        ? "SELECT count(*) FROM pg_prepared_statements"
	                        : "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS"
	                          " WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'";
	for (int round = 0; round < 2; round++) {
		before = t_int1(f->c, count);
		for (int i = 0; i < 50; i++) {
			lks_value q = LKS_INT(i);
			assert_int_equal(lks_cas_update(f->c, &item1, v, cols, &q, 1, &v), LKS_OK);
			assert_int_equal(lks_lease_acquire(&l, f->c, "p", 30000, 0, NULL), LKS_OK);
			assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
			lks_lease_free(l);
		}
		after = t_int1(f->c, count);
		if (round == 1) /* warmed up: 150 calls, no new prepares */
			assert_int_equal(after, before);
	}
}

/* #30: CAS with the default retry options under contention on one row:
 * 8 and 32 threads, 200 sales each (fewer under TSan and valgrind:
 * LKS_TEST_SALES, LKS_TEST_SELLERS); none gives up, no sale is lost. */
typedef struct seller {
	const char *url;
	pthread_barrier_t *bar;
	int sales, gave_up;
	int64_t worst_us;
} seller;

static void *sell_with_defaults(void *arg)
{
	seller *s = arg;
	lks_conn *c = NULL;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT; /* as the README's program */
	if (lks_conn_open(&c, s->url)) {
		s->gave_up = s->sales;
		lks_conn_close(c);
		pthread_barrier_wait(s->bar);
		return NULL;
	}
	pthread_barrier_wait(s->bar);
	for (int i = 0; i < s->sales; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (lks_retry(c, &o, increment, NULL, NULL) != LKS_OK)
			s->gave_up++;
		clock_gettime(CLOCK_MONOTONIC, &b);
		int64_t us = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
		if (us > s->worst_us)
			s->worst_us = us;
	}
	lks_conn_close(c);
	return NULL;
}

void retry_defaults_never_give_up(void **state)
{
	fx *f = *state;
	const char *env = getenv("LKS_TEST_SALES"), *most = getenv("LKS_TEST_SELLERS");
	int sales = env ? atoi(env) : 200;
	make_items(f->c);
	/* 8, then 32 sellers; under TSan and valgrind, whose clients run many
	 * times slower than a service's (the deadline is the service's), 8 */
	for (int round = 0; round < (most && atoi(most) < 32 ? 1 : 2); round++) {
		int n = round ? 32 : 8, gave_up = 0;
		int64_t worst = 0;
		pthread_t th[32];
		seller s[32];
		pthread_barrier_t bar;
		t_exec(f->c, "UPDATE items SET qty = 0, version = 0 WHERE id = 1");
		pthread_barrier_init(&bar, NULL, (unsigned)n);
		for (int i = 0; i < n; i++) {
			s[i] = (seller){.url = f->url, .bar = &bar, .sales = sales};
			pthread_create(&th[i], NULL, sell_with_defaults, &s[i]);
		}
		for (int i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			gave_up += s[i].gave_up;
			worst = s[i].worst_us > worst ? s[i].worst_us : worst;
		}
		pthread_barrier_destroy(&bar);
		print_message("    %d threads x %d sales, default retry options: %d gave up, slowest"
		              " sale %lld ms\n", n, sales, gave_up, (long long)(worst / 1000));
		assert_int_equal(gave_up, 0);
		assert_int_equal(t_int1(f->c, "SELECT qty FROM items WHERE id = 1"), n * sales);
	}
}

/* #30: a statement written once for both databases: `?` placeholders,
 * rows and text back (NULL as NULL), the affected count of a write; bad
 * arguments refused. */
void query_rows_with_portable_placeholders(void **state)
{
	fx *f = *state;
	lks_result *r = NULL;
	lks_value p[3] = {LKS_INT(7), LKS_TEXT("seven?"), LKS_NULLV};
	t_exec(f->c, "CREATE TABLE notes (id int PRIMARY KEY, body varchar(40), extra varchar(10))");
	T_OK(f->c, lks_conn_query(&r, f->c, "INSERT INTO notes (id, body, extra) VALUES (?, ?, ?)", p, 3));
	assert_int_equal(lks_result_columns(r), 0);
	assert_int_equal(lks_result_affected(r), 1);
	lks_result_free(r);
	T_OK(f->c, lks_conn_query(&r, f->c, "SELECT id, body, extra, '?' FROM notes WHERE id = ?", p, 1));
	assert_int_equal(lks_result_rows(r), 1);
	assert_int_equal(lks_result_columns(r), 4);
	assert_string_equal(lks_result_text(r, 0, 0), "7");
	assert_string_equal(lks_result_text(r, 0, 1), "seven?");
	assert_null(lks_result_text(r, 0, 2));
	assert_string_equal(lks_result_text(r, 0, 3), "?");
	assert_null(lks_result_text(r, 1, 0)); /* out of range */
	assert_null(lks_result_text(r, 0, 4));
	lks_result_free(r);
	/* lks_conn_query_int takes the same statement text */
	int64_t n = 0;
	T_OK(f->c, lks_conn_query_int(f->c, "SELECT count(*) FROM notes WHERE body = ?", p + 1, 1, &n));
	assert_int_equal(n, 1);
	/* bad input: refused, nothing run */
	assert_int_equal(lks_conn_query(NULL, f->c, "SELECT 1", NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_conn_query(&r, f->c, NULL, NULL, 0), LKS_EINVAL);
	assert_null(r);
	assert_int_equal(lks_conn_query(&r, f->c, "", NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_conn_query(&r, f->c, "SELECT ?", NULL, 1), LKS_EINVAL);
	assert_int_equal(lks_conn_query(&r, NULL, "SELECT 1", NULL, 0), LKS_EINVAL);
	assert_int_equal(lks_conn_query(&r, f->c, "SELECT nope FROM nowhere", NULL, 0), LKS_EDB);
	assert_null(r);
	lks_result_free(NULL);
	assert_int_equal(lks_result_rows(NULL), 0);
}
