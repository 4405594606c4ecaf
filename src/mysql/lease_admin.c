/* MySQL backend: lease reads and administration (a row, its payload, a
 * semaphore's slots, force release). */
#include "my.h"

#define MY_SELECT_ROW \
	"SELECT name, COALESCE(holder, ''), fence," \
	" GREATEST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at), 0)," \
	" expires_at > UTC_TIMESTAMP(6), %s FROM %s"

/* The payload behind the holder id of the grant that wrote it (see
 * lks_pg_lease_set_payload). */
int lks_my_lease_set_payload(lks_conn *c, const char *t, const char *name, const char *holder,
                             int64_t fence, const char *hex)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_TEXT(hex), LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	lks_sql_add(&q,
	            "%sUPDATE %s SET payload = CONCAT(CAST(holder AS BINARY), UNHEX(?))"
	            " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	return lks_query_grant(c, &q, p, 4, NULL);
}

int lks_my_lease_get_payload(lks_conn *c, const char *t, const char *name, bool with_owner,
                             lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
#define MY_PAYLOAD \
	"CASE WHEN expires_at > UTC_TIMESTAMP(6) AND holder IS NOT NULL" \
	" AND LEFT(payload, 32) = CAST(holder AS BINARY) THEN HEX(SUBSTRING(payload, 33)) END"
	lks_sql_add(&q, "%s" MY_SELECT_ROW " WHERE name = ?", SYNC(c),
	            with_owner ? "owner, " MY_PAYLOAD : "NULL, " MY_PAYLOAD, t);
	return lks_my_query(c, q.buf, &p, 1, out);
}

int lks_my_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                        lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&q, "%s" MY_SELECT_ROW, SYNC(c), with_owner ? "owner" : "NULL", t);
	if (name)
		lks_sql_add(&q, " WHERE name = ?");
	else
		lks_sql_add(&q, " WHERE expires_at > UTC_TIMESTAMP(6) ORDER BY name");
	return lks_my_query(c, q.buf, &p, name ? 1 : 0, out);
}

/* The rows of a semaphore's slots prefix0 .. prefix(permits-1) that exist
 * (primary-key lookups; a recursive CTE, as MariaDB and MySQL 8 both have). */
int lks_my_lease_select_slots(lks_conn *c, const char *t, const char *prefix, int permits,
                              bool with_owner, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_INT(permits), LKS_TEXT(prefix)};
	lks_sql_add(&q, "%sWITH RECURSIVE s (k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < ?) "
	                MY_SELECT_ROW " WHERE name IN (SELECT CONCAT(?, k) FROM s)",
	            SYNC(c), with_owner ? "owner" : "NULL", t);
	return lks_my_query(c, q.buf, p, 2, out);
}

/* In one transaction: the row, locked (after a fenced write in flight),
 * then freed with its fence advanced if it was held. */
int lks_my_lease_force_release(lks_conn *c, const char *t, const char *name,
                               bool with_owner, lks_rows *out)
{
	lks_sql sel = {.len = 0}, up = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_rows r;
	int rc;
	lks_sql_add(&sel, "%s" MY_SELECT_ROW " WHERE name = ? FOR UPDATE", SYNC(c),
	            with_owner ? "owner" : "NULL", t);
	lks_sql_add(&up,
	            "UPDATE %s SET holder = NULL, fence = fence + 1, expires_at = UTC_TIMESTAMP(6)"
	            " WHERE name = ? AND expires_at > UTC_TIMESTAMP(6)",
	            t);
	if ((rc = lks_my_exec(c, "START TRANSACTION")))
		return rc;
	if ((rc = lks_my_query(c, sel.buf, &p, 1, out)) == LKS_OK) {
		if (out->nrows == 1 && !strcmp(lks_rows_get(out, 0, 4) ? lks_rows_get(out, 0, 4) : "", "1") &&
		    (rc = lks_my_query(c, up.buf, &p, 1, &r)) == LKS_OK)
			lks_rows_clear(&r);
		if (rc == LKS_OK)
			rc = lks_my_exec(c, "COMMIT");
		if (rc)
			lks_rows_clear(out);
	}
	if (rc)
		lks_my_rollback_keeping_error(c);
	return rc;
}

int64_t lks_my_session_id(lks_conn *c, char *server, size_t n)
{
	if (!c->native)
		return 0;
	snprintf(server, n, "%s", mysql_get_host_info(MY(c)) ? mysql_get_host_info(MY(c)) : "");
	return (int64_t)mysql_thread_id(MY(c));
}

/* A grant cut off by a lost connection: the old session may still run (or
 * be about to run) the statement. End it, wait until it is gone, then free
 * what it granted to that holder (names are bytes: the prefix is a range). */
int lks_my_give_back_untold(lks_conn *c, const char *t, const char *name, bool prefix,
                            const char *holder, int64_t old_session)
{
	char sql[160];
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(holder), LKS_TEXT(name), LKS_TEXT(name)};
	int64_t alive = 1;
	int rc;
	if (old_session > 0) {
		snprintf(sql, sizeof sql, "KILL CONNECTION %lld", (long long)old_session);
		if (lks_my_exec(c, sql) && c->err_no != 1094 /* ER_NO_SUCH_THREAD: already gone */)
			return c->err;
		lks_clear_error(c);
		snprintf(sql, sizeof sql,
		         "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %lld",
		         (long long)old_session);
		for (int i = 0; i < 500 && alive; i++) { /* a killed session ends at its next check */
			if ((rc = lks_query_int(c, sql, NULL, 0, &alive)))
				return rc;
			if (alive)
				lks_sleep_us(10000);
		}
	}
	lks_sql_add(&q,
	            "%sUPDATE %s SET holder = NULL, expires_at = UTC_TIMESTAMP(6)"
	            " WHERE holder = ? AND expires_at > UTC_TIMESTAMP(6) AND %s",
	            SYNC(c), t, prefix ? "name >= ? AND name < CONCAT(?, X'FF')" : "name = ? AND ? IS NOT NULL");
	return lks_exec_params(c, &q, p, 3, NULL);
}
