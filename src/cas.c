/* Optimistic concurrency: validated, quoted version-column CAS and reads. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "internal.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)
#define CAS_MAX_COLUMNS 13

typedef struct quoted_ref {
	char table[QMAX], key[QMAX], version[QMAX];
} quoted_ref;

static int check_value(lks_conn *c, const lks_value *v, const char *what)
{
	if (v->type == LKS_TYPE_TEXT && !v->s)
		return lks_set_error(c, LKS_EINVAL, "%s: text value is NULL", what);
	if (v->type != LKS_TYPE_NULL && v->type != LKS_TYPE_INT && v->type != LKS_TYPE_TEXT)
		return lks_set_error(c, LKS_EINVAL, "%s: unknown value type", what);
	return LKS_OK;
}

static int quote(lks_conn *c, const char *ident, char *out, const char *what)
{
	if (!ident)
		return lks_set_error(c, LKS_EINVAL, "%s is NULL", what);
	if (lks_ident_quote(ident, c->ops->quote, out, QMAX))
		return lks_set_error(c, LKS_EINVAL,
		                     "%s is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes, optional schema.)",
		                     what, LKS_IDENT_MAX);
	return LKS_OK;
}

/* Column names compare the way the server compares them: quoted identifiers
 * are case-sensitive on PostgreSQL, column names never are on MySQL (a SET
 * of `VER` would otherwise slip past the guard on `ver`). */
static bool same_column(const lks_conn *c, const char *a, const char *b)
{
	return c->ops->caps & LKS_CAP_NOCASE_COLUMNS ? !strcasecmp(a, b) : !strcmp(a, b);
}

static int quote_ref(lks_conn *c, const lks_row_ref *row, quoted_ref *q)
{
	int rc;
	if (!row)
		return lks_set_error(c, LKS_EINVAL, "row reference is NULL");
	if ((rc = quote(c, row->table, q->table, "table")) ||
	    (rc = quote(c, row->key_column, q->key, "key column")) ||
	    (rc = quote(c, row->version_column, q->version, "version column")))
		return rc;
	if (row->key.type == LKS_TYPE_NULL)
		return lks_set_error(c, LKS_EINVAL, "key value is NULL");
	if (strchr(row->key_column, '.') || strchr(row->version_column, '.'))
		return lks_set_error(c, LKS_EINVAL, "column names cannot be qualified");
	if (same_column(c, row->key_column, row->version_column))
		return lks_set_error(c, LKS_EINVAL, "key and version column are the same");
	return check_value(c, &row->key, "key");
}

/* Quote the SET columns into one allocation: columns may not repeat, nor be
 * the key or version column (the version is the library's to bump). */
static int quote_columns(lks_conn *c, const lks_row_ref *row,
                         const char *const *columns, size_t n, char ***out)
{
	char **q;
	int rc = LKS_OK;
	*out = NULL;
	if (n == 0)
		return LKS_OK;
	if (!columns)
		return lks_set_error(c, LKS_EINVAL, "columns is NULL");
	if (n > CAS_MAX_COLUMNS)
		return lks_set_error(c, LKS_EINVAL, "at most %d columns", CAS_MAX_COLUMNS);
	q = calloc(n, sizeof *q + QMAX);
	if (!q)
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		q[i] = (char *)(q + n) + i * QMAX;
		if ((rc = quote(c, columns[i], q[i], "column")))
			break;
		if (strchr(columns[i], '.'))
			rc = lks_set_error(c, LKS_EINVAL, "column names cannot be qualified");
		else if (row && (same_column(c, columns[i], row->version_column) ||
		                 same_column(c, columns[i], row->key_column)))
			rc = lks_set_error(c, LKS_EINVAL, "column %s is the key or version column", columns[i]);
		for (size_t j = 0; j < i && !rc; j++)
			if (same_column(c, columns[i], columns[j]))
				rc = lks_set_error(c, LKS_EINVAL, "column %s appears twice", columns[i]);
	}
	if (rc)
		free(q);
	else
		*out = q;
	return rc;
}

/*
 * The server said "out of range" (SQLSTATE 22003, MySQL 1264/1690): say what
 * overflowed. Only version + 1 is LKS_EOVERFLOW; a key or a SET value out of
 * its column's range is bad input (LKS_EINVAL). The backend tells which
 * (from the message, or by read-only probes). Nothing was written: the
 * statement failed.
 */
static int classify_overflow(lks_conn *c, const lks_row_ref *row, const quoted_ref *q,
                             int64_t expected)
{
	char server[LKS_ERRMSG_MAX];
	memcpy(server, c->errmsg, sizeof server); /* vsnprintf must not overlap */
	switch (c->ops->overflow_part(c, server, q->table, q->key, q->version, row->version_column,
	                              row->key)) {
	case LKS_OVERFLOW_UNPROBED:
		return lks_set_error(c, LKS_EOVERFLOW,
		                     "out of range: the version, the key or a value (not probed"
		                     " inside the caller's failed transaction): %s", server);
	case LKS_OVERFLOW_KEY:
		return lks_set_error(c, LKS_EINVAL, "key value is out of range for column %s: %s",
		                     row->key_column, server);
	case LKS_OVERFLOW_VERSION:
		return lks_set_error(c, LKS_EOVERFLOW, "version column %s cannot go past %lld: %s",
		                     row->version_column, (long long)expected, server);
	default:
		return lks_set_error(c, LKS_EINVAL, "a value is out of range for its column: %s", server);
	}
}

int lks_cas_update(lks_conn *c, const lks_row_ref *row, int64_t expected,
                   const char *const *columns, const lks_value *values,
                   size_t ncolumns, int64_t *version)
{
	quoted_ref q;
	char **cols = NULL;
	int64_t v = 0;
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if ((rc = quote_ref(c, row, &q)))
		return rc;
	if (ncolumns && !values)
		return lks_set_error(c, LKS_EINVAL, "values is NULL");
	for (size_t i = 0; i < ncolumns; i++)
		if ((rc = check_value(c, &values[i], "value")))
			return rc;
	if (expected < 0)
		return lks_set_error(c, LKS_EINVAL, "expected version is negative");
	if (expected == INT64_MAX)
		return lks_set_error(c, LKS_EOVERFLOW, "version %lld cannot be incremented",
		                     (long long)expected);
	if ((rc = quote_columns(c, row, columns, ncolumns, &cols)))
		return rc;
	int64_t t0 = c->event_fn ? lks_now_us() : 0;
	rc = c->ops->cas_update(c, q.table, q.key, q.version, row->key, expected,
	                        (const char *const *)cols, values, ncolumns, &v);
	free(cols);
	if (rc == LKS_OK || rc == LKS_CONFLICT || rc == LKS_NOT_FOUND)
		lks_emit(c, rc == LKS_OK ? LKS_EVENT_CAS_APPLIED
		          : rc == LKS_CONFLICT ? LKS_EVENT_CAS_CONFLICT : LKS_EVENT_CAS_NOT_FOUND,
		         row->table, 0, lks_now_us() - t0, 0, 0, rc);
	if (rc == LKS_EOVERFLOW)
		rc = classify_overflow(c, row, &q, expected);
	if (version && (rc == LKS_OK || rc == LKS_CONFLICT))
		*version = v;
	return rc;
}

int lks_cas_read(lks_conn *c, const lks_row_ref *row, const char *const *columns,
                 size_t ncolumns, int64_t *version, const char *const **texts)
{
	quoted_ref q;
	char **cols = NULL;
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if ((rc = quote_ref(c, row, &q)))
		return rc;
	if (ncolumns && !texts)
		return lks_set_error(c, LKS_EINVAL, "texts is NULL");
	if ((rc = quote_columns(c, NULL, columns, ncolumns, &cols)))
		return rc;
	lks_rows_clear(&c->last);
	{
		lks_sql sql = {.len = 0};
		char p[24];
		lks_sql_select_by_key(&sql, q.table, q.key, q.version, (const char *const *)cols, ncolumns,
		                      lks_param(c, 1, p));
		rc = sql.overflow ? lks_set_error(c, LKS_EINVAL, "statement too long")
		                  : c->ops->query(c, sql.buf, &row->key, 1, &c->last);
	}
	free(cols);
	if (rc)
		return rc;
	if (c->last.nrows == 0)
		return LKS_NOT_FOUND;
	if (!lks_rows_get(&c->last, 0, 0) || lks_parse_i64(lks_rows_get(&c->last, 0, 0), &(int64_t){0}))
		return lks_set_error(c, LKS_EDB, "version column is NULL or not an integer");
	if (version)
		lks_parse_i64(lks_rows_get(&c->last, 0, 0), version);
	if (ncolumns) {
		free(c->texts);
		c->texts = calloc(ncolumns, sizeof *c->texts);
		if (!c->texts)
			return lks_set_error(c, LKS_ENOMEM, "out of memory");
		for (size_t i = 0; i < ncolumns; i++)
			c->texts[i] = lks_rows_get(&c->last, 0, (int)i + 1);
		*texts = c->texts;
	}
	return LKS_OK;
}
