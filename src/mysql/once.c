/* MySQL / MariaDB SQL for processed-once records (src/once.c). Values go as
 * text: bytes as hex, decoded by the server; times on UTC_TIMESTAMP(6). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* `db`.`t` -> db and t (validated identifiers: no backquote inside) */
static void split_table(const char *t, char *schema, char *table, size_t n)
{
	char plain[LKS_IDENT_MAX * 2 + 2];
	size_t k = 0;
	for (const char *p = t; *p && k + 1 < sizeof plain; p++)
		if (*p != '`')
			plain[k++] = *p;
	plain[k] = '\0';
	const char *dot = strchr(plain, '.');
	snprintf(schema, n, "%.*s", dot ? (int)(dot - plain) : 0, plain);
	snprintf(table, n, "%s", dot ? dot + 1 : plain);
}

/* A column lockstock writes: its type and, for VARBINARY, the length every
 * value it writes needs (a shorter column fails the INSERT, or under a
 * non-strict sql_mode cuts the key so that it is never found again). */
typedef struct column {
	const char *name, *type;
	long min_length; /* 0: the type says it all */
} column;

/* The table's columns with their types and lengths, DATETIME(6) times, and
 * exactly (scope, request_key) as the primary key: the key's uniqueness is
 * what makes a run (and a step) once. */
static int check_table(lks_conn *c, const char *what, const char *t, const column *want, size_t n)
{
	char schema[LKS_IDENT_MAX * 2 + 2], table[LKS_IDENT_MAX * 2 + 2];
	lks_rows r;
	int64_t pk = 0;
	int rc;
	split_table(t, schema, table, sizeof schema);
	lks_value p[3] = {LKS_TEXT(table), LKS_TEXT(schema), LKS_TEXT(schema)};
	rc = c->ops->query(c,
	                   "SELECT LOWER(COLUMN_NAME), LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, -1),"
	                   " COALESCE(CHARACTER_MAXIMUM_LENGTH, -1)"
	                   " FROM information_schema.COLUMNS WHERE TABLE_NAME = ?"
	                   " AND TABLE_SCHEMA = IF(? = '', DATABASE(), ?)",
	                   p, 3, &r);
	if (rc)
		return rc;
	if (r.nrows == 0)
		rc = lks_set_error(c, LKS_EINVAL, "%s table %s does not exist: run lks_once_install (or"
		                                  " lockstock install --once) once", what, t);
	for (size_t w = 0; w < n && rc == LKS_OK; w++) {
		int found = lks_rows_find(&r, 0, want[w].name);
		if (found < 0) {
			rc = lks_set_error(c, LKS_EINVAL, "%s table %s exists without column %s", what, t,
			                   want[w].name);
			break;
		}
		const char *type = lks_rows_get(&r, found, 1);
		long length = atol(lks_rows_get(&r, found, 3));
		if (strcmp(type, want[w].type))
			rc = lks_set_error(c, LKS_EINVAL, "%s table %s: column %s is %s, expected %s", what, t,
			                   want[w].name, type, want[w].type);
		else if (want[w].min_length > 0 && length < want[w].min_length)
			rc = lks_set_error(c, LKS_EINVAL,
			                   "%s table %s: column %s is %s(%ld), expected %s(%ld) or longer"
			                   " (longer values would fail or be cut)",
			                   what, t, want[w].name, type, length, type, want[w].min_length);
		else if (!strcmp(type, "datetime") && strcmp(lks_rows_get(&r, found, 2), "6"))
			rc = lks_set_error(c, LKS_EINVAL, "%s table %s: %s must be DATETIME(6)", what, t,
			                   want[w].name);
	}
	lks_rows_clear(&r);
	if (rc)
		return rc;
	rc = lks_query_int(c,
	                        "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS"
	                        " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = IF(? = '', DATABASE(), ?)"
	                        " AND INDEX_NAME = 'PRIMARY' GROUP BY INDEX_NAME HAVING COUNT(*) = 2"
	                        " AND MAX(SUB_PART) IS NULL"
	                        " AND GROUP_CONCAT(LOWER(COLUMN_NAME) ORDER BY SEQ_IN_INDEX) ="
	                        " 'scope,request_key') k",
	                        p, 3, &pk);
	if (rc == LKS_OK && pk != 1)
		rc = lks_set_error(c, LKS_EINVAL, "%s table %s: the primary key is not exactly"
		                                  " (scope, request_key)", what, t);
	return rc;
}

static int check_schema(lks_conn *c, const char *t)
{
	static const column want[] = {
		{"scope", "varbinary", LKS_LEASE_NAME_MAX},
		{"request_key", "varbinary", LKS_ONCE_KEY_MAX},
		{"fingerprint", "varbinary", LKS_ONCE_FINGERPRINT_MAX},
		{"code", "int", 0},
		{"result", "mediumblob", 0},
		{"fence", "bigint", 0},
		{"failed", "tinyint", 0},
		{"completed_at", "datetime", 0},
	};
	return check_table(c, "once", t, want, sizeof want / sizeof *want);
}

static int check_steps(lks_conn *c, const char *st)
{
	static const column want[] = {
		{"scope", "varbinary", LKS_LEASE_NAME_MAX},
		{"request_key", "varbinary", LKS_ONCE_KEY_MAX},
		{"step", "varbinary", LKS_ONCE_STEP_MAX},
		{"data", "mediumblob", 0},
		{"fence", "bigint", 0},
		{"saved_at", "datetime", 0},
	};
	return check_table(c, "once steps", st, want, sizeof want / sizeof *want);
}

int lks_my_once_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	int rc;
	lks_sql_add(&q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    scope        VARBINARY(255) NOT NULL,\n"
	            "    request_key  VARBINARY(255) NOT NULL,\n"
	            "    fingerprint  VARBINARY(1024) NULL,\n"
	            "    code         INT NOT NULL,\n"
	            "    result       MEDIUMBLOB NOT NULL,\n"
	            "    fence        BIGINT NOT NULL,\n"
	            "    failed       TINYINT NOT NULL DEFAULT 0,\n"
	            "    completed_at DATETIME(6) NOT NULL,\n"
	            "    PRIMARY KEY (scope, request_key),\n"
	            "    KEY completed (completed_at)\n"
	            ") ENGINE=InnoDB",
	            t);
	if ((rc = c->ops->exec(c, q.buf)))
		return rc;
	return check_schema(c, t);
}

int lks_my_once_select(lks_conn *c, const char *t, const char *scope, const char *key,
                       lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q,
	            "SELECT code, HEX(result), fence,"
	            " TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', completed_at),"
	            " LOWER(HEX(fingerprint)), failed FROM %s WHERE scope = ? AND request_key = ?",
	            t);
	return c->ops->query(c, q.buf, p, 2, out);
}

int lks_my_once_insert(lks_conn *c, const char *t, const char *scope, const char *key,
                       const char *fp, int code, const char *result, int64_t fence, bool failed)
{
	lks_sql q = {.len = 0};
	lks_value p[7] = {LKS_TEXT(scope), LKS_TEXT(key), fp ? LKS_TEXT(fp) : LKS_NULLV,
	                  LKS_INT(code),   LKS_TEXT(result), LKS_INT(fence), LKS_INT(failed)};
	lks_sql_add(&q,
	            "INSERT INTO %s (scope, request_key, fingerprint, code, result, fence, failed,"
	            " completed_at) VALUES (?, ?, UNHEX(?), ?, UNHEX(?), ?, ?, UTC_TIMESTAMP(6))",
	            t);
	return lks_exec_params(c, &q, p, 7, NULL);
}

int lks_my_once_purge(lks_conn *c, const char *t, int64_t older_than_us, int batch,
                      int64_t *deleted)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_INT(older_than_us), LKS_INT(batch)};
	lks_sql_add(&q,
	            "DELETE FROM %s WHERE completed_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND"
	            " ORDER BY completed_at LIMIT ?",
	            t);
	return lks_exec_params(c, &q, p, 2, deleted);
}

int lks_my_once_list(lks_conn *c, const char *t, const char *scope, int limit, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {scope ? LKS_TEXT(scope) : LKS_NULLV, scope ? LKS_TEXT(scope) : LKS_NULLV,
	                  LKS_INT(limit > 0 ? limit : INT32_MAX)};
	lks_sql_add(&q,
	            "SELECT scope, request_key, code, HEX(result), fence,"
	            " TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', completed_at),"
	            " LOWER(HEX(fingerprint)), failed FROM %s"
	            " WHERE (? IS NULL OR scope = ?) ORDER BY scope, request_key LIMIT ?",
	            t);
	return c->ops->query(c, q.buf, p, 3, out);
}

int lks_my_once_forget(lks_conn *c, const char *t, const char *scope, const char *key)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	int rc;
	lks_sql_add(&q, "DELETE FROM %s WHERE scope = ? AND request_key = ?", t);
	int64_t n = 0;
	if ((rc = lks_exec_params(c, &q, p, 2, &n)))
		return rc;
	return n == 1 ? LKS_OK : LKS_NOT_FOUND;
}

int lks_my_once_steps_install(lks_conn *c, const char *st)
{
	lks_sql q = {.len = 0};
	lks_sql_add(&q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    scope        VARBINARY(255) NOT NULL,\n"
	            "    request_key  VARBINARY(255) NOT NULL,\n"
	            "    step         VARBINARY(64) NOT NULL,\n"
	            "    data         MEDIUMBLOB NOT NULL,\n"
	            "    fence        BIGINT NOT NULL,\n"
	            "    saved_at     DATETIME(6) NOT NULL,\n"
	            "    PRIMARY KEY (scope, request_key)\n"
	            ") ENGINE=InnoDB",
	            st);
	int rc = c->ops->exec(c, q.buf);
	return rc ? rc : check_steps(c, st);
}

int lks_my_once_step_put(lks_conn *c, const char *st, const char *scope, const char *key,
                         const char *step, const char *data, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[5] = {LKS_TEXT(scope), LKS_TEXT(key), LKS_TEXT(step), LKS_TEXT(data), LKS_INT(fence)};
	lks_sql_add(&q,
	            "INSERT INTO %s (scope, request_key, step, data, fence, saved_at)"
	            " VALUES (?, ?, ?, UNHEX(?), ?, UTC_TIMESTAMP(6))"
	            " ON DUPLICATE KEY UPDATE step = VALUES(step), data = VALUES(data),"
	            " fence = VALUES(fence), saved_at = VALUES(saved_at)",
	            st);
	return lks_exec_params(c, &q, p, 5, NULL);
}

int lks_my_once_step_get(lks_conn *c, const char *st, const char *scope, const char *key,
                         lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q,
	            "SELECT step, HEX(data), fence,"
	            " TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', saved_at)"
	            " FROM %s WHERE scope = ? AND request_key = ?",
	            st);
	return c->ops->query(c, q.buf, p, 2, out);
}

int lks_my_once_step_delete(lks_conn *c, const char *st, const char *scope, const char *key)
{
	lks_sql q = {.len = 0};
	lks_value p[2] = {LKS_TEXT(scope), LKS_TEXT(key)};
	lks_sql_add(&q, "DELETE FROM %s WHERE scope = ? AND request_key = ?", st);
	return lks_exec_params(c, &q, p, 2, NULL);
}
