/* PostgreSQL SQL for lease-table cleanup (src/lease_purge.c). The fence
 * floor is the row named '' (lockstock never grants an empty name). */
#include <stdio.h>
#include <string.h>
#include "internal.h"

/* The floor rises to the largest fence in the table (only when below it:
 * an idle purge writes nothing), committed before any row goes; a grant
 * reads it with a share lock (pg_lease_try), so it sees the risen value or
 * waits for this statement. The bound is that largest fence: at or under
 * the floor either way. */
int lks_pg_lease_floor_raise(lks_conn *c, const char *t, int64_t *bound)
{
	lks_sql q = {.len = 0};
	lks_rows r;
	int rc;
	lks_sql_add(&q,
	            "WITH m AS (SELECT coalesce(max(fence), 0) AS m FROM %s WHERE name <> ''),"
	            " up AS (INSERT INTO %s AS f (name, holder, fence, acquired_at, expires_at, base)"
	            " SELECT '', NULL, m, NULL, 'epoch', 1 FROM m"
	            " ON CONFLICT (name) DO UPDATE SET fence = excluded.fence"
	            " WHERE f.fence < excluded.fence RETURNING 1)"
	            " SELECT m, (SELECT count(*) FROM up) FROM m",
	            t, t);
	if ((rc = c->ops->query(c, q.buf, NULL, 0, &r)))
		return rc;
	*bound = 0;
	if (r.nrows == 1)
		lks_parse_i64(lks_rows_get(&r, 0, 0), bound);
	lks_rows_clear(&r);
	return LKS_OK;
}

/* One batch in name order after the cursor: free rows past their age with
 * a fence under the floor. Rows another transaction has locked (a grant in
 * flight) are skipped, never waited for. */
int lks_pg_lease_purge_batch(lks_conn *c, const char *t, const char *after, int64_t older_than_us,
                             int64_t bound, int batch, int64_t *deleted, bool *more, char *next,
                             size_t nextsz)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_TEXT(after), LKS_INT(older_than_us), LKS_INT(bound), LKS_INT(batch)};
	lks_rows r;
	int rc;
	lks_sql_add(&q,
	            "WITH d AS (DELETE FROM %s WHERE name IN (SELECT name FROM %s WHERE name > $1"
	            " AND expires_at < clock_timestamp() - $2 * interval '1 microsecond'"
	            " AND fence <= $3 ORDER BY name LIMIT $4 FOR UPDATE SKIP LOCKED)"
	            " RETURNING name) SELECT count(*), max(name) FROM d",
	            t, t);
	*more = false;
	if ((rc = c->ops->query(c, q.buf, p, 4, &r)))
		return rc;
	*deleted = 0;
	if (r.nrows == 1) {
		lks_parse_i64(lks_rows_get(&r, 0, 0), deleted);
		*more = *deleted == batch; /* fewer: the scan reached the end */
		const char *m = lks_rows_get(&r, 0, 1);
		if (m && strlen(m) < nextsz)
			snprintf(next, nextsz, "%s", m);
	}
	lks_rows_clear(&r);
	return LKS_OK;
}
