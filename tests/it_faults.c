/* Integration: bad input changes nothing; a server that goes away mid-call
 * is a connection error, never a success; adopted native connections. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "it.h"
#ifdef LKS_WITH_MYSQL
#include "lockstock-mysql.h"
#endif
#ifdef LKS_WITH_PG
#include "lockstock-pg.h"
#endif

static int64_t lease_rows(lks_conn *c)
{
	return t_int1(c, "SELECT count(*) FROM lks_lease");
}

void bad_input_changes_nothing(void **state)
{
	fx *f = *state;
	char huge[10 * 1024], longname[LKS_LEASE_NAME_MAX + 2];
	const char *bad_idents[] = {"x; DROP TABLE y", "it\"ems", "it`ems", "items'", "",
	                            "1items", "a.b.c", "items ", huge, "ite\tms",
	                            "\0items; DROP TABLE y" /* a NUL byte ends it: empty */};
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	lks_lease *l = NULL;
	int64_t v;
	memset(huge, 'a', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	t_exec(f->c, "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO items VALUES (1, 5, 3)");
	t_exec(f->c, "CREATE TABLE y (n int)");

	/* identifiers: every place a name goes */
	for (size_t i = 0; i < sizeof bad_idents / sizeof *bad_idents; i++) {
		lks_row_ref r = {"items", "id", "version", LKS_INT(1)};
		const char *bc[] = {bad_idents[i]};
		r.table = bad_idents[i];
		assert_int_equal(lks_cas_update(f->c, &r, 3, cols, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_conn_errcode(f->c), LKS_EINVAL);
		assert_true(strlen(lks_conn_errmsg(f->c)) > 0);
		r.table = "items";
		r.key_column = bad_idents[i];
		assert_int_equal(lks_cas_update(f->c, &r, 3, cols, &one, 1, &v), LKS_EINVAL);
		r.key_column = "id";
		r.version_column = bad_idents[i];
		assert_int_equal(lks_cas_read(f->c, &r, NULL, 0, &v, NULL), LKS_EINVAL);
		r.version_column = "version";
		assert_int_equal(lks_cas_update(f->c, &r, 3, bc, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_lease_set_table(f->c, bad_idents[i]), LKS_EINVAL);
	}
	/* an embedded NUL ends the C string: "items\0; DROP" is just "items" */
	{
		lks_row_ref r = {"items", "id", "version", LKS_INT(1)};
		const char *dup[] = {"qty", "qty"}, *ver[] = {"version"}, *key[] = {"id"};
		lks_value two[] = {LKS_INT(1), LKS_INT(2)}, badtext = {LKS_TYPE_TEXT, 0, NULL};
		assert_int_equal(lks_cas_update(f->c, &r, 3, dup, two, 2, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &r, 3, ver, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &r, 3, key, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &r, 3, cols, &badtext, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &r, 3, cols, NULL, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &r, -1, cols, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, NULL, 3, cols, &one, 1, &v), LKS_EINVAL);
		r.key = LKS_NULLV;
		assert_int_equal(lks_cas_update(f->c, &r, 3, cols, &one, 1, &v), LKS_EINVAL);
		assert_int_equal(lks_cas_update(NULL, &r, 3, cols, &one, 1, &v), LKS_EINVAL);
	}
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM y"), 0);
	assert_int_equal(t_int1(f->c, "SELECT version FROM items"), 3);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM items"), 5);

	/* leases: names, TTLs, waits, NULLs */
	int64_t before = lease_rows(f->c);
	assert_int_equal(lks_lease_acquire(&l, f->c, "", 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, NULL, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, longname, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, huge, 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", 0, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", -5, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", LKS_LEASE_TTL_MAX_MS + 1, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", INT64_MAX, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", 1000, -1, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(NULL, f->c, "ok", 1000, 0, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_acquire(&l, NULL, "ok", 1000, 0, NULL), LKS_EINVAL);
	{
		lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		o.version = 99;
		assert_int_equal(lks_lease_acquire(&l, f->c, "ok", 1000, 0, &o), LKS_EINVAL);
		o = (lks_lease_acquire_options)LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		o.margin_ms = 1000;
		assert_int_equal(lks_lease_acquire(&l, f->c, "ok", 1000, 0, &o), LKS_EINVAL);
	}
	assert_null(l);
	assert_int_equal(lease_rows(f->c), before);
	l = NULL;
	lks_lease *ok = NULL;
	assert_int_equal(lks_lease_acquire(&ok, f->c, "ok", 1000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_renew(f->c, ok, 0), LKS_EINVAL);
	assert_int_equal(lks_lease_renew(f->c, ok, -1), LKS_EINVAL);
	assert_int_equal(lks_lease_renew(f->c, NULL, 1000), LKS_EINVAL);
	assert_int_equal(lks_lease_renew(NULL, ok, 1000), LKS_EINVAL);
	assert_int_equal(lks_lease_release(f->c, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_release(NULL, ok), LKS_EINVAL);
	assert_int_equal(lks_lease_fenced_write(f->c, ok, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_fenced_write(f->c, NULL, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_inspect(f->c, "", &(lks_lease_info){0}), LKS_EINVAL);
	assert_int_equal(lks_lease_inspect(f->c, "ok", NULL), LKS_EINVAL);
	/* a lease info of no known version is refused, and force release then
	 * frees nothing */
	{
		lks_lease_info bad = LKS_LEASE_INFO_INIT, good = LKS_LEASE_INFO_INIT;
		bad.version = 0;
		assert_int_equal(lks_lease_inspect(f->c, "ok", &bad), LKS_EINVAL);
		bad.version = LKS_LEASE_INFO_VERSION + 1;
		assert_int_equal(lks_lease_inspect(f->c, "ok", &bad), LKS_EINVAL);
		assert_int_equal(lks_lease_force_release(f->c, "ok", &bad), LKS_EINVAL);
		assert_int_equal(lks_lease_inspect(f->c, "ok", &good), LKS_OK);
		assert_int_equal(good.version, LKS_LEASE_INFO_VERSION);
		assert_true(good.held);
		assert_int_equal(good.fence, lks_lease_fence(ok));
	}
	assert_int_equal(lks_lease_list(f->c, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_autorenew_start(NULL, f->c, NULL, NULL), LKS_EINVAL);
	assert_int_equal(lks_lease_autorenew_start(ok, NULL, NULL, NULL), LKS_EINVAL);
	{
		lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
		ao.interval_ms = 5000; /* longer than the TTL */
		assert_int_equal(lks_lease_autorenew_start(ok, f->c, NULL, &ao), LKS_EINVAL);
		ao.interval_ms = 9223372036854776LL; /* * 1000 would overflow (issue 7.5) */
		assert_int_equal(lks_lease_autorenew_start(ok, f->c, NULL, &ao), LKS_EINVAL);
		ao.interval_ms = INT64_MAX;
		assert_int_equal(lks_lease_autorenew_start(ok, f->c, NULL, &ao), LKS_EINVAL);
		assert_int_equal(lks_lease_autorenew_start(ok, f->c, "mysql://nowhere:0/x", NULL), LKS_EINVAL);
	}
	/* still held, unchanged, after all that */
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	assert_int_equal(lks_lease_inspect(f->c, "ok", &info), LKS_OK);
	assert_true(info.held);
	assert_int_equal(info.fence, lks_lease_fence(ok));
	assert_int_equal(lks_lease_release(f->c, ok), LKS_OK);
	lks_lease_free(ok);
	assert_int_equal(lks_conn_exec(f->c, NULL), LKS_EINVAL);
	assert_int_equal(lks_conn_exec(f->c, ""), LKS_EINVAL);
	assert_int_equal(lks_conn_exec(NULL, "SELECT 1"), LKS_EINVAL);
	assert_int_equal(lks_retry(f->c, NULL, NULL, NULL, NULL), LKS_EINVAL);
	{
		lks_retry_options ro = LKS_RETRY_OPTIONS_INIT;
		ro.max_attempts = -1;
		assert_int_equal(lks_retry(f->c, &ro, (lks_attempt_fn)1, NULL, NULL), LKS_EINVAL);
		ro.max_attempts = 0; /* no limit needs a deadline */
		ro.timeout_ms = 0;
		assert_int_equal(lks_retry(f->c, &ro, (lks_attempt_fn)1, NULL, NULL), LKS_EINVAL);
	}
}

void bad_urls_and_servers(void **state)
{
	fx *f = *state;
	const char *bad[] = {
		"", "nonsense", "http://x/y", "mysql://u:p@host:99999/db", "mysql://u:p@host:0/db",
		"mysql://u:p@host:12ab/db", "mysql://[::1/db", "mysql://u:p@h/db?bogus=1",
		"mysql://u:p@h/db?connect_timeout=0", "mysql://u%zz@h/db", "mysql://h/a/b",
		"mysql://h/db?socket", "postgresql://[::1", "postgresql://h/db?nosuchparam=1",
		"postgresql://h:port/db", "mysql://u p@h/db"};
	char url[1024];
	lks_conn *c;
	int rc;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		c = NULL;
		rc = lks_conn_open(&c, bad[i]);
		if (rc != LKS_EINVAL)
			fail_msg("URL '%s': %s (%s)", bad[i], lks_strerror(rc), lks_conn_errmsg(c));
		assert_non_null(c);
		assert_true(strlen(lks_conn_errmsg(c)) > 0);
		/* a failed handle is safe to use: every call says not connected */
		assert_int_equal(lks_conn_exec(c, "SELECT 1"), LKS_ECONN);
		lks_conn_close(c);
	}
	assert_int_equal(lks_conn_open(&c, NULL), LKS_EINVAL);
	lks_conn_close(c);
	assert_int_equal(lks_conn_open(NULL, "mysql://h/db"), LKS_EINVAL);
	/* unreachable: a closed port on loopback */
	snprintf(url, sizeof url, "%s://lks:lkspw@127.0.0.1:1/lockstock",
	         T_BACKEND == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql");
	assert_int_equal(lks_conn_open(&c, url), LKS_ECONN);
	print_message("    unreachable: %s\n", lks_conn_errmsg(c));
	lks_conn_close(c);
	/* wrong password on the real server */
	const char *at = strchr(f->url, '@');
	const char *auth = strstr(f->url, "://") + 3;
	snprintf(url, sizeof url, "%.*snobody:wrongpw%s", (int)(auth - f->url), f->url, at);
	assert_int_equal(lks_conn_open(&c, url), LKS_ECONN);
	print_message("    wrong password: %s\n", lks_conn_errmsg(c));
	assert_non_null(strstr(lks_conn_errmsg(c), T_BACKEND == LKS_BACKEND_MYSQL ? "Access denied"
	                                           : T_POOLED ? "authentication failed" /* PgBouncer */
	                                                      : "password authentication failed"));
	lks_conn_close(c);
}

/* ---- the server goes away in the middle of a call ---- */

typedef struct killer {
	const char *url;
	int64_t session;
	int delay_ms;
} killer;

static void *kill_later(void *arg)
{
	killer *k = arg;
	usleep((useconds_t)k->delay_ms * 1000);
	t_kill_session(k->url, k->session);
	return NULL;
}

static int write_then_sleep(lks_conn *c, int64_t fence, void *arg)
{
	int64_t n;
	int rc;
	(void)fence;
	(void)arg;
	if ((rc = t_int(c, &n, "UPDATE items SET qty = qty - 1", NULL, 0)))
		return rc;
	return t_int(c, &n, t_sleep_sql(), NULL, 0); /* killed here */
}

void server_gone_mid_call(void **state)
{
	fx *f = *state;
	if (T_POOLED) /* it kills the server session of a call; a pooler shares them */
		skip();
	lks_conn *other = t_open(f->url);
	lks_conn *victim;
	lks_lease *l, *held, *none = NULL;
	killer k = {.url = f->url, .delay_ms = 300};
	pthread_t th;
	const char *cols[] = {"qty"};
	lks_value zero = LKS_INT(0);
	lks_row_ref r = {"items", "id", "version", LKS_INT(1)};
	int rc;
	t_exec(f->c, "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO items VALUES (1, 5, 0)");

	/* 1. inside a fenced write: the write is not committed */
	victim = t_open(f->url);
	l = NULL;
	assert_int_equal(lks_lease_acquire(&l, victim, "mid", 10000, 0, NULL), LKS_OK);
	k.session = t_session_id(victim);
	pthread_create(&th, NULL, kill_later, &k);
	rc = lks_lease_fenced_write(victim, l, write_then_sleep, NULL);
	pthread_join(th, NULL);
	assert_int_equal(rc, LKS_ECONN);
	assert_int_equal(t_int1(other, "SELECT qty FROM items"), 5);
	/* later calls on the dead handle fail too, never succeed */
	assert_int_equal(lks_lease_renew(victim, l, 10000), LKS_ECONN);
	lks_conn_close(victim);
	lks_lease_free(l);

	/* 2. while waiting for a held lease */
	held = NULL;
	assert_int_equal(lks_lease_acquire(&held, other, "busy", 10000, 0, NULL), LKS_OK);
	victim = t_open(f->url);
	k.session = t_session_id(victim);
	pthread_create(&th, NULL, kill_later, &k);
	rc = lks_lease_acquire(&none, victim, "busy", 1000, 3000, NULL);
	pthread_join(th, NULL);
	assert_int_equal(rc, LKS_ECONN);
	assert_null(none);
	lks_conn_close(victim);

	/* 3. a CAS blocked on a row lock */
	t_exec(other, "BEGIN");
	t_exec(other, "UPDATE items SET qty = qty WHERE id = 1");
	victim = t_open(f->url);
	k.session = t_session_id(victim);
	pthread_create(&th, NULL, kill_later, &k);
	rc = lks_cas_update(victim, &r, 0, cols, &zero, 1, NULL);
	pthread_join(th, NULL);
	assert_int_equal(rc, LKS_ECONN);
	t_exec(other, "ROLLBACK");
	assert_int_equal(t_int1(other, "SELECT qty FROM items"), 5);
	assert_int_equal(t_int1(other, "SELECT version FROM items"), 0);
	lks_conn_close(victim);
	assert_int_equal(lks_lease_release(other, held), LKS_OK);
	lks_lease_free(held);
	lks_conn_close(other);
}

/* ---- adopting the service's own connection ---- */

void adopt_native_connection(void **state)
{
	fx *f = *state;
	lks_conn *c = NULL;
	lks_lease *l = NULL;
	const char *cols[] = {"qty"};
	lks_value nine = LKS_INT(9);
	lks_row_ref r = {"items", "id", "version", LKS_INT(1)};
	int64_t v;
	t_exec(f->c, "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO items VALUES (1, 5, 0)");
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) {
#ifdef LKS_WITH_PG
		char libpq_url[1024];
		t_libpq_url(f->url, libpq_url, sizeof libpq_url);
		PGconn *pg = PQconnectdb(libpq_url);
		assert_int_equal(PQstatus(pg), CONNECTION_OK);
		assert_int_equal(lks_conn_adopt_pg(&c, pg), LKS_OK);
		if (T_POOLED) /* the option for adopted connections */
			assert_int_equal(lks_conn_set_prepare(c, 0), LKS_OK);
		assert_ptr_equal(lks_conn_pg(c), pg);
		assert_int_equal(lks_cas_update(c, &r, 0, cols, &nine, 1, &v), LKS_OK);
		assert_int_equal(lks_lease_acquire(&l, c, "adopted", 5000, 0, NULL), LKS_OK);
		assert_int_equal(lks_lease_renew(c, l, 5000), LKS_OK);
		/* no URL of its own: auto-renew needs one */
		assert_int_equal(lks_lease_autorenew_start(l, c, NULL, NULL), LKS_EINVAL);
		assert_int_equal(lks_lease_autorenew_start(l, c, f->url, NULL), LKS_OK);
		assert_int_equal(lks_lease_release(c, l), LKS_OK);
		lks_conn_close(c); /* borrowed: still open */
		assert_int_equal(PQstatus(pg), CONNECTION_OK);
		PGresult *res = PQexec(pg, "SELECT qty FROM items");
		assert_string_equal(PQgetvalue(res, 0, 0), "9");
		PQclear(res);
		PQfinish(pg);
#endif
	} else {
#ifdef LKS_WITH_MYSQL
		/* deliberately without CLIENT_FOUND_ROWS: matched rows come from
		 * mysql_info() */
		MYSQL *my = mysql_init(NULL);
		lks_conn *probe = t_open(f->url);
		char host[64], user[32], pw[32], db[64];
		unsigned int port;
		/* take the parts from the URL the fixture uses */
		assert_int_equal(sscanf(f->url, "mysql://%31[^:]:%31[^@]@%63[^:]:%u/%63s", user, pw, host,
		                        &port, db), 5);
		assert_non_null(mysql_real_connect(my, host, user, pw, db, port, NULL, 0));
		lks_conn_close(probe);
		assert_int_equal(lks_conn_adopt_mysql(&c, my), LKS_OK);
		assert_ptr_equal(lks_conn_mysql(c), my);
		assert_int_equal(lks_cas_update(c, &r, 0, cols, &nine, 1, &v), LKS_OK);
		assert_int_equal(v, 1);
		assert_int_equal(lks_cas_update(c, &r, 0, cols, &nine, 1, &v), LKS_CONFLICT);
		assert_int_equal(lks_lease_acquire(&l, c, "adopted", 5000, 0, NULL), LKS_OK);
		for (int i = 0; i < 20; i++) /* back-to-back renewals still match */
			assert_int_equal(lks_lease_renew(c, l, 5000), LKS_OK);
		/* a statement that matches a row without changing it counts as
		 * matched: read from mysql_info() ("Rows matched: 1 Changed: 0") */
		int64_t matched = -1;
		assert_int_equal(lks_conn_query_int(c, "UPDATE items SET qty = qty WHERE id = 1", NULL, 0, &matched), LKS_OK);
		assert_int_equal(matched, 1);
		assert_int_equal(lks_lease_autorenew_start(l, c, f->url, NULL), LKS_OK);
		assert_int_equal(lks_lease_release(c, l), LKS_OK);
		lks_conn_close(c);
		assert_int_equal(mysql_query(my, "SELECT 1"), 0);
		mysql_free_result(mysql_store_result(my));
		mysql_close(my);
#endif
	}
	lks_lease_free(l);
}

/* The connection dies while COMMIT is running: the outcome is unknown and
 * must be reported as such (LKS_EUNKNOWN), never as success. PostgreSQL only:
 * a deferred constraint trigger makes COMMIT itself slow, which MySQL cannot. */
static int insert_slow_commit(lks_conn *c, int64_t fence, void *arg)
{
	int64_t n;
	(void)arg;
	lks_value p = LKS_INT(fence);
	return t_int(c, &n, "INSERT INTO slow_commit VALUES (?)", &p, 1);
}

void connection_lost_during_commit_is_unknown(void **state)
{
	fx *f = *state;
	if (T_POOLED) /* it kills the server session of a call; a pooler shares them */
		skip();
	lks_conn *victim;
	lks_lease *l = NULL;
	killer k = {.url = f->url, .delay_ms = 400};
	pthread_t th;
	int rc;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL) {
		print_message("    MySQL has no deferred triggers to hold COMMIT open\n");
		skip();
	}
	t_exec(f->c, "CREATE TABLE slow_commit (fence bigint)");
	t_exec(f->c, "CREATE FUNCTION slow_commit_fn() RETURNS trigger LANGUAGE plpgsql AS"
	             " $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$");
	t_exec(f->c, "CREATE CONSTRAINT TRIGGER slow_commit_tr AFTER INSERT ON slow_commit"
	             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit_fn()");
	victim = t_open(f->url);
	assert_int_equal(lks_lease_acquire(&l, victim, "commit", 10000, 0, NULL), LKS_OK);
	k.session = t_session_id(victim);
	pthread_create(&th, NULL, kill_later, &k);
	rc = lks_lease_fenced_write(victim, l, insert_slow_commit, NULL);
	pthread_join(th, NULL);
	if (rc != LKS_EUNKNOWN)
		fail_msg("want LKS_EUNKNOWN, got %s (%s)", lks_strerror(rc), lks_conn_errmsg(victim));
	assert_non_null(strstr(lks_conn_errmsg(victim), "COMMIT"));
	/* here the server had not committed: nothing landed */
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM slow_commit"), 0);
	lks_conn_close(victim);
	lks_lease_free(l);
}

/* ---- a server that stops answering (#10, item 2) ----------------------- */

static int64_t since_ms(int64_t t0)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - t0;
}

static int64_t mono_ms(void)
{
	return since_ms(0);
}

static int stopped_write(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	(void)arg;
	return lks_conn_exec(c, "UPDATE items SET qty = qty + 1");
}

typedef enum { OP_CAS, OP_ACQUIRE_WAIT, OP_RENEW, OP_FENCED_WRITE } stopped_op;

/* Run one call while the server is SIGSTOPped: it returns LKS_ECONN (or
 * EUNKNOWN for a commit) at its op timeout (2 s, printed); after SIGCONT
 * the handle says it must be reopened, and lks_conn_reset brings it back. */
static void call_while_stopped(fx *f, const char *url, stopped_op op)
{
	static const char *names[] = {"CAS", "acquire wait", "renew", "fenced write"};
	lks_conn *c = t_open(url);
	lks_row_ref r = {"items", "id", "version", LKS_INT(1)};
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	lks_lease *mine = NULL, *got = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char own[32];
	int64_t v, t0, took;
	int rc = LKS_OK;
	snprintf(own, sizeof own, "stopped-own-%d", (int)op);
	if (op == OP_RENEW || op == OP_FENCED_WRITE)
		assert_int_equal(lks_lease_acquire(&mine, c, own, 60000, 0, NULL), LKS_OK);
	t_ctl("pause");
	usleep(100 * 1000); /* SIGSTOP reaches every thread of the server */
	t0 = mono_ms();
	switch (op) {
	case OP_CAS: rc = lks_cas_update(c, &r, 0, cols, &one, 1, &v); break;
	case OP_ACQUIRE_WAIT: rc = lks_lease_acquire(&got, c, "stopped-held", 60000, 10000, NULL); break;
	case OP_RENEW: rc = lks_lease_renew(c, mine, 60000); break;
	case OP_FENCED_WRITE: rc = lks_lease_fenced_write(c, mine, stopped_write, NULL); break;
	}
	took = since_ms(t0);
	t_ctl("resume");
	print_message("    %s on a stopped server: %s after %lld ms (%s)\n", names[op], lks_strerror(rc),
	              (long long)took, lks_conn_errmsg(c));
	/* the server answers nothing until resumed: the call came back only
	 * because the op timeout ended it (without one it would hang here) */
	assert_true(rc == LKS_ECONN || (op == OP_FENCED_WRITE && rc == LKS_EUNKNOWN));
	assert_null(got);
	/* the connection was closed: it says so until reset */
	assert_int_equal(lks_lease_inspect(c, "stopped-held", &info), LKS_ECONN);
	/* reset brings it back. A server just resumed on a loaded machine may
	 * take longer than the 2 s op timeout over its first statements (under
	 * ASan beside other suites it did): a connection lost that way again
	 * is reset again, up to 10 times, and said */
	for (int i = 0;; i++) {
		assert_int_equal(lks_conn_reset(c), LKS_OK);
		rc = lks_lease_inspect(c, "stopped-held", &info);
		if (rc != LKS_ECONN || i == 10)
			break;
		print_message("    the resumed server did not answer within 2 s (%s); reset again\n",
		              lks_conn_errmsg(c));
	}
	assert_int_equal(rc, LKS_OK);
	assert_true(info.held);
	lks_lease_free(mine);
	lks_conn_close(c);
	(void)f;
}

void server_stops_answering(void **state)
{
	fx *f = *state;
	char url[1200];
	lks_lease *held;
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL (start|stop|pause|resume)");
	snprintf(url, sizeof url, "%s%cop-timeout=2", f->url, strchr(f->url, '?') ? '&' : '?');
	t_exec(f->c, "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO items VALUES (1, 0, 0)");
	assert_int_equal(lks_lease_acquire(&held, f->c, "stopped-held", 120000, 0, NULL), LKS_OK);
	call_while_stopped(f, url, OP_CAS);
	call_while_stopped(f, url, OP_ACQUIRE_WAIT);
	call_while_stopped(f, url, OP_RENEW);
	call_while_stopped(f, url, OP_FENCED_WRITE);
	/* the fixture's own connection lived through the pauses */
	assert_int_equal(lks_lease_release(f->c, held), LKS_OK);
	lks_lease_free(held);
}

static atomic_int stopped_lost;
static void stopped_on_lost(const lks_lease *l, int status, void *arg)
{
	(void)l;
	(void)status;
	(void)arg;
	atomic_store(&stopped_lost, 1);
}

/* Auto-renew against a stopped server reports the lease lost at its local
 * deadline (printed), not after some minutes of a hung renewal: the wait
 * below only guards against that hang, it times nothing. */
void autorenew_lost_on_time_when_server_stops(void **state)
{
	fx *f = *state;
	lks_lease *l = NULL;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	int64_t deadline_ms, t0;
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL (start|stop|pause|resume)");
	assert_int_equal(lks_lease_acquire(&l, f->c, "stopped-renew", 3000, 0, NULL), LKS_OK);
	ao.interval_ms = 500;
	ao.on_lost = stopped_on_lost;
	atomic_store(&stopped_lost, 0);
	assert_int_equal(lks_lease_autorenew_start(l, f->c, NULL, &ao), LKS_OK);
	/* a renewal went through: the time left jumped up. Against the lowest
	 * value seen, by more than noise: a renewal right after the grant
	 * leaves it where it was, within a millisecond */
	int64_t low = lks_lease_remaining_ms(l), left;
	while ((left = lks_lease_remaining_ms(l)) <= low + 100 && !atomic_load(&stopped_lost)) {
		if (left < low)
			low = left;
		usleep(10 * 1000);
	}
	t_ctl("pause");
	t0 = mono_ms();
	deadline_ms = lks_lease_remaining_ms(l);
	while (!atomic_load(&stopped_lost) && since_ms(t0) < deadline_ms + 60000)
		usleep(10 * 1000);
	int64_t took = since_ms(t0);
	t_ctl("resume");
	print_message("    lost reported %lld ms after the stop (local deadline was %lld ms away)\n",
	              (long long)took, (long long)deadline_ms);
	assert_true(atomic_load(&stopped_lost));
	assert_true(lks_lease_is_lost(l));
	lks_lease_free(l);
	lks_conn_close(f->c);
	f->c = t_open(f->url);
}

/* #29 item 8: an acquire whose grant statement is cut off by a lost
 * connection (the server stopped; the op timeout gives up while the
 * statement waits in the socket) leaves a grant the caller never heard of
 * once the server resumes. The handle's reset ends the old session and
 * gives that grant back: the lease or permit is free at once, not at its
 * TTL. A lease and a semaphore's permit. */
static void cut_off_grant(fx *f, const char *url, const char *name, int permits)
{
	lks_lease *s = NULL;
	char held[320];
	snprintf(held, sizeof held, T_BACKEND == LKS_BACKEND_POSTGRESQL
	         ? "SELECT count(*) FROM lks_lease WHERE starts_with(name, '%s')"
	           " AND holder IS NOT NULL AND expires_at > clock_timestamp()"
	         : "SELECT COUNT(*) FROM lks_lease WHERE name LIKE '%s%%'"
	           " AND holder IS NOT NULL AND expires_at > UTC_TIMESTAMP(6)", name);
	lks_conn *c = t_open(url);
	/* every row exists (each permit's too) and the statements are
	 * prepared: the grant is an UPDATE, the call's first statement */
	lks_lease *all[4] = {NULL};
	for (int k = 0; k < (permits ? permits : 1); k++)
		T_OK(c, permits ? lks_semaphore_acquire(&all[k], c, name, permits, 60000, 0, NULL)
		                : lks_lease_acquire(&all[k], c, name, 60000, 0, NULL));
	for (int k = 0; k < (permits ? permits : 1); k++) {
		T_OK(c, lks_lease_release(c, all[k]));
		lks_lease_free(all[k]);
	}
	/* PostgreSQL runs a statement it had received before the client left;
	 * MariaDB drops it, so there the grant itself is slowed (a trigger)
	 * past the op timeout, and the server finishes it after the client
	 * gave up */
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) {
		t_ctl("pause");
		usleep(100 * 1000); /* SIGSTOP reaches every thread of the server */
	} else {
		t_exec(f->c, "CREATE TRIGGER cut_slow BEFORE UPDATE ON lks_lease FOR EACH ROW"
		             " SET NEW.acquired_at = IF(NEW.holder IS NOT NULL AND SLEEP(3) = 0,"
		             " NEW.acquired_at, NEW.acquired_at)");
	}
	int rc = permits ? lks_semaphore_acquire(&s, c, name, permits, 60000, 0, NULL)
	                 : lks_lease_acquire(&s, c, name, 60000, 0, NULL);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		t_ctl("resume");
	if (rc != LKS_ECONN && rc != LKS_EUNKNOWN)
		fail_msg("want LKS_ECONN, got %s (%s)", lks_strerror(rc), lks_conn_errmsg(c));
	assert_null(s);
	/* the resumed server runs the statement it had received: a grant
	 * nobody was told of */
	t_wait_for(f->c, held, 1);
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL)
		t_exec(f->c, "DROP TRIGGER cut_slow");
	/* the next reset gives it back (a resumed server on a loaded machine
	 * may miss the first op timeout: reset again) */
	for (int i = 0; i < 10 && lks_conn_reset(c) != LKS_OK; i++)
		print_message("    reset: %s; again\n", lks_conn_errmsg(c));
	assert_int_equal(t_int1(f->c, held), 0);
	lks_conn_close(c);
}

void grant_cut_off_is_given_back(void **state)
{
	fx *f = *state;
	char url[1200];
	if (!T_CTL)
		fail_msg("needs LKS_PG_CTL / LKS_MYSQL_CTL (start|stop|pause|resume)");
	if (T_POOLED) { /* the old server session is the pooler's, not ours to end */
		print_message("    through a pooler the cut-off session cannot be ended first\n");
		skip();
	}
	snprintf(url, sizeof url, "%s%cop-timeout=2", f->url, strchr(f->url, '?') ? '&' : '?');
	cut_off_grant(f, url, "cutoff-lease", 0);
	cut_off_grant(f, url, "cutoff-sem", 3);
}
