/* Overhead of lockstock against the raw client library, measured in one run:
 * the same CAS statement through lks_cas_update and through hand-written
 * prepared statements (libpq / libmysqlclient), and a lease acquire+release
 * against a minimal hand-written grant and release on the raw library, with
 * the round-trip floor (two trivial statements) for scale.
 * Usage: bench postgresql|mysql [iterations]   (URL from LKS_PG_URL / LKS_MYSQL_URL) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lockstock-mysql.h"
#include "lockstock-pg.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(lks_conn *c, const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, lks_conn_errmsg(c));
	exit(1);
}

static void setup(lks_conn *c)
{
	if (lks_conn_exec(c, "DROP TABLE IF EXISTS bench_items") ||
	    lks_conn_exec(c, "CREATE TABLE bench_items (id int PRIMARY KEY, qty int NOT NULL, version bigint NOT NULL)") ||
	    lks_conn_exec(c, "INSERT INTO bench_items VALUES (1, 0, 0)") || lks_lease_install(c))
		die(c, "setup");
}

/* raw baseline: the same UPDATE, prepared once, executed n times */
static double raw_cas_pg(PGconn *pg, int n)
{
	char v[24], q[24];
	const char *p[3] = {q, "1", v};
	PGresult *r = PQprepare(pg, "raw_cas",
	                        "UPDATE bench_items SET qty = $1, version = version + 1 WHERE id = $2 AND version = $3 RETURNING version",
	                        3, NULL);
	PQclear(r);
	r = PQexec(pg, "SELECT version FROM bench_items WHERE id = 1");
	long long ver = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	double t0 = now_s();
	for (int i = 0; i < n; i++, ver++) {
		snprintf(v, sizeof v, "%lld", ver);
		snprintf(q, sizeof q, "%d", i);
		r = PQexecPrepared(pg, "raw_cas", 3, p, NULL, NULL, 0);
		if (PQntuples(r) != 1) {
			fprintf(stderr, "bench: raw CAS failed: %s\n", PQerrorMessage(pg));
			exit(1);
		}
		PQclear(r);
	}
	return (now_s() - t0) / n;
}

static double raw_cas_my(MYSQL *my, int n)
{
	MYSQL_STMT *s = mysql_stmt_init(my);
	const char *sql = "UPDATE bench_items SET qty = ?, version = version + 1 WHERE id = ? AND version = ?";
	long long q = 0, id = 1, ver;
	MYSQL_BIND b[3];
	mysql_query(my, "SELECT version FROM bench_items WHERE id = 1");
	MYSQL_RES *res = mysql_store_result(my);
	ver = atoll(mysql_fetch_row(res)[0]);
	mysql_free_result(res);
	mysql_stmt_prepare(s, sql, strlen(sql));
	memset(b, 0, sizeof b);
	b[0].buffer_type = b[1].buffer_type = b[2].buffer_type = MYSQL_TYPE_LONGLONG;
	b[0].buffer = &q;
	b[1].buffer = &id;
	b[2].buffer = &ver;
	mysql_stmt_bind_param(s, b);
	double t0 = now_s();
	for (int i = 0; i < n; i++, ver++, q++)
		if (mysql_stmt_execute(s) || mysql_stmt_affected_rows(s) != 1) {
			fprintf(stderr, "bench: raw CAS failed: %s\n", mysql_stmt_error(s));
			exit(1);
		}
	mysql_stmt_close(s);
	return (now_s() - t0) / n;
}

static double lks_cas(lks_conn *c, int n)
{
	lks_row_ref row = {"bench_items", "id", "version", LKS_INT(1)};
	const char *cols[] = {"qty"};
	int64_t ver;
	if (lks_cas_read(c, &row, NULL, 0, &ver, NULL))
		die(c, "read");
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		lks_value v = LKS_INT(i);
		if (lks_cas_update(c, &row, ver, cols, &v, 1, &ver))
			die(c, "cas");
	}
	return (now_s() - t0) / n;
}

static double lks_lease_cycle(lks_conn *c, int n)
{
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		lks_lease *l;
		if (lks_lease_acquire(&l, c, "bench", 10000, 0, NULL) || lks_lease_release(c, l))
			die(c, "lease");
		lks_lease_free(l);
	}
	return (now_s() - t0) / n;
}

/* raw baseline for a lease: the minimal hand-written grant and release a
 * service might write itself (no insert of new names, no holder report) */
static double raw_lease_pg(PGconn *pg, int n)
{
	const char *grant = "UPDATE lks_lease SET holder = $2, fence = fence + 1, acquired_at = clock_timestamp(),"
	                    " expires_at = clock_timestamp() + interval '10 seconds'"
	                    " WHERE name = $1 AND expires_at <= clock_timestamp() RETURNING fence";
	const char *release = "UPDATE lks_lease SET holder = NULL, expires_at = clock_timestamp()"
	                      " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()";
	char fence[24];
	const char *p[3] = {"bench-raw", "0123456789abcdef0123456789abcdef", fence};
	PQclear(PQprepare(pg, "raw_grant", grant, 2, NULL));
	PQclear(PQprepare(pg, "raw_release", release, 3, NULL));
	PQclear(PQexec(pg, "INSERT INTO lks_lease VALUES ('bench-raw', NULL, 0, NULL, '-infinity') ON CONFLICT DO NOTHING"));
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		PGresult *r = PQexecPrepared(pg, "raw_grant", 2, p, NULL, NULL, 0);
		if (PQntuples(r) != 1) {
			fprintf(stderr, "bench: raw grant failed: %s\n", PQerrorMessage(pg));
			exit(1);
		}
		snprintf(fence, sizeof fence, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = PQexecPrepared(pg, "raw_release", 3, p, NULL, NULL, 0);
		PQclear(r);
	}
	return (now_s() - t0) / n;
}

static double raw_lease_my(MYSQL *my, int n)
{
	const char *grant = "UPDATE lks_lease SET holder = ?, fence = LAST_INSERT_ID(fence + 1),"
	                    " acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL 10 SECOND"
	                    " WHERE name = ? AND expires_at <= UTC_TIMESTAMP(6)";
	const char *release = "UPDATE lks_lease SET holder = NULL, expires_at = UTC_TIMESTAMP(6)"
	                      " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)";
	char name[] = "bench-raw", holder[] = "0123456789abcdef0123456789abcdef";
	unsigned long nlen = strlen(name), hlen = strlen(holder);
	long long fence = 0;
	MYSQL_STMT *g = mysql_stmt_init(my), *r = mysql_stmt_init(my);
	MYSQL_BIND bg[2], br[3];
	mysql_query(my, "INSERT INTO lks_lease VALUES ('bench-raw', NULL, 0, NULL, '1970-01-01') ON DUPLICATE KEY UPDATE name = name");
	mysql_stmt_prepare(g, grant, strlen(grant));
	mysql_stmt_prepare(r, release, strlen(release));
	memset(bg, 0, sizeof bg);
	memset(br, 0, sizeof br);
	bg[0].buffer_type = bg[1].buffer_type = br[0].buffer_type = br[1].buffer_type = MYSQL_TYPE_STRING;
	bg[0].buffer = br[1].buffer = holder;
	bg[0].buffer_length = br[1].buffer_length = hlen;
	bg[0].length = br[1].length = &hlen;
	bg[1].buffer = br[0].buffer = name;
	bg[1].buffer_length = br[0].buffer_length = nlen;
	bg[1].length = br[0].length = &nlen;
	br[2].buffer_type = MYSQL_TYPE_LONGLONG;
	br[2].buffer = &fence;
	mysql_stmt_bind_param(g, bg);
	mysql_stmt_bind_param(r, br);
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		if (mysql_stmt_execute(g) || mysql_stmt_affected_rows(g) != 1) {
			fprintf(stderr, "bench: raw grant failed: %s\n", mysql_stmt_error(g));
			exit(1);
		}
		fence = (long long)mysql_stmt_insert_id(g);
		mysql_stmt_execute(r);
	}
	mysql_stmt_close(g);
	mysql_stmt_close(r);
	return (now_s() - t0) / n;
}

static double round_trips(lks_conn *c, int n, int per_op)
{
	int64_t one;
	double t0 = now_s();
	for (int i = 0; i < n * per_op; i++)
		if (lks_conn_query_int(c, "SELECT 1", NULL, 0, &one))
			die(c, "select 1");
	return (now_s() - t0) / n;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	int n = argc > 2 ? atoi(argv[2]) : 5000;
	lks_conn *c = NULL;
	if (argc < 2 || n <= 0 || (strcmp(argv[1], "postgresql") && strcmp(argv[1], "mysql"))) {
		fprintf(stderr, "usage: bench postgresql|mysql [iterations]\n");
		return 2;
	}
	url = getenv(strcmp(argv[1], "postgresql") ? "LKS_MYSQL_URL" : "LKS_PG_URL");
	if (!url) {
		fprintf(stderr, "bench: set LKS_PG_URL / LKS_MYSQL_URL\n");
		return 2;
	}
	lks_library_init();
	if (lks_conn_open(&c, url))
		die(c, "open");
	setup(c);
	/* warm up both paths (prepare, caches), then measure interleaved */
	double raw = 0, lib = 0, lease = 0, floor2 = 0, raw_lease = 0;
	if (lks_conn_pg(c)) {
		raw_cas_pg(lks_conn_pg(c), 200);
	} else {
		raw_cas_my(lks_conn_mysql(c), 200);
	}
	lks_cas(c, 200);
	lks_lease_cycle(c, 200);
	round_trips(c, 200, 2);
	lks_conn_pg(c) ? raw_lease_pg(lks_conn_pg(c), 200) : raw_lease_my(lks_conn_mysql(c), 200);
	for (int round = 0; round < 3; round++) {
		raw += lks_conn_pg(c) ? raw_cas_pg(lks_conn_pg(c), n / 3) : raw_cas_my(lks_conn_mysql(c), n / 3);
		lib += lks_cas(c, n / 3);
		lease += lks_lease_cycle(c, n / 3);
		floor2 += round_trips(c, n / 3, 2);
		raw_lease += lks_conn_pg(c) ? raw_lease_pg(lks_conn_pg(c), n / 3) : raw_lease_my(lks_conn_mysql(c), n / 3);
	}
	printf("%s, %d iterations, 1 connection, per operation:\n", argv[1], n / 3 * 3);
	printf("  CAS update      lockstock %7.1f us   raw %-8s %7.1f us   ratio %.2f\n", lib / 3 * 1e6,
	       lks_conn_pg(c) ? "libpq" : "mysql", raw / 3 * 1e6, lib / raw);
	printf("  lease acquire+release lockstock %7.1f us   raw grant+release %7.1f us   ratio %.2f\n",
	       lease / 3 * 1e6, raw_lease / 3 * 1e6, lease / raw_lease);
	printf("  (floor: two SELECT 1 round trips %7.1f us)\n", floor2 / 3 * 1e6);
	lks_conn_exec(c, "DROP TABLE bench_items");
	lks_conn_close(c);
	return 0;
}
