/* PostgreSQL backend: the prepared-statement cache (named per handle,
 * shape-checked) and queries with parameters. */
#include "pg.h"

/* Find or prepare the statement; prepared once per connection. */
static pg_stmt *pg_prepare_stmt(lks_conn *c, const char *sql, int nparams)
{
	pg_state *st = c->backend;
	pg_stmt *e;
	PGresult *res;
	for (int i = 0; i < st->n; i++)
		if (!strcmp(st->cache[i].sql, sql))
			return &st->cache[i];
	if (st->n == PG_CACHE_MAX) {
		/* evict the oldest; DEALLOCATE failing only leaks a server-side name */
		char dealloc[64];
		snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", st->cache[0].name);
		PQclear(lks_pg_exec_res(c, dealloc));
		free(st->cache[0].sql);
		memmove(&st->cache[0], &st->cache[1], sizeof(pg_stmt) * (PG_CACHE_MAX - 1));
		st->n--;
	}
	e = &st->cache[st->n];
	e->nfields = -1;
	snprintf(e->name, sizeof e->name, "lks_%s_%lu", st->prefix, st->next_id++);
	ST(c)->timed_out = false;
	res = PQsendPrepare(PG(c), e->name, sql, nparams, NULL) ? lks_pg_collect(c) : NULL;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		lks_pg_error(c, res);
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	e->sql = strdup(sql);
	if (!e->sql) {
		lks_set_error(c, LKS_ENOMEM, "out of memory");
		return NULL;
	}
	st->n++;
	return e;
}

const char *lks_pg_prepare(lks_conn *c, const char *sql, int nparams)
{
	pg_stmt *e = pg_prepare_stmt(c, sql, nparams);
	return e ? e->name : NULL;
}

/* The first result fixes the statement's shape; another shape later means
 * a statement lockstock did not prepare answered under its name. */
static int pg_check_shape(lks_conn *c, pg_stmt *e, const PGresult *res)
{
	int n = PQnfields(res);
	ExecStatusType s = PQresultStatus(res);
	if (e->nfields < 0) {
		e->nfields = n;
		e->status = s;
		for (int i = 0; i < n && i < PG_SHAPE_COLS; i++)
			e->types[i] = PQftype(res, i);
		return LKS_OK;
	}
	bool same = n == e->nfields && s == e->status;
	for (int i = 0; same && i < n && i < PG_SHAPE_COLS; i++)
		same = PQftype(res, i) == e->types[i];
	if (same)
		return LKS_OK;
	return lks_set_error(c, LKS_EDB,
	                     "statement %s answered with a result of another shape (%d columns,"
	                     " expected %d): not the statement lockstock prepared; behind a"
	                     " transaction pooler use prepare=off", e->name, n, e->nfields);
}

int lks_pg_bind(lks_conn *c, const lks_value *params, size_t n, pg_params *pp)
{
	char (*ints)[24] = pp->ints;
	const char **vals = pp->vals;
	if (n > 16)
		return lks_set_error(c, LKS_EINVAL, "too many parameters (max 16)");
	for (size_t i = 0; i < n; i++) {
		switch (params[i].type) {
		case LKS_TYPE_INT:
			snprintf(ints[i], sizeof ints[i], "%" PRId64, params[i].i);
			vals[i] = ints[i];
			break;
		case LKS_TYPE_TEXT:
			if (!params[i].s)
				return lks_set_error(c, LKS_EINVAL, "text parameter %zu is NULL", i + 1);
			vals[i] = params[i].s;
			break;
		default:
			vals[i] = NULL;
		}
	}
	return LKS_OK;
}

int lks_pg_query(lks_conn *c, const char *sql, const lks_value *params,
                 size_t n, lks_rows *out)
{
	pg_params pp;
	pg_stmt *e = NULL;
	PGresult *res;
	ExecStatusType s;
	int rc = LKS_OK;

	memset(out, 0, sizeof *out);
	if ((rc = lks_pg_bind(c, params, n, &pp)))
		return rc;
	if (ST(c)->unprepared) { /* the unnamed statement: parsed and run in one go */
		ST(c)->timed_out = false;
		res = PQsendQueryParams(PG(c), sql, (int)n, NULL, pp.vals, NULL, NULL, 0) ? lks_pg_collect(c) : NULL;
	} else {
		if (!(e = pg_prepare_stmt(c, sql, (int)n)))
			return c->err;
		ST(c)->timed_out = false;
		res = PQsendQueryPrepared(PG(c), e->name, (int)n, pp.vals, NULL, NULL, 0) ? lks_pg_collect(c)
		                                                                         : NULL;
	}
	s = PQresultStatus(res);
	if (e && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) && (rc = pg_check_shape(c, e, res))) {
		PQclear(res);
		return rc;
	}
	if (s == PGRES_TUPLES_OK) {
		out->nrows = PQntuples(res);
		out->ncols = PQnfields(res);
		out->affected = out->nrows;
		if (out->nrows * out->ncols > 0) {
			out->cells = calloc((size_t)(out->nrows * out->ncols), sizeof(char *));
			if (!out->cells) {
				rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
				out->nrows = 0;
			}
			for (int r = 0; rc == LKS_OK && r < out->nrows; r++)
				for (int f = 0; f < out->ncols; f++) {
					if (PQgetisnull(res, r, f))
						continue;
					char *v = strdup(PQgetvalue(res, r, f));
					if (!v)
						rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
					out->cells[r * out->ncols + f] = v;
				}
		}
	} else if (s == PGRES_COMMAND_OK) {
		const char *t = PQcmdTuples(res);
		out->affected = *t ? strtoll(t, NULL, 10) : 0;
	} else {
		rc = lks_pg_error(c, res);
	}
	PQclear(res);
	if (rc)
		lks_rows_clear(out);
	return rc;
}
