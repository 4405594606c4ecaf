/* PostgreSQL's SQL for processed-once records (src/once.c). Values go as
 * text: bytes as hex, decoded by the server. */
#include <stdio.h>
#include <string.h>
#include "internal.h"

/* An existing table must have the columns with their types, keys that
 * compare byte for byte, and exactly (scope, request_key) as its primary
 * key: the key's uniqueness is what makes a run (and a step) once. */
static int check_table(lks_conn *c, const char *what, const char *t,
                       const char *const (*want)[2], size_t n)
{
	lks_value p = LKS_TEXT(t);
	lks_rows r;
	int64_t pk = 0;
	int rc = lks_pg_columns(c, t, &r);
	if (rc)
		return rc;
	if (r.nrows == 0)
		rc = lks_set_error(c, LKS_EINVAL, "%s table %s does not exist: run lks_once_install (or"
		                                  " lockstock install --once) once", what, t);
	if (rc == LKS_OK)
		rc = lks_schema_columns(c, what, t, &r, want, n);
	for (size_t w = 0; w < 2 && rc == LKS_OK; w++)
		if (strcmp(lks_rows_get(&r, lks_rows_find(&r, 0, want[w][0]), 2), "1"))
			rc = lks_set_error(c, LKS_EINVAL, "%s table %s: column %s has a nondeterministic"
			                                  " collation; keys must compare byte for byte",
			                   what, t, want[w][0]);
	lks_rows_clear(&r);
	if (rc)
		return rc;
	rc = lks_query_int(c,
	                        "SELECT count(*) FROM pg_index i"
	                        " JOIN pg_attribute a0 ON a0.attrelid = i.indrelid AND a0.attnum = i.indkey[0]"
	                        " JOIN pg_attribute a1 ON a1.attrelid = i.indrelid AND a1.attnum = i.indkey[1]"
	                        " WHERE i.indrelid = to_regclass($1) AND i.indisprimary AND i.indnkeyatts = 2"
	                        " AND a0.attname = 'scope' AND a1.attname = 'request_key'",
	                        &p, 1, &pk);
	if (rc == LKS_OK && pk != 1)
		rc = lks_set_error(c, LKS_EINVAL, "%s table %s: the primary key is not exactly"
		                                  " (scope, request_key)", what, t);
	return rc;
}

static int check_schema(lks_conn *c, const char *t)
{
	static const char *const want[][2] = {
		{"scope", "text"}, {"request_key", "text"}, {"fingerprint", "bytea"},
		{"code", "integer"}, {"result", "bytea"}, {"fence", "bigint"},
		{"failed", "boolean"}, {"completed_at", "timestamp with time zone"},
	};
	return check_table(c, "once", t, want, sizeof want / sizeof *want);
}

static int check_steps(lks_conn *c, const char *st)
{
	static const char *const want[][2] = {
		{"scope", "text"}, {"request_key", "text"}, {"step", "text"},
		{"data", "bytea"}, {"fence", "bigint"}, {"saved_at", "timestamp with time zone"},
	};
	return check_table(c, "once steps", st, want, sizeof want / sizeof *want);
}

int lks_pg_once_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	int rc;
	lks_sql_add(&q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    scope        text NOT NULL,\n"
	            "    request_key  text NOT NULL,\n"
	            "    fingerprint  bytea,\n"
	            "    code         integer NOT NULL,\n"
	            "    result       bytea NOT NULL,\n"
	            "    fence        bigint NOT NULL,\n"
	            "    failed       boolean NOT NULL DEFAULT false,\n"
	            "    completed_at timestamptz NOT NULL,\n"
	            "    PRIMARY KEY (scope, request_key)\n"
	            ")",
	            t);
	if ((rc = c->ops->exec(c, q.buf)) || (rc = check_schema(c, t)))
		return rc;
	/* purge walks completed_at: an index, or each batch scans the table */
	/* named after the table (an index lives in its table's schema) */
	const char *base = strrchr(t, '.') ? strrchr(t, '.') + 1 : t;
	q.len = 0;
	lks_sql_add(&q, "CREATE INDEX IF NOT EXISTS %.*s_completed\" ON %s (completed_at)",
	            (int)(strlen(base) - 1), base, t);
	return c->ops->exec(c, q.buf);
}

int lks_pg_once_select(lks_conn *c, const char *t, const char *scope, const char *key,
                       lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q,
	            "SELECT code, encode(result, 'hex'), fence,"
	            " (extract(epoch FROM completed_at) * 1000000)::bigint,"
	            " encode(fingerprint, 'hex'), failed::int"
	            " FROM %s WHERE scope = $1 AND request_key = $2",
	            t);
	return c->ops->query(c, q.buf, p, 2, out);
}

int lks_pg_once_insert(lks_conn *c, const char *t, const char *scope, const char *key,
                       const char *fp, int code, const char *result, int64_t fence, bool failed)
{
	lks_sql q = {.len = 0};
	lks_value p[7] = {LKS_TEXT(scope), LKS_TEXT(key), fp ? LKS_TEXT(fp) : LKS_NULLV,
	                  LKS_INT(code),   LKS_TEXT(result), LKS_INT(fence), LKS_INT(failed)};
	lks_sql_add(&q,
	            "INSERT INTO %s (scope, request_key, fingerprint, code, result, fence, failed,"
	            " completed_at) VALUES ($1, $2, decode($3, 'hex'), $4, decode($5, 'hex'), $6,"
	            " $7 <> 0, clock_timestamp())",
	            t);
	return lks_exec_params(c, &q, p, 7, NULL);
}

int lks_pg_once_purge(lks_conn *c, const char *t, int64_t older_than_us, int batch,
                      int64_t *deleted)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_INT(older_than_us), LKS_INT(batch)};
	/* a batch of the oldest, skipping rows a run holds: short locks only */
	lks_sql_add(&q,
	            "DELETE FROM %s WHERE (scope, request_key) IN (SELECT scope, request_key FROM %s"
	            " WHERE completed_at < clock_timestamp() - $1 * interval '1 microsecond'"
	            " ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	            t, t);
	return lks_exec_params(c, &q, p, 2, deleted);
}

int lks_pg_once_list(lks_conn *c, const char *t, const char *scope, int limit, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {scope ? LKS_TEXT(scope) : LKS_NULLV, LKS_INT(limit)};
	lks_sql_add(&q,
	            "SELECT scope, request_key, code, encode(result, 'hex'), fence,"
	            " (extract(epoch FROM completed_at) * 1000000)::bigint,"
	            " encode(fingerprint, 'hex'), failed::int FROM %s"
	            " WHERE ($1::text IS NULL OR scope = $1) ORDER BY scope, request_key"
	            " LIMIT CASE WHEN $2 > 0 THEN $2 END",
	            t);
	return c->ops->query(c, q.buf, p, 2, out);
}

int lks_pg_once_forget(lks_conn *c, const char *t, const char *scope, const char *key)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	int rc;
	lks_sql_add(&q, "DELETE FROM %s WHERE scope = $1 AND request_key = $2", t);
	int64_t n = 0;
	if ((rc = lks_exec_params(c, &q, p, 2, &n)))
		return rc;
	return n == 1 ? LKS_OK : LKS_NOT_FOUND;
}

int lks_pg_once_steps_install(lks_conn *c, const char *st)
{
	lks_sql q = {.len = 0};
	lks_sql_add(&q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    scope        text NOT NULL,\n"
	            "    request_key  text NOT NULL,\n"
	            "    step         text NOT NULL,\n"
	            "    data         bytea NOT NULL,\n"
	            "    fence        bigint NOT NULL,\n"
	            "    saved_at     timestamptz NOT NULL,\n"
	            "    PRIMARY KEY (scope, request_key)\n"
	            ")",
	            st);
	int rc = c->ops->exec(c, q.buf);
	return rc ? rc : check_steps(c, st);
}

int lks_pg_once_step_put(lks_conn *c, const char *st, const char *scope, const char *key,
                         const char *step, const char *data, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[5] = {LKS_TEXT(scope), LKS_TEXT(key), LKS_TEXT(step), LKS_TEXT(data), LKS_INT(fence)};
	lks_sql_add(&q,
	            "INSERT INTO %s (scope, request_key, step, data, fence, saved_at)"
	            " VALUES ($1, $2, $3, decode($4, 'hex'), $5, clock_timestamp())"
	            " ON CONFLICT (scope, request_key) DO UPDATE SET step = EXCLUDED.step,"
	            " data = EXCLUDED.data, fence = EXCLUDED.fence, saved_at = EXCLUDED.saved_at",
	            st);
	return lks_exec_params(c, &q, p, 5, NULL);
}

int lks_pg_once_step_get(lks_conn *c, const char *st, const char *scope, const char *key,
                         lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q,
	            "SELECT step, encode(data, 'hex'), fence,"
	            " (extract(epoch FROM saved_at) * 1000000)::bigint"
	            " FROM %s WHERE scope = $1 AND request_key = $2",
	            st);
	return c->ops->query(c, q.buf, p, 2, out);
}

int lks_pg_once_step_delete(lks_conn *c, const char *st, const char *scope, const char *key)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q, "DELETE FROM %s WHERE scope = $1 AND request_key = $2", st);
	return lks_exec_params(c, &q, p, 2, NULL);
}
