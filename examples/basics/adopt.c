/* Adopting a connection the service already has: lockstock runs on a
 * PGconn* or MYSQL* it did not open, and never closes it.
 * Usage: adopt postgresql://... | mysql://user:password@host:port/db */
#include <stdio.h>
#include <string.h>
#include <lockstock-mysql.h>
#include <lockstock-pg.h>

/* the service's own connection, made the way it always was */
static lks_conn *adopt(const char *url, PGconn **pg, MYSQL **my)
{
	lks_conn *c = NULL;
	if (!strncmp(url, "postgres", 8)) {
		*pg = PQconnectdb(url);
		if (PQstatus(*pg) != CONNECTION_OK)
			return NULL;
		lks_conn_adopt_pg(&c, *pg);
	} else {
		char user[64], pw[64], host[128], db[64];
		unsigned int port;
		if (sscanf(url, "mysql://%63[^:]:%63[^@]@%127[^:]:%u/%63s", user, pw, host, &port, db) != 5)
			return NULL;
		*my = mysql_init(NULL);
		if (!mysql_real_connect(*my, host, user, pw, db, port, NULL, CLIENT_FOUND_ROWS))
			return NULL;
		lks_conn_adopt_mysql(&c, *my);
	}
	return c;
}

int main(int argc, char **argv)
{
	PGconn *pg = NULL;
	MYSQL *my = NULL;
	lks_conn *c;
	lks_lease *l = NULL;
	int rc;
	if (argc != 2) {
		fprintf(stderr, "usage: adopt URL\n");
		return 64;
	}
	lks_library_init();
	if (!(c = adopt(argv[1], &pg, &my))) {
		fprintf(stderr, "adopt: cannot connect\n");
		return 69;
	}
	if ((rc = lks_lease_install(c)) || (rc = lks_lease_acquire(&l, c, "adopted-job", 5000, 0, NULL)))
		fprintf(stderr, "adopt: %s\n", lks_conn_errmsg(c));
	else
		printf("leased adopted-job on an adopted connection, fence %lld\n", (long long)lks_lease_fence(l));
	if (l)
		lks_lease_release(c, l);
	lks_lease_free(l);
	lks_conn_close(c); /* borrowed: the connection stays open for the service */
	if (pg) {
		PGresult *r = PQexec(pg, "SELECT 1");
		rc = rc ? rc : PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : 1;
		PQclear(r);
		PQfinish(pg);
	}
	if (my) {
		rc = rc ? rc : mysql_query(my, "SELECT 1") ? 1 : 0;
		mysql_free_result(mysql_store_result(my));
		mysql_close(my);
	}
	return rc ? 1 : 0;
}
