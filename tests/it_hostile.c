/* Integration: the caller's environment as hostile input. An open
 * transaction on the handle, a strict default isolation level, triggers on
 * the lease table, LAST_INSERT_ID() of an adopted connection, and a retry
 * attempt that leaves its transaction open (issue 7, items 1, 4, 8, 10, 12). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it.h"
#ifdef LKS_WITH_PG
#include "lockstock-pg.h"
#endif
#ifdef LKS_WITH_MYSQL
#include "lockstock-mysql.h"
#endif

/* 1. Lease calls never join the caller's transaction: a rollback would undo
 * a grant whose fence was handed out, and the next grant would repeat it. */
void lease_calls_refuse_open_transaction(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *l = NULL, *m = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	assert_int_equal(lks_lease_acquire(&l, f->c, "txn", 5000, 0, NULL), LKS_OK);
	t_exec(f->c, "BEGIN");
	assert_int_equal(lks_lease_acquire(&m, f->c, "txn2", 5000, 0, NULL), LKS_EINVAL);
	assert_null(m);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "transaction"));
	assert_int_equal(lks_lease_renew(f->c, l, 5000), LKS_EINVAL);
	assert_int_equal(lks_lease_release(f->c, l), LKS_EINVAL);
	t_exec(f->c, "ROLLBACK");
	/* nothing changed: txn2 never granted, txn still held with its fence */
	assert_int_equal(lks_lease_inspect(other, "txn2", &info), LKS_OK);
	assert_int_equal(info.fence, 0);
	assert_int_equal(lks_lease_inspect(other, "txn", &info), LKS_OK);
	assert_true(info.held);
	assert_int_equal(info.fence, lks_lease_fence(l));
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	lks_conn_close(other);
}

/* 4. A strict default isolation level changes nothing: a serialization
 * failure in a grant poll is "busy, poll again", never an early return. */
typedef struct iso_arg {
	const char *url;
	const char *set_isolation;
	atomic_int *holders, *max_holders, *transient, *grants;
} iso_arg;

static void *iso_thread(void *arg)
{
	iso_arg *a = arg;
	lks_conn *c = t_open(a->url);
	t_exec(c, a->set_isolation);
	for (int i = 0; i < 40; i++) {
		lks_lease *l = NULL;
		int rc = lks_lease_acquire(&l, c, "iso", 5000, 5000, NULL);
		if (rc == LKS_ETRANSIENT)
			atomic_fetch_add(a->transient, 1);
		if (rc)
			continue;
		int h = atomic_fetch_add(a->holders, 1) + 1;
		if (h > atomic_load(a->max_holders))
			atomic_store(a->max_holders, h);
		atomic_fetch_sub(a->holders, 1);
		atomic_fetch_add(a->grants, 1);
		lks_lease_release(c, l);
		lks_lease_free(l);
	}
	lks_conn_close(c);
	return NULL;
}

void lease_waits_at_every_default_isolation(void **state)
{
	fx *f = *state;
	const char *levels[2][2] = {
		{"SET default_transaction_isolation = 'repeatable read'",
		 "SET default_transaction_isolation = 'serializable'"},
		{"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		 "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"},
	};
	int b = T_BACKEND == LKS_BACKEND_POSTGRESQL ? 0 : 1;
	for (int lv = 0; lv < 2; lv++) {
		atomic_int holders = 0, max_holders = 0, transient = 0, grants = 0;
		pthread_t th[6];
		iso_arg a = {f->url, levels[b][lv], &holders, &max_holders, &transient, &grants};
		for (int i = 0; i < 6; i++)
			pthread_create(&th[i], NULL, iso_thread, &a);
		for (int i = 0; i < 6; i++)
			pthread_join(th[i], NULL);
		print_message("    %s: %d grants, %d transient\n", levels[b][lv], atomic_load(&grants),
		              atomic_load(&transient));
		assert_int_equal(atomic_load(&transient), 0);
		assert_int_equal(atomic_load(&max_holders), 1);
		assert_int_equal(atomic_load(&grants), 240);
	}
}

/* 8, 12. MariaDB: a trigger on the lease table (online schema-change tools
 * add them) does not turn the fence into 0, and acquire leaves the
 * connection's LAST_INSERT_ID() alone. */
void lease_fence_with_trigger_and_last_insert_id(void **state)
{
	fx *f = *state;
	lks_lease *l = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	if (T_BACKEND != LKS_BACKEND_MYSQL)
		skip(); /* MySQL-only behaviours */
	t_exec(f->c, "CREATE TABLE audit (id int AUTO_INCREMENT PRIMARY KEY, fence bigint)");
	t_exec(f->c, "CREATE TRIGGER lks_lease_audit AFTER UPDATE ON lks_lease FOR EACH ROW"
	             " INSERT INTO audit (fence) VALUES (NEW.fence)");
	t_exec(f->c, "INSERT INTO audit (fence) VALUES (-1)");
	int64_t before = t_int1(f->c, "SELECT LAST_INSERT_ID()");
	assert_true(before > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lks_lease_acquire(&l, f->c, "trig", 5000, 0, NULL), LKS_OK);
		assert_int_equal(lks_lease_inspect(f->c, "trig", &info), LKS_OK);
		assert_int_equal(lks_lease_fence(l), info.fence);
		assert_int_equal(lks_lease_fence(l), i + 1);
		assert_int_equal(lks_lease_renew(f->c, l, 5000), LKS_OK);
		assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
		lks_lease_free(l);
	}
	assert_int_equal(t_int1(f->c, "SELECT LAST_INSERT_ID()"), before);
}

/* 10. lks_retry rolls back what a failed attempt left open: on MySQL the
 * next attempt's BEGIN would otherwise commit it. */
static int leaves_open(lks_conn *c, int attempt, void *arg)
{
	int64_t n;
	(void)arg;
	if (attempt == 1) {
		lks_conn_exec(c, "BEGIN");
		lks_conn_query_int(c, "INSERT INTO retry_marks VALUES (1)", NULL, 0, &n);
		return LKS_CONFLICT; /* with the transaction still open */
	}
	if (lks_conn_exec(c, "BEGIN") || lks_conn_exec(c, "COMMIT"))
		return lks_conn_errcode(c);
	return LKS_OK;
}

void retry_rolls_back_failed_attempt(void **state)
{
	fx *f = *state;
	lks_retry_stats st;
	t_exec(f->c, "CREATE TABLE retry_marks (n int)");
	assert_int_equal(lks_retry(f->c, NULL, leaves_open, NULL, &st), LKS_OK);
	assert_int_equal(st.attempts, 2);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM retry_marks"), 0);
}

/* 7. mysql://user@localhost:PORT reaches that port over TCP, not the default
 * Unix socket (where another server may listen). */
void mysql_url_with_port_uses_tcp(void **state)
{
	fx *f = *state;
	char url[1100];
	const char *at, *colon;
	lks_conn *c = NULL;
	if (T_BACKEND != LKS_BACKEND_MYSQL)
		skip();
	/* the test URL names 127.0.0.1:PORT; ask for localhost:PORT instead */
	at = strchr(f->url + 8, '@');
	assert_non_null(at);
	colon = strchr(at, ':');
	assert_non_null(colon);
	snprintf(url, sizeof url, "%.*slocalhost%s", (int)(at + 1 - f->url), f->url, colon);
	assert_int_equal(lks_conn_open(&c, url), LKS_OK);
	assert_int_equal(t_int1(c, "SELECT @@port"), t_int1(f->c, "SELECT @@port"));
	lks_conn_close(c);
}

/* 3. The CAS guard compares column names as the server does: on MySQL
 * `VER` is the version column `ver`, so a SET of it is refused and the row
 * is left alone. */
void cas_guard_column_case(void **state)
{
	fx *f = *state;
	lks_row_ref row = {"casecol", "id", "ver", LKS_INT(1)};
	const char *upper[] = {"VER"}, *key[] = {"ID"};
	lks_value zero = LKS_INT(0);
	int64_t v = 0;
	int rc;
	t_exec(f->c, "CREATE TABLE casecol (id int PRIMARY KEY, ver bigint NOT NULL, qty int)");
	t_exec(f->c, "INSERT INTO casecol VALUES (1, 41, 0)");
	rc = lks_cas_update(f->c, &row, 41, upper, &zero, 1, &v);
	if (T_BACKEND == LKS_BACKEND_MYSQL) {
		assert_int_equal(rc, LKS_EINVAL);
		assert_int_equal(lks_cas_update(f->c, &row, 41, key, &zero, 1, &v), LKS_EINVAL);
		assert_int_equal(t_int1(f->c, "SELECT ver FROM casecol"), 41);
	} else {
		/* PostgreSQL: "VER" quoted is another (missing) column: an error */
		assert_true(rc != LKS_OK);
		assert_int_equal(t_int1(f->c, "SELECT ver FROM casecol"), 41);
	}
}

/* 2. MySQL without a strict sql_mode would clamp version + 1 at the maximum
 * and report the CAS applied twice from the same version. Connections
 * lockstock opens are strict; an adopted non-strict one is guarded. */
void cas_strict_even_without_strict_sql_mode(void **state)
{
	fx *f = *state;
#ifdef LKS_WITH_MYSQL
	lks_row_ref row = {"clamp", "id", "ver", LKS_INT(1)};
	const char *cols[] = {"qty"};
	lks_value one = LKS_INT(1);
	lks_conn *mine = NULL, *adopted = NULL;
	MYSQL *raw;
	int64_t v;
	if (T_BACKEND != LKS_BACKEND_MYSQL)
		skip();
	t_exec(f->c, "CREATE TABLE clamp (id int PRIMARY KEY, ver int NOT NULL, qty int)");
	t_exec(f->c, "INSERT INTO clamp VALUES (1, 2147483647, 0)");
	/* opened by lockstock: strict, whatever the server's default */
	mine = t_open(f->url);
	assert_int_equal(t_int1(mine, "SELECT @@sql_mode LIKE '%STRICT%'"), 1);
	assert_int_equal(lks_cas_update(mine, &row, 2147483647, cols, &one, 1, &v), LKS_EOVERFLOW);
	/* the session's sql_mode emptied after open (hardening 3, item 5): two
	 * writers from the maximum both got LKS_OK while the row kept it */
	raw = lks_conn_mysql(mine);
	assert_int_equal(mysql_query(raw, "SET SESSION sql_mode = ''"), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(lks_cas_update(mine, &row, 2147483647, cols, &one, 1, &v),
		                 LKS_EOVERFLOW);
	/* adopted, with sql_mode '' set by its owner */
	assert_int_equal(mysql_query(raw, "SET SESSION sql_mode = ''"), 0);
	assert_int_equal(lks_conn_adopt_mysql(&adopted, raw), LKS_OK);
	for (int i = 0; i < 2; i++)
		assert_int_equal(lks_cas_update(adopted, &row, 2147483647, cols, &one, 1, &v),
		                 LKS_EOVERFLOW);
	assert_int_equal(t_int1(f->c, "SELECT ver FROM clamp"), 2147483647);
	assert_int_equal(t_int1(f->c, "SELECT qty FROM clamp"), 0);
	lks_conn_close(adopted);
	lks_conn_close(mine);
#else
	(void)f;
	skip();
#endif
}

/* 11. A pooled PostgreSQL connection can be adopted, closed and adopted
 * again: statement names are unique per handle and a borrowed connection
 * goes back without them. */
void pg_readopt_same_connection(void **state)
{
	fx *f = *state;
#ifdef LKS_WITH_PG
	lks_conn *owner = NULL, *h = NULL;
	lks_lease *l = NULL;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL)
		skip();
	owner = t_open(f->url);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lks_conn_adopt_pg(&h, lks_conn_pg(owner)), LKS_OK);
		if (T_POOLED) /* the pooled mode, for an adopted connection */
			assert_int_equal(lks_conn_set_prepare(h, 0), LKS_OK);
		assert_int_equal(lks_lease_acquire(&l, h, "readopt", 5000, 0, NULL), LKS_OK);
		assert_int_equal(lks_lease_release(h, l), LKS_OK);
		lks_lease_free(l);
		lks_conn_close(h);
		/* closing the borrowed handle left none of its statements behind */
		assert_int_equal(t_int1(f->c, "SELECT 0"), 0);
	}
	/* #9 item 0: a statement of the handle gone from its server connection
	 * (what a transaction pooler does) is an error that names the cure,
	 * never another statement's result; prepare=off then works */
	{
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		int rc;
		assert_int_equal(lks_conn_adopt_pg(&h, lks_conn_pg(owner)), LKS_OK);
		assert_int_equal(lks_conn_set_prepare(h, 1), LKS_OK);
		rc = lks_lease_inspect(h, "readopt", &info);
		assert_true(rc == LKS_OK || (T_POOLED && strstr(lks_conn_errmsg(h), "prepare=off")));
		PQclear(PQexec(lks_conn_pg(owner), "DEALLOCATE ALL"));
		rc = lks_lease_inspect(h, "readopt", &info);
		if (!T_POOLED || rc != LKS_OK) { /* pooled: it may land where it was prepared */
			assert_int_equal(rc, LKS_EDB);
			assert_non_null(strstr(lks_conn_errmsg(h), "prepare=off"));
		}
		print_message("    %s\n", lks_conn_errmsg(h));
		assert_int_equal(lks_conn_set_prepare(h, 0), LKS_OK);
		assert_int_equal(lks_lease_inspect(h, "readopt", &info), LKS_OK);
		assert_int_equal(info.fence, 3);
		lks_conn_close(h);
	}
	/* another statement under one of the handle's names (what a shared
	 * server connection could hold) is refused by its result's shape */
	if (!T_POOLED) {
		lks_lease_info info = LKS_LEASE_INFO_INIT;
		PGconn *pg = lks_conn_pg(owner);
		PGresult *res;
		char sql[256];
		assert_int_equal(lks_conn_adopt_pg(&h, pg), LKS_OK);
		assert_int_equal(lks_lease_inspect(h, "readopt", &info), LKS_OK);
		res = PQexec(pg, "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%coalesce(holder%'");
		assert_int_equal(PQntuples(res), 1);
		snprintf(sql, sizeof sql, "DEALLOCATE %s", PQgetvalue(res, 0, 0));
		PQclear(PQexec(pg, sql));
		snprintf(sql, sizeof sql, "PREPARE %s(text) AS SELECT $1 AS impostor", PQgetvalue(res, 0, 0));
		PQclear(res);
		res = PQexec(pg, sql);
		assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
		assert_int_equal(lks_lease_inspect(h, "readopt", &info), LKS_EDB);
		print_message("    %s\n", lks_conn_errmsg(h));
		assert_non_null(strstr(lks_conn_errmsg(h), "another shape"));
		lks_conn_close(h);
	}
	lks_conn_close(owner);
#else
	(void)f;
	skip();
#endif
}

/* 9. lks_lease_install refuses an existing table it cannot trust, and says
 * what differs: here a case-insensitive name (MySQL: "Lease", "lease" and
 * "lease " would be one lease) or a varchar name (PostgreSQL). */
void lease_install_checks_existing_table(void **state)
{
	fx *f = *state;
	lks_lease *l = NULL;
	if (T_BACKEND == LKS_BACKEND_MYSQL)
		t_exec(f->c, "CREATE TABLE odd_lease (name VARCHAR(255) COLLATE utf8mb4_general_ci PRIMARY KEY,"
		             " holder CHAR(32), fence BIGINT NOT NULL, acquired_at DATETIME(6),"
		             " expires_at DATETIME(6) NOT NULL)");
	else
		t_exec(f->c, "CREATE TABLE odd_lease (name varchar(255) PRIMARY KEY, holder text,"
		             " fence bigint NOT NULL, acquired_at timestamptz, expires_at timestamptz NOT NULL)");
	t_exec(f->c, "CREATE TABLE no_fence (name text, holder text, expires_at int)");
	assert_int_equal(lks_lease_set_table(f->c, "odd_lease"), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_EINVAL);
	print_message("    %s\n", lks_conn_errmsg(f->c));
	assert_non_null(strstr(lks_conn_errmsg(f->c), "column name"));
	assert_int_equal(lks_lease_set_table(f->c, "no_fence"), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "fence"));
	/* the default table, created by install, passes its own check */
	assert_int_equal(lks_lease_set_table(f->c, LKS_LEASE_TABLE_DEFAULT), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	assert_int_equal(lks_lease_acquire(&l, f->c, "ok", 30000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

/* 6. Say what overflowed: only version + 1 is LKS_EOVERFLOW "version"; a SET
 * value or a key out of its column's range is bad input; a fence at the
 * maximum says so. Nothing changes in any case. */
void overflow_is_attributed(void **state)
{
	fx *f = *state;
	lks_row_ref row = {"ovf", "id", "ver", LKS_INT(1)};
	lks_row_ref bigkey = {"ovf", "id", "ver", LKS_INT(1099511627776LL)};
	const char *cols[] = {"qty"};
	lks_value huge = LKS_INT(1099511627776LL), one = LKS_INT(1);
	lks_lease *l = NULL;
	int64_t v;
	int rc;
	t_exec(f->c, "CREATE TABLE ovf (id int PRIMARY KEY, ver int NOT NULL, qty int)");
	t_exec(f->c, "INSERT INTO ovf VALUES (1, 5, 0)");
	assert_int_equal(lks_cas_update(f->c, &row, 5, cols, &huge, 1, &v), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "out of range"));
	assert_null(strstr(lks_conn_errmsg(f->c), "version"));
	rc = lks_cas_update(f->c, &bigkey, 5, cols, &one, 1, &v);
	/* PostgreSQL cannot even compare: bad input; MySQL finds no such row */
	assert_int_equal(rc, T_BACKEND == LKS_BACKEND_POSTGRESQL ? LKS_EINVAL : LKS_NOT_FOUND);
	t_exec(f->c, "UPDATE ovf SET ver = 2147483647");
	assert_int_equal(lks_cas_update(f->c, &row, 2147483647, cols, &one, 1, &v), LKS_EOVERFLOW);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "version"));
	assert_int_equal(t_int1(f->c, "SELECT qty FROM ovf"), 0);
	/* a fence at INT64_MAX */
	assert_int_equal(lks_lease_acquire(&l, f->c, "maxed", 30000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	l = NULL;
	t_exec(f->c, "UPDATE lks_lease SET fence = 9223372036854775807");
	assert_int_equal(lks_lease_acquire(&l, f->c, "maxed", 1000, 0, NULL), LKS_EOVERFLOW);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "fence"));
	assert_null(l);
}

/* Hardening 3, items 1 and 4: a lease table whose name is not a unique key
 * of its own (a migration tool's id primary key) would let every acquirer
 * insert a row of its own and be granted; a whole-second DATETIME truncates
 * the stored expiry below the TTL the holder counts. Install refuses both
 * and says what is wrong; no two acquirers are ever granted one name. */
void lease_install_refuses_keyless_or_coarse_table(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease *a = NULL, *b = NULL;
	int ra, rb;
	if (T_BACKEND == LKS_BACKEND_MYSQL)
		t_exec(f->c, "CREATE TABLE keyless_lease (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
		             " name VARBINARY(255) NOT NULL, holder CHAR(32) CHARACTER SET ascii"
		             " COLLATE ascii_bin NULL, fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
		             " expires_at DATETIME(6) NOT NULL, KEY (name)) ENGINE=InnoDB");
	else
		t_exec(f->c, "CREATE TABLE keyless_lease (id bigserial PRIMARY KEY, name text NOT NULL,"
		             " holder text, fence bigint NOT NULL, acquired_at timestamptz,"
		             " expires_at timestamptz NOT NULL)");
	assert_int_equal(lks_lease_set_table(f->c, "keyless_lease"), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_EINVAL);
	print_message("    %s\n", lks_conn_errmsg(f->c));
	assert_non_null(strstr(lks_conn_errmsg(f->c), "not a PRIMARY KEY or UNIQUE key"));
	/* used without install anyway (the first use checks too on MySQL; the
	 * grant fails on PostgreSQL): never two holders */
	assert_int_equal(lks_lease_set_table(other, "keyless_lease"), LKS_OK);
	ra = lks_lease_acquire(&a, f->c, "k", 10000, 0, NULL);
	rb = lks_lease_acquire(&b, other, "k", 10000, 0, NULL);
	assert_false(ra == LKS_OK && rb == LKS_OK);
	lks_lease_free(a);
	lks_lease_free(b);
	if (T_BACKEND == LKS_BACKEND_MYSQL) {
		/* a unique key over (name, id) is not a key on name */
		t_exec(f->c, "CREATE TABLE wide_key_lease (name VARBINARY(255) NOT NULL,"
		             " holder CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,"
		             " fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
		             " expires_at DATETIME(6) NOT NULL, id INT NOT NULL,"
		             " UNIQUE KEY (name, id)) ENGINE=InnoDB");
		assert_int_equal(lks_lease_set_table(f->c, "wide_key_lease"), LKS_OK);
		assert_int_equal(lks_lease_install(f->c), LKS_EINVAL);
		assert_non_null(strstr(lks_conn_errmsg(f->c), "not a PRIMARY KEY or UNIQUE key"));
		/* whole-second expiry */
		t_exec(f->c, "CREATE TABLE coarse_lease (name VARBINARY(255) NOT NULL PRIMARY KEY,"
		             " holder CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,"
		             " fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
		             " expires_at DATETIME NOT NULL) ENGINE=InnoDB");
		assert_int_equal(lks_lease_set_table(f->c, "coarse_lease"), LKS_OK);
		assert_int_equal(lks_lease_install(f->c), LKS_EINVAL);
		print_message("    %s\n", lks_conn_errmsg(f->c));
		assert_non_null(strstr(lks_conn_errmsg(f->c), "expected DATETIME(6)"));
	}
	assert_int_equal(lks_lease_set_table(f->c, LKS_LEASE_TABLE_DEFAULT), LKS_OK);
	lks_conn_close(other);
}
