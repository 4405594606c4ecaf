/* MySQL / MariaDB SQL for lease-table cleanup (src/lease_purge.c). The
 * fence floor is the row named X'FF', a byte no UTF-8 name holds. Names
 * travel as hex, the cursor too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mysql.h>
#include "internal.h"

/* The largest fence, read without locks (a locking read of every row would
 * stall the grants behind it), then the floor raised to it in its own
 * committed statement, only when it is below: an idle purge writes nothing
 * (on Galera, nothing to replicate). A grant reads the floor with a share
 * lock (my_lease_try_returning), so it sees this value or waits for it. */
int lks_my_lease_floor_raise(lks_conn *c, const char *t, int64_t *bound)
{
	lks_sql sel = {.len = 0}, up = {.len = 0};
	lks_value p;
	lks_rows r;
	int64_t floor = -1;
	int rc;
	lks_sql_add(&sel,
	            "SELECT COALESCE(MAX(fence), 0), (SELECT fence FROM %s WHERE name = X'FF')"
	            " FROM %s WHERE name <> X'FF'",
	            t, t);
	if ((rc = c->ops->query(c, sel.buf, NULL, 0, &r)))
		return rc;
	*bound = 0;
	if (r.nrows == 1) {
		lks_parse_i64(lks_rows_get(&r, 0, 0), bound);
		if (lks_rows_get(&r, 0, 1))
			lks_parse_i64(lks_rows_get(&r, 0, 1), &floor);
	}
	lks_rows_clear(&r);
	if (floor >= *bound)
		return LKS_OK;
	p = LKS_INT(*bound);
	lks_sql_add(&up,
	            "INSERT INTO %s (name, holder, fence, acquired_at, expires_at, base)"
	            " VALUES (X'FF', NULL, ?, NULL, '1970-01-01', 1)"
	            " ON DUPLICATE KEY UPDATE fence = GREATEST(fence, VALUES(fence))",
	            t);
	return lks_exec_params(c, &up, &p, 1, NULL);
}

/* One batch: the names read without locks in key order after the cursor,
 * then deleted by exact key (a lock on those rows only; InnoDB would lock
 * every row a range DELETE scans), each checked again as it goes. */
int lks_my_lease_purge_batch(lks_conn *c, const char *t, const char *after, int64_t older_than_us,
                             int64_t bound, int batch, int64_t *deleted, bool *more, char *next,
                             size_t nextsz)
{
	lks_sql sel = {.len = 0};
	lks_value p[4] = {LKS_TEXT(after), LKS_INT(older_than_us), LKS_INT(bound), LKS_INT(batch)};
	lks_rows r;
	char *sql = NULL;
	size_t len = 0, cap;
	int rc;
	*deleted = 0;
	*more = false;
	lks_sql_add(&sel,
	            "SELECT HEX(name) FROM %s WHERE name > UNHEX(?) AND name <> X'FF'"
	            " AND expires_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND AND fence <= ?"
	            " ORDER BY name LIMIT ?",
	            t);
	if ((rc = c->ops->query(c, sel.buf, p, 4, &r)))
		return rc;
	if (r.nrows == 0)
		goto done;
	cap = 512 + strlen(t) + (size_t)r.nrows * (2 * LKS_LEASE_NAME_MAX + 4);
	if (!(sql = malloc(cap))) {
		rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
		goto done;
	}
	len = (size_t)snprintf(sql, cap,
	                       "SET STATEMENT innodb_lock_wait_timeout = 1 FOR DELETE FROM %s"
	                       " WHERE name IN (",
	                       t);
	for (int i = 0; i < r.nrows; i++) /* hex digits only: safe as literals */
		len += (size_t)snprintf(sql + len, cap - len, "%sX'%s'", i ? "," : "",
		                        lks_rows_get(&r, i, 0));
	snprintf(sql + len, cap - len,
	         ") AND expires_at < UTC_TIMESTAMP(6) - INTERVAL %lld MICROSECOND AND fence <= %lld",
	         (long long)older_than_us, (long long)bound);
	if ((rc = c->ops->exec(c, sql)))
		goto done;
	*deleted = (int64_t)mysql_affected_rows((MYSQL *)c->native);
	const char *last = lks_rows_get(&r, r.nrows - 1, 0);
	if (strlen(last) < nextsz)
		snprintf(next, nextsz, "%s", last);
	*more = r.nrows == batch;
done:
	free(sql);
	lks_rows_clear(&r);
	return rc;
}
