/* PostgreSQL backend: lease-table DDL, migration and the schema check. */
#include "pg.h"

int lks_pg_columns(lks_conn *c, const char *t, lks_rows *out)
{
	lks_value p = LKS_TEXT(t);
	return lks_pg_query(c,
	                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
	                    " coalesce(co.collisdeterministic, true)::int"
	                    " FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation"
	                    " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
	                    &p, 1, out);
}

/* An existing table must be one lockstock can trust: the columns it uses
 * with their types, and a name column that compares exactly (a
 * nondeterministic collation would make "Lease" and "lease" one lease). */
static int pg_lease_check_schema(lks_conn *c, const char *t)
{
	static const char *const want[][2] = {
		{"name", "text"}, {"holder", "text"}, {"fence", "bigint"},
		{"acquired_at", "timestamp with time zone"}, {"expires_at", "timestamp with time zone"},
	};
	lks_value p = LKS_TEXT(t);
	lks_rows r;
	int rc = lks_pg_columns(c, t, &r);
	if (rc)
		return rc;
	rc = lks_schema_columns(c, "lease", t, &r, want, sizeof want / sizeof *want);
	if (rc == LKS_OK && strcmp(lks_rows_get(&r, lks_rows_find(&r, 0, "name"), 2), "1"))
		rc = lks_set_error(c, LKS_EINVAL,
		                   "lease table %s: column name has a nondeterministic collation;"
		                   " names must compare byte for byte", t);
	lks_rows_clear(&r);
	if (rc == LKS_OK) {
		/* name alone must be a unique key: ON CONFLICT (name) needs one (a
		 * table without it fails every grant; say why at install) */
		int64_t keys = 0;
		rc = lks_query_int(c,
		                  "SELECT count(*) FROM pg_index i JOIN pg_attribute a"
		                  " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
		                  " WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1"
		                  " AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'name'",
		                  &p, 1, &keys);
		if (rc == LKS_OK && keys < 1)
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column name is not a PRIMARY KEY or UNIQUE key of"
			                   " its own", t);
	}
	return rc;
}

void lks_pg_lease_ddl(const char *t, lks_sql *q)
{
	/* No CHECK constraints: PostgreSQL rebuilds every CHECK expression from
	 * its stored text on each UPDATE, which cost 15-25% of the server's CPU
	 * per grant+release (measured with pgbench at 16 clients). lockstock
	 * checks names (1..LKS_LEASE_NAME_MAX bytes) before any statement, and
	 * fences only ever grow from 1. */
	lks_sql_add(q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    name        text PRIMARY KEY,\n"
	            "    holder      text,\n"
	            "    fence       bigint NOT NULL,\n"
	            "    acquired_at timestamptz,\n"
	            "    expires_at  timestamptz NOT NULL,\n"
	            "    owner       text,\n"
	            "    payload     bytea,\n"
	            "    base        bigint NOT NULL DEFAULT 0\n"
	            ")",
	            t);
}

/* What install changes in a table an older version made, as ALTER TABLE
 * clauses ("" when nothing): the owner column (0.2) and the CHECK
 * constraints older versions added, recognised by their exact definition
 * (a constraint of the caller's own stays). */
static int pg_lease_migration(lks_conn *c, const char *t, char *out, size_t size)
{
	lks_value p = LKS_TEXT(t);
	lks_rows r;
	int rc = lks_pg_query(c,
	                      "SELECT concat_ws(', ',"
	                      " CASE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                      " AND attname = 'owner' AND NOT attisdropped)"
	                      " THEN 'ADD COLUMN IF NOT EXISTS owner text' END,"
	                      " CASE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                      " AND attname = 'payload' AND NOT attisdropped)"
	                      " THEN 'ADD COLUMN IF NOT EXISTS payload bytea' END,"
	                      " CASE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                      " AND attname = 'base' AND NOT attisdropped)"
	                      " THEN 'ADD COLUMN IF NOT EXISTS base bigint NOT NULL DEFAULT 0' END,"
	                      " (SELECT string_agg(format('DROP CONSTRAINT IF EXISTS %I', conname), ', ')"
	                      " FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'c'"
	                      " AND pg_get_constraintdef(oid) IN ("
	                      "'CHECK (((octet_length(name) >= 1) AND (octet_length(name) <= 255)))',"
	                      " 'CHECK ((fence >= 0))')))",
	                      &p, 1, &r);
	if (rc)
		return rc;
	const char *v = r.nrows == 1 ? lks_rows_get(&r, 0, 0) : NULL;
	if (v && strlen(v) >= size)
		rc = lks_set_error(c, LKS_EINVAL, "lease table %s: migration too long", t);
	else
		snprintf(out, size, "%s", v ? v : "");
	lks_rows_clear(&r);
	return rc;
}

int lks_pg_lease_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	char change[512];
	lks_pg_lease_ddl(t, &q);
	int rc = lks_pg_exec(c, q.buf);
	if (rc || (rc = pg_lease_check_schema(c, t)) ||
	    (rc = pg_lease_migration(c, t, change, sizeof change)) || !*change)
		return rc;
	/* A table from an older version. Adding a nullable column without a
	 * default and dropping a CHECK only touch the catalog, but they need the
	 * table's exclusive lock: wait at most 5 s for it, or every lease call
	 * would queue behind this ALTER while it waits for a long transaction. */
	q.len = 0;
	bool ours = !lks_pg_in_transaction(c);
	if (!ours) /* the caller's migration: their lock policy */
		lks_sql_add(&q, "ALTER TABLE %s %s", t, change);
	else
		lks_sql_add(&q, "BEGIN; SET LOCAL lock_timeout = '5s'; ALTER TABLE %s %s; COMMIT", t,
		            change);
	if ((rc = lks_pg_exec(c, q.buf)) && ours && lks_pg_in_transaction(c)) {
		/* our own transaction failed: end it, keep the error */
		lks_error_saved saved;
		lks_error_save(c, &saved);
		PQclear(lks_pg_exec_res(c, "ROLLBACK"));
		lks_error_restore(c, &saved);
	}
	return rc;
}

static int pg_has_column(lks_conn *c, const char *t, const char *column, bool *has)
{
	lks_value p[2] = {LKS_TEXT(t), LKS_TEXT(column)};
	int64_t n = 0;
	int rc = lks_query_int(c,
	                            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                            " AND attname = $2 AND NOT attisdropped",
	                            p, 2, &n);
	*has = n > 0;
	return rc;
}

int lks_pg_lease_has_owner(lks_conn *c, const char *t, bool *has)
{
	lks_value p = LKS_TEXT(t);
	int64_t exists = 0;
	int rc = lks_query_int(c, "SELECT (to_regclass($1) IS NOT NULL)::int", &p, 1, &exists);
	if (rc == LKS_OK && !exists)
		return lks_set_error(c, LKS_EDB,
		                     "lease table %s does not exist: run lks_lease_install(c) (or the"
		                     " command `lockstock install`) once", c->lease_table);
	return rc ? rc : pg_has_column(c, t, "owner", has);
}

int lks_pg_lease_has_payload(lks_conn *c, const char *t, bool *has)
{
	return pg_has_column(c, t, "payload", has);
}

int lks_pg_lease_has_base(lks_conn *c, const char *t, bool *has)
{
	return pg_has_column(c, t, "base", has);
}

/* base loses its default once, at the first purge (the catalog only, under
 * the table's exclusive lock, waited for at most 5 s). */
int lks_pg_lease_seal(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(t);
	int64_t n = -1;
	int rc = lks_query_int(c,
	                       "SELECT count(*) FILTER (WHERE atthasdef) FROM pg_attribute"
	                       " WHERE attrelid = to_regclass($1) AND attname = 'base' AND NOT attisdropped"
	                       " HAVING count(*) > 0",
	                       &p, 1, &n);
	if (rc)
		return rc;
	if (n < 0)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no base column: run lks_lease_install (lockstock"
		                     " install) with this version before the first purge",
		                     t);
	if (n == 0)
		return LKS_OK;
	lks_sql_add(&q, "BEGIN; SET LOCAL lock_timeout = '5s'; ALTER TABLE %s ALTER COLUMN base DROP DEFAULT;"
	                " COMMIT", t);
	if ((rc = lks_pg_exec(c, q.buf)) && lks_pg_in_transaction(c)) {
		lks_error_saved saved;
		lks_error_save(c, &saved);
		PQclear(lks_pg_exec_res(c, "ROLLBACK"));
		lks_error_restore(c, &saved);
	}
	return rc;
}
