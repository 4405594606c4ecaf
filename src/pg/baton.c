/* PostgreSQL backend: the waiting room's batons (session advisory locks). */
#include <string.h>
#include "pg.h"

/* Whether this session holds the baton (pg_locks shows a bigint key as
 * classid = high 32 bits, objid = low 32 bits, objsubid = 1). */
int lks_pg_baton_held(lks_conn *c, uint64_t baton, int *held)
{
	lks_value k[2] = {LKS_INT((int64_t)(baton >> 32)), LKS_INT((int64_t)(baton & 0xffffffffu))};
	int64_t n = 0;
	int rc = lks_query_int(c,
	                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
	                            " AND pid = pg_backend_pid() AND granted AND objsubid = 1"
	                            " AND classid = $1::bigint::oid AND objid = $2::bigint::oid",
	                            k, 2, &n);
	*held = n > 0;
	return rc;
}

/* Session locks stay on one server connection: not behind a pooler; and
 * grant=single (engines without advisory locks) polls. */
bool lks_pg_baton_supported(lks_conn *c)
{
	return !ST(c)->unprepared && !ST(c)->single_grant;
}

/* Wait in the server's lock queue (first come, first served). lock_timeout
 * is set by the inner query, which runs before the outer one takes the lock:
 * a subquery with a volatile target list is never flattened. */
int lks_pg_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got)
{
	char timeout[32];
	lks_value p[2] = {LKS_INT((int64_t)baton), LKS_TEXT(timeout)};
	lks_rows r;
	int rc;
	snprintf(timeout, sizeof timeout, "%lldms",
	         (long long)(timeout_us > 1000 ? timeout_us / 1000 : 1));
	*got = 0;
	rc = lks_pg_query(c,
	                  "SELECT pg_advisory_lock($1::bigint) IS NOT NULL"
	                  " FROM (SELECT set_config('lock_timeout', $2::text, true)) s",
	                  p, 2, &r);
	if (rc == LKS_ETRANSIENT && !strcmp(c->sqlstate, "55P03")) {
		/* Timed out, unless the lock was granted just as the timeout
		 * fired: PostgreSQL then keeps it and still reports the error. */
		lks_clear_error(c);
		return lks_pg_baton_held(c, baton, got);
	}
	if (rc == LKS_OK)
		*got = r.nrows == 1;
	lks_rows_clear(&r);
	return rc;
}

int lks_pg_baton_give(lks_conn *c, uint64_t baton)
{
	lks_value k = LKS_INT((int64_t)baton);
	lks_rows r;
	int rc = lks_pg_query(c, "SELECT pg_advisory_unlock($1::bigint)", &k, 1, &r);
	lks_rows_clear(&r);
	return rc;
}
