/* MySQL backend: lease-table DDL, migration and the schema check. */
#include "my.h"

/* An existing table must be one lockstock can trust: the columns it uses
 * with their types; a name that compares byte for byte (a case-insensitive
 * or PAD SPACE collation would make "Lease", "lease" and "lease " one
 * lease); DATETIME, not TIMESTAMP (session time zone, DST). */
/* The lease table's columns: lower-case name, data type. */
static int my_lease_columns(lks_conn *c, const char *table, lks_rows *r)
{
	const char *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	lks_value p[2] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema)};
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	return lks_my_query(c,
	                    dot ? "SELECT LOWER(COLUMN_NAME), LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, -1)"
	                      " FROM information_schema.COLUMNS WHERE TABLE_NAME = ? AND TABLE_SCHEMA = ?"
	                    : "SELECT LOWER(COLUMN_NAME), LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, -1)"
	                      " FROM information_schema.COLUMNS WHERE TABLE_NAME = ? AND TABLE_SCHEMA = DATABASE()",
	                    p, dot ? 2 : 1, r);
}

/* Whether name alone, whole (no prefix), is a PRIMARY or UNIQUE key: the
 * grant's INSERT ... ON DUPLICATE KEY UPDATE conflicts on nothing else, so
 * without one every acquirer inserts a row of its own and is granted. */
static int my_lease_name_is_key(lks_conn *c, const char *table, int64_t *keys)
{
	const char *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	lks_value p[2] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema)};
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	return lks_query_int(
		c,
		dot ? "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS"
		      " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = ? AND NON_UNIQUE = 0 GROUP BY INDEX_NAME"
		      " HAVING COUNT(*) = 1 AND MAX(LOWER(COLUMN_NAME)) = 'name'"
		      " AND MAX(SUB_PART) IS NULL) k"
		    : "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS"
		      " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0"
		      " GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(LOWER(COLUMN_NAME)) = 'name'"
		      " AND MAX(SUB_PART) IS NULL) k",
		p, dot ? 2 : 1, keys);
}

static int my_lease_check_schema(lks_conn *c, const char *table, bool *has_owner,
                                 bool *has_writes, bool *has_payload, bool *has_base)
{
	static const char *const want[][2] = {
		{"name", "varbinary"}, {"holder", "char"}, {"fence", "bigint"},
		{"acquired_at", "datetime"}, {"expires_at", "datetime"},
	};
	lks_rows r;
	int rc = my_lease_columns(c, table, &r);
	if (rc)
		return rc;
	*has_owner = lks_rows_find(&r, 0, "owner") >= 0;
	*has_writes = lks_rows_find(&r, 0, "writes") >= 0;
	*has_payload = lks_rows_find(&r, 0, "payload") >= 0;
	*has_base = lks_rows_find(&r, 0, "base") >= 0;
	if (r.nrows == 0)
		rc = lks_set_error(c, LKS_EDB,
		                   "lease table %s does not exist: run lks_lease_install(c) (or the command"
		                   " `lockstock install`) once", table);
	for (size_t w = 0; w < sizeof want / sizeof *want && rc == LKS_OK; w++) {
		int found = lks_rows_find(&r, 0, want[w][0]);
		if (found < 0)
			rc = lks_set_error(c, LKS_EINVAL, "lease table %s exists without column %s", table,
			                   want[w][0]);
		else if (strcmp(lks_rows_get(&r, found, 1), want[w][1]) &&
		         !(w == 1 && !strcmp(lks_rows_get(&r, found, 1), "varchar")))
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column %s is %s, expected %s%s", table,
			                   want[w][0], lks_rows_get(&r, found, 1), want[w][1],
			                   w == 0 ? " (names must compare byte for byte)" : "");
	}
	/* whole-second DATETIME: the server truncates the expiry it stores
	 * while renew and the holder's deadline count the full TTL */
	for (size_t w = 3; w < 5 && rc == LKS_OK; w++) {
		int found = lks_rows_find(&r, 0, want[w][0]);
		if (strcmp(lks_rows_get(&r, found, 2), "6"))
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column %s is DATETIME(%s), expected DATETIME(6)",
			                   table, want[w][0], lks_rows_get(&r, found, 2));
	}
	lks_rows_clear(&r);
	if (rc == LKS_OK) {
		int64_t keys = 0;
		if ((rc = my_lease_name_is_key(c, table, &keys)) == LKS_OK && keys < 1)
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column name is not a PRIMARY KEY or UNIQUE key of"
			                   " its own (without one every acquirer would be granted the lease)",
			                   table);
	}
	return rc;
}

void lks_my_lease_ddl(const char *t, lks_sql *q)
{
	/* VARBINARY name: exact byte comparison (no PAD SPACE, no case folding);
	 * DATETIME(6) with UTC_TIMESTAMP(6): independent of the session zone */
	lks_sql_add(q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    name        VARBINARY(%d) NOT NULL PRIMARY KEY,\n"
	            "    holder      CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,\n"
	            "    fence       BIGINT NOT NULL,\n"
	            "    acquired_at DATETIME(6) NULL,\n"
	            "    expires_at  DATETIME(6) NOT NULL,\n"
	            "    owner       VARBINARY(%d) NULL,\n"
	            "    writes      BIGINT NOT NULL DEFAULT 0,\n"
	            "    payload     BLOB NULL,\n"
	            "    base        BIGINT NOT NULL DEFAULT 0,\n"
	            "    CONSTRAINT lks_lease_name_nonempty CHECK (LENGTH(name) > 0),\n"
	            "    CONSTRAINT lks_lease_fence_nonneg CHECK (fence >= 0)\n"
	            ") ENGINE=InnoDB",
	            t, LKS_LEASE_NAME_MAX, LKS_OWNER_TAG_MAX);
}

/* Columns added since the first table: owner (labels), writes (the fenced
 * write's guard on Galera), payload, base (the fence floor's guard). */
#define ADDED_COLUMNS 4
static void add_column(lks_sql *q, size_t i, const char *sep, const char *if_not_exists)
{
	if (i == 0)
		lks_sql_add(q, "%s ADD COLUMN %sowner VARBINARY(%d) NULL", sep, if_not_exists,
		            LKS_OWNER_TAG_MAX);
	else if (i == 1)
		lks_sql_add(q, "%s ADD COLUMN %swrites BIGINT NOT NULL DEFAULT 0", sep, if_not_exists);
	else if (i == 2)
		lks_sql_add(q, "%s ADD COLUMN %spayload BLOB NULL", sep, if_not_exists);
	else
		lks_sql_add(q, "%s ADD COLUMN %sbase BIGINT NOT NULL DEFAULT 0", sep, if_not_exists);
}

/* An ALTER TABLE on MySQL (no SET STATEMENT) that waits at most 5 s for the
 * table's metadata lock, so lease calls never queue behind it. */
static int alter_within_5s(lks_conn *c, const char *alter)
{
	int rc = lks_my_exec(c, "SET @lks_lwt = @@SESSION.lock_wait_timeout, SESSION lock_wait_timeout = 5");
	if (rc)
		return rc;
	rc = lks_my_exec(c, alter);
	if (lks_my_exec(c, "SET SESSION lock_wait_timeout = @lks_lwt") && !rc)
		rc = c->err;
	return rc;
}

int lks_my_lease_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	lks_my_lease_ddl(t, &q);
	bool has[ADDED_COLUMNS];
	int rc = lks_my_exec(c, q.buf);
	if (rc || (rc = my_lease_check_schema(c, c->lease_table, &has[0], &has[1], &has[2], &has[3])) ||
	    (has[0] && has[1] && has[2] && has[3]))
		return rc;
	/* A table from an older version: add the columns in place
	 * (ALGORITHM=INSTANT: catalog only, no copy; a Galera cluster runs it on
	 * every node in turn), waiting at most 5 s for the table's metadata lock
	 * so lease calls never queue behind it. */
	q.len = 0;
	if (ST(c)->returning) { /* MariaDB: SET STATEMENT, IF NOT EXISTS */
		lks_sql_add(&q, "SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE %s", t);
		for (size_t i = 0; i < ADDED_COLUMNS; i++)
			add_column(&q, i, i ? "," : "", "IF NOT EXISTS ");
		lks_sql_add(&q, ", ALGORITHM=INSTANT");
		return lks_my_exec(c, q.buf);
	}
	lks_sql_add(&q, "ALTER TABLE %s", t);
	for (size_t i = 0, n = 0; i < ADDED_COLUMNS; i++)
		if (!has[i])
			add_column(&q, i, n++ ? "," : "", "");
	return alter_within_5s(c, q.buf);
}

/* Asked on a handle's first use of a table: the whole schema check, one
 * more query than the column list alone, so a table without a unique key
 * on name or with whole-second times is refused before any grant (MySQL's
 * INSERT ... ON DUPLICATE KEY UPDATE would grant every acquirer). */
int lks_my_lease_has_owner(lks_conn *c, const char *t, bool *has)
{
	bool writes, payload, base;
	(void)t;
	return my_lease_check_schema(c, c->lease_table, has, &writes, &payload, &base);
}

int lks_my_lease_has_payload(lks_conn *c, const char *t, bool *has)
{
	bool owner, writes, base;
	(void)t;
	return my_lease_check_schema(c, c->lease_table, &owner, &writes, has, &base);
}

int lks_my_lease_has_base(lks_conn *c, const char *t, bool *has)
{
	const char *table = c->lease_table, *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	int64_t n = 0;
	(void)t;
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	lks_value p[3] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema), LKS_TEXT(schema)};
	int rc = lks_query_int(c,
	                       "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_NAME = ?"
	                       " AND TABLE_SCHEMA = IF(? = '', DATABASE(), ?) AND LOWER(COLUMN_NAME) = 'base'",
	                       p, 3, &n);
	*has = n > 0;
	return rc;
}

/* base loses its default once, at the first purge: a catalog change
 * (waiting at most 5 s for the metadata lock). An older client's insert then
 * fails ("doesn't have a default value") under a strict sql_mode, the
 * default; a session with a non-strict sql_mode would still insert base 0:
 * upgrade every client before the first purge (GUIDE). */
int lks_my_lease_seal(lks_conn *c, const char *t)
{
	const char *table = c->lease_table, *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	lks_sql q = {.len = 0};
	int64_t n = -1;
	int rc;
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	lks_value p[3] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema), LKS_TEXT(schema)};
	if ((rc = lks_query_int(c,
	                        "SELECT COUNT(COLUMN_DEFAULT) FROM information_schema.COLUMNS"
	                        " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = IF(? = '', DATABASE(), ?)"
	                        " AND LOWER(COLUMN_NAME) = 'base' HAVING COUNT(*) > 0",
	                        p, 3, &n)))
		return rc;
	if (n < 0)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no base column: run lks_lease_install (lockstock"
		                     " install) with this version before the first purge",
		                     t);
	if (n == 0)
		return LKS_OK;
	if (ST(c)->returning) { /* MariaDB: SET STATEMENT */
		lks_sql_add(&q, "SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE %s ALTER COLUMN base"
		                " DROP DEFAULT", t);
		return lks_my_exec(c, q.buf);
	}
	lks_sql_add(&q, "ALTER TABLE %s ALTER COLUMN base DROP DEFAULT", t);
	return alter_within_5s(c, q.buf);
}
