/* PostgreSQL backend: lease reads and administration (a row, its payload,
 * a semaphore's slots, force release). */
#include "pg.h"

#define PG_SELECT_ROW \
	"SELECT name, coalesce(holder, ''), fence," \
	" CASE WHEN expires_at > clock_timestamp() THEN " REMAINING_US " ELSE 0 END," \
	" (expires_at > clock_timestamp())::int, %s FROM %s"

int lks_pg_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                        lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&q, PG_SELECT_ROW, with_owner ? "owner" : "NULL::text", t);
	if (name)
		lks_sql_add(&q, " WHERE name = $1");
	else
		lks_sql_add(&q, " WHERE expires_at > clock_timestamp() ORDER BY name");
	return lks_pg_query(c, q.buf, &p, name ? 1 : 0, out);
}

/* The payload is stored behind the holder id of the grant that wrote it,
 * so a later grant never shows a stale one and no grant statement has to
 * clear it (as the owner label). */
int lks_pg_lease_set_payload(lks_conn *c, const char *t, const char *name, const char *holder,
                             int64_t fence, const char *hex)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence), LKS_TEXT(hex)};
	lks_sql_add(&q,
	            "UPDATE %s SET payload = convert_to($2, 'UTF8') || decode($4, 'hex')"
	            " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()",
	            t);
	return lks_query_grant(c, &q, p, 4, NULL);
}

/* rows: as lease_select (no owner), then the payload (hex) of the current
 * grant, NULL when none */
int lks_pg_lease_get_payload(lks_conn *c, const char *t, const char *name, bool with_owner,
                             lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
#define PG_PAYLOAD \
	"CASE WHEN expires_at > clock_timestamp() AND holder IS NOT NULL" \
	" AND substring(payload FROM 1 FOR 32) = convert_to(holder, 'UTF8')" \
	" THEN encode(substring(payload FROM 33), 'hex') END"
	lks_sql_add(&q, PG_SELECT_ROW " WHERE name = $1",
	            with_owner ? "owner, " PG_PAYLOAD : "NULL::text, " PG_PAYLOAD, t);
	return lks_pg_query(c, q.buf, &p, 1, out);
}

/* The rows of a semaphore's slots prefix0 .. prefix(permits-1) that exist;
 * index lookups of the primary key, whatever the column's collation. */
int lks_pg_lease_select_slots(lks_conn *c, const char *t, const char *prefix, int permits,
                              bool with_owner, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(prefix), LKS_INT(permits)};
	lks_sql_add(&q, PG_SELECT_ROW, with_owner ? "owner" : "NULL::text", t);
	lks_sql_add(&q, " WHERE name = ANY (SELECT $1::text || k::text"
	                " FROM generate_series(0, $2::int - 1) k)");
	return lks_pg_query(c, q.buf, p, 2, out);
}

/* The row before, locked; then freed with its fence advanced. One
 * statement: the CTE's FOR UPDATE waits for a fenced write in flight. */
int lks_pg_lease_force_release(lks_conn *c, const char *t, const char *name,
                               bool with_owner, lks_rows *out)
{
	lks_sql q = {.len = 0}, old = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&old, PG_SELECT_ROW " WHERE name = $1 FOR UPDATE",
	            with_owner ? "owner" : "NULL::text", t);
	lks_sql_add(&q,
	            "WITH old AS (%s), u AS (UPDATE %s SET holder = NULL, fence = fence + 1,"
	            " expires_at = clock_timestamp() WHERE name = $1 AND EXISTS (SELECT 1 FROM old)"
	            " AND expires_at > clock_timestamp() RETURNING 1)"
	            " SELECT * FROM old",
	            old.buf, t);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	return lks_pg_query(c, q.buf, &p, 1, out);
}

int64_t lks_pg_session_id(lks_conn *c, char *server, size_t n)
{
	if (!c->native)
		return 0;
	snprintf(server, n, "%s:%s", PQhost(PG(c)) ? PQhost(PG(c)) : "",
	         PQport(PG(c)) ? PQport(PG(c)) : "");
	return PQbackendPID(PG(c));
}

/* A grant cut off by a lost connection: the old backend may still run (or
 * be about to run) the statement. End it, wait until it is gone, then free
 * what it granted to that holder. Through a pooler the old session is not
 * this client's alone: only the give-back. */
int lks_pg_give_back_untold(lks_conn *c, const char *t, const char *name, bool prefix,
                            const char *holder, int64_t old_session)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_INT(old_session), LKS_TEXT(name), LKS_TEXT(holder)};
	int64_t alive = 1;
	int rc;
	if (old_session > 0 && !ST(c)->unprepared) {
		if ((rc = lks_query_int(c, "SELECT count(*) FROM (SELECT pg_terminate_backend($1::int))"
		                           " t", p, 1, &alive)))
			return rc;
		for (int i = 0; i < 500 && alive; i++) { /* it ends at its next interrupt check */
			if ((rc = lks_query_int(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int",
			                        p, 1, &alive)))
				return rc;
			if (alive)
				lks_sleep_us(10000);
		}
	}
	lks_sql_add(&q,
	            "UPDATE %s SET holder = NULL, expires_at = clock_timestamp()"
	            " WHERE holder = $2 AND expires_at > clock_timestamp()"
	            " AND %s",
	            t, prefix ? "starts_with(name, $1)" : "name = $1");
	return lks_exec_params(c, &q, p + 1, 2, NULL) ;
}
