/* PostgreSQL backend: the CAS statements and overflow classification. */
#include "pg.h"

int lks_pg_cas_update(lks_conn *c, const char *table, const char *key,
                      const char *ver, lks_value keyv, int64_t expected,
                      const char *const *cols, const lks_value *values,
                      size_t n, int64_t *version)
{
	lks_sql q = {.len = 0};
	lks_value p[16];
	lks_rows r;
	int rc;
	if (n > 13)
		return lks_set_error(c, LKS_EINVAL, "at most 13 columns per CAS");
	lks_sql_add(&q, "UPDATE %s SET ", table);
	lks_sql_set_list(&q, c, cols, n);
	memcpy(p, values, n * sizeof *values);
	lks_sql_add(&q, "%s = %s + 1 WHERE %s = $%zu AND %s = $%zu RETURNING %s", ver,
	            ver, key, n + 1, ver, n + 2, ver);
	p[n] = keyv;
	p[n + 1] = LKS_INT(expected);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = lks_pg_query(c, q.buf, p, n + 2, &r)))
		return rc;
	if (r.nrows == 1) {
		rc = lks_parse_i64(lks_rows_get(&r, 0, 0), version);
		lks_rows_clear(&r);
		return rc ? lks_set_error(c, LKS_EDB, "version column is not an integer") : LKS_OK;
	}
	lks_rows_clear(&r);
	/* no row matched: classify with a second, read-only query */
	return lks_classify_miss(c, table, key, ver, keyv, "$1", version);
}


/* Does this probe fail with a numeric overflow? */
static bool probe_overflows(lks_conn *c, const char *sql, lks_value key)
{
	lks_rows r;
	int rc = lks_pg_query(c, sql, &key, 1, &r);
	lks_rows_clear(&r);
	return rc == LKS_EOVERFLOW;
}

/* PostgreSQL does not name the column that overflowed: two read-only
 * probes tell (the key alone, then version + 1); none can run inside the
 * caller's transaction, which the error aborted. */
lks_overflow lks_pg_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                  const char *key_q, const char *version_q,
                                  const char *version_column, lks_value key)
{
	char sql[3 * (2 * LKS_IDENT_MAX + 8) + 64];
	(void)server;
	(void)version_column;
	if (lks_pg_in_transaction(c))
		return LKS_OVERFLOW_UNPROBED;
	snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE %s = $1", table_q, key_q);
	if (probe_overflows(c, sql, key))
		return LKS_OVERFLOW_KEY;
	snprintf(sql, sizeof sql, "SELECT %s + 1 FROM %s WHERE %s = $1", version_q, table_q, key_q);
	return probe_overflows(c, sql, key) ? LKS_OVERFLOW_VERSION : LKS_OVERFLOW_VALUE;
}
