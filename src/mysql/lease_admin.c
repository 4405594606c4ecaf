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
