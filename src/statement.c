/* Statements from the application (lks_conn_query, lks_conn_query_int):
 * one placeholder style, `?`, on both backends, and results as text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "internal.h"

/* Where a quoted part that starts at p ends (just past it), or NULL when p
 * starts none: '...' (with '' inside; E'...' with backslash escapes),
 * "...", -- to the end of the line, comments, and $tag$...$tag$. */
static const char *skip_quoted(const char *sql, const char *p)
{
	if (*p == '\'' || *p == '"') {
		char q = *p;
		bool backslash = q == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
		                 (p - 1 == sql || !(p[-2] == '_' || (p[-2] >= 'a' && p[-2] <= 'z') ||
		                                   (p[-2] >= 'A' && p[-2] <= 'Z') ||
		                                   (p[-2] >= '0' && p[-2] <= '9')));
		for (p++; *p; p++) {
			if (backslash && *p == '\\' && p[1])
				p++;
			else if (*p == q && p[1] == q)
				p++;
			else if (*p == q)
				return p + 1;
		}
		return p;
	}
	if (p[0] == '-' && p[1] == '-') {
		const char *nl = strchr(p, '\n');
		return nl ? nl + 1 : p + strlen(p);
	}
	if (p[0] == '/' && p[1] == '*') {
		const char *end = strstr(p + 2, "*/");
		return end ? end + 2 : p + strlen(p);
	}
	if (p[0] == '$') { /* $tag$ ... $tag$ (a tag is letters, digits, _) */
		const char *q = p + 1;
		while (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		       (q > p + 1 && *q >= '0' && *q <= '9'))
			q++;
		if (*q != '$')
			return NULL;
		size_t tag = (size_t)(q - p + 1);
		for (const char *e = q + 1; (e = strchr(e, '$')); e++)
			if (!strncmp(e, p, tag))
				return e + tag;
		return p + strlen(p);
	}
	return NULL;
}

/* PostgreSQL numbers its placeholders ($1, $2, ...): a statement written
 * with `?` gets them in order. Left alone (*out NULL): other backends, a
 * statement that already uses $n, one without `?` outside quotes. */
int lks_sql_portable(lks_backend backend, const char *sql, char **out)
{
	size_t marks = 0, n = 0;
	*out = NULL;
	if (backend != LKS_BACKEND_POSTGRESQL)
		return LKS_OK;
	for (const char *p = sql, *q; *p;) {
		if ((q = skip_quoted(sql, p))) {
			p = q;
			continue;
		}
		if (*p == '$' && p[1] >= '0' && p[1] <= '9')
			return LKS_OK; /* numbered already */
		marks += *p++ == '?';
	}
	if (marks == 0)
		return LKS_OK;
	char *s = malloc(strlen(sql) + marks * 10 + 1);
	size_t k = 0;
	if (!s)
		return LKS_ENOMEM;
	for (const char *p = sql, *q; *p;) {
		if ((q = skip_quoted(sql, p))) {
			memcpy(s + n, p, (size_t)(q - p));
			n += (size_t)(q - p);
			p = q;
		} else if (*p == '?') {
			n += (size_t)sprintf(s + n, "$%zu", ++k);
			p++;
		} else {
			s[n++] = *p++;
		}
	}
	s[n] = '\0';
	*out = s;
	return LKS_OK;
}

/* A result the caller owns: the rows as text. */
struct lks_result {
	lks_rows rows;
};

int lks_conn_query(lks_result **out, lks_conn *c, const char *sql, const lks_value *params,
                   size_t nparams)
{
	lks_result *r;
	char *portable = NULL;
	int rc = lks_conn_check(c);
	if (out)
		*out = NULL;
	if (rc)
		return rc;
	if (!out || !sql || !*sql || (nparams && !params))
		return lks_set_error(c, LKS_EINVAL, "lks_conn_query: NULL or empty argument");
	if (!(r = calloc(1, sizeof *r)))
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	if ((rc = lks_sql_portable(c->ops->id, sql, &portable))) {
		free(r);
		return lks_set_error(c, rc, "out of memory");
	}
	rc = c->ops->query(c, portable ? portable : sql, params, nparams, &r->rows);
	free(portable);
	if (rc) {
		lks_rows_clear(&r->rows);
		free(r);
		return rc;
	}
	*out = r;
	return LKS_OK;
}

size_t lks_result_rows(const lks_result *r)
{
	return r ? (size_t)r->rows.nrows : 0;
}

size_t lks_result_columns(const lks_result *r)
{
	return r ? (size_t)r->rows.ncols : 0;
}

const char *lks_result_text(const lks_result *r, size_t row, size_t column)
{
	if (!r || row >= (size_t)r->rows.nrows || column >= (size_t)r->rows.ncols)
		return NULL;
	return lks_rows_get(&r->rows, (int)row, (int)column);
}

int64_t lks_result_affected(const lks_result *r)
{
	return r ? r->rows.affected : 0;
}

void lks_result_free(lks_result *r)
{
	if (!r)
		return;
	lks_rows_clear(&r->rows);
	free(r);
}
