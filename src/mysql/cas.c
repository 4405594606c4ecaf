/* MySQL backend: the CAS statements and overflow classification. */
#include "my.h"

int lks_my_cas_update(lks_conn *c, const char *table, const char *key,
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
	/* Without a strict sql_mode the server would clamp version + 1 at the
	 * column's maximum and report the row changed. MariaDB: every CAS is
	 * strict for its own statement, whatever the session's sql_mode is now
	 * (the caller may SET SESSION sql_mode = '' after open); MySQL has no
	 * per-statement setting: refuse a connection that was not strict. */
	if (ST(c)->returning)
		lks_sql_add(&q, "SET STATEMENT sql_mode = 'STRICT_ALL_TABLES' FOR ");
	else if (!ST(c)->strict)
		return lks_set_error(c, LKS_EINVAL,
		                     "CAS needs a strict sql_mode (STRICT_ALL_TABLES or"
		                     " STRICT_TRANS_TABLES) on this connection");
	/* MySQL assigns left to right; no expression reads a column set
	 * earlier in this statement (version + 1 reads the old version). */
	lks_sql_add(&q, "UPDATE %s SET ", table);
	lks_sql_set_list(&q, c, cols, n);
	memcpy(p, values, n * sizeof *values);
	lks_sql_add(&q, "%s = %s + 1 WHERE %s = ? AND %s = ?", ver, ver, key, ver);
	p[n] = keyv;
	p[n + 1] = LKS_INT(expected);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = lks_my_query(c, q.buf, p, n + 2, &r)))
		return rc;
	bool applied = r.affected == 1;
	lks_rows_clear(&r);
	if (applied) {
		*version = expected + 1; /* no RETURNING; never re-read */
		return LKS_OK;
	}
	return lks_classify_miss(c, table, key, ver, keyv, "?", version);
}


/* MySQL names the column in its message ("Out of range value for column
 * 'version'", or "BIGINT value is out of range in `t`.`version` + 1") */
lks_overflow lks_my_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                  const char *key_q, const char *version_q,
                                  const char *version_column, lks_value key)
{
	char quoted[2 * LKS_IDENT_MAX + 16];
	(void)c;
	(void)table_q;
	(void)key_q;
	(void)key;
	snprintf(quoted, sizeof quoted, "'%s'", version_column);
	return strcasestr(server, quoted) || (strcasestr(server, version_q) && strstr(server, " + 1"))
	           ? LKS_OVERFLOW_VERSION
	           : LKS_OVERFLOW_VALUE;
}
