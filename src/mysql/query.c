/* MySQL backend: the prepared-statement cache, parameters and result
 * rows. */
#include "my.h"

static MYSQL_STMT *my_prepare(lks_conn *c, const char *sql)
{
	my_state *st = ST(c);
	MYSQL_STMT *s;
	for (int i = 0; i < st->n; i++)
		if (!strcmp(st->cache[i].sql, sql))
			return st->cache[i].stmt;
	if (st->n == MY_CACHE_MAX) {
		mysql_stmt_close(st->cache[0].stmt);
		free(st->cache[0].sql);
		memmove(&st->cache[0], &st->cache[1], sizeof(my_stmt) * (MY_CACHE_MAX - 1));
		st->n--;
	}
	if (!(s = mysql_stmt_init(MY(c)))) {
		lks_set_error(c, LKS_ENOMEM, "out of memory");
		return NULL;
	}
	if (mysql_stmt_prepare(s, sql, strlen(sql))) {
		lks_my_stmt_error(c, s);
		mysql_stmt_close(s);
		return NULL;
	}
	st->cache[st->n].sql = strdup(sql);
	if (!st->cache[st->n].sql) {
		mysql_stmt_close(s);
		lks_set_error(c, LKS_ENOMEM, "out of memory");
		return NULL;
	}
	st->cache[st->n++].stmt = s;
	return s;
}

/* Matched (not changed) rows for a connection without CLIENT_FOUND_ROWS. */
static int64_t my_matched_rows(lks_conn *c, MYSQL_STMT *s)
{
	const char *info;
	if (ST(c)->found_rows || !(info = mysql_info(MY(c))))
		return (int64_t)mysql_stmt_affected_rows(s);
	info = strstr(info, "Rows matched:");
	return info ? strtoll(info + 13, NULL, 10) : (int64_t)mysql_stmt_affected_rows(s);
}

static int my_fetch_rows(lks_conn *c, MYSQL_STMT *s, MYSQL_RES *meta, lks_rows *out)
{
	int ncols = (int)mysql_num_fields(meta), cap = 0, rc = LKS_OK, f;
	MYSQL_BIND *b = calloc((size_t)ncols, sizeof *b);
	char (*buf)[MY_CELL] = calloc((size_t)ncols, MY_CELL);
	unsigned long *len = calloc((size_t)ncols, sizeof *len);
	my_bool *isnull = calloc((size_t)ncols, sizeof *isnull);
	if (!b || !buf || !len || !isnull) {
		rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
		goto done;
	}
	out->ncols = ncols;
	for (int i = 0; i < ncols; i++) {
		b[i].buffer_type = MYSQL_TYPE_STRING;
		b[i].buffer = buf[i];
		b[i].buffer_length = MY_CELL;
		b[i].length = &len[i];
		b[i].is_null = &isnull[i];
	}
	if (mysql_stmt_bind_result(s, b)) {
		rc = lks_my_stmt_error(c, s);
		goto done;
	}
	while ((f = mysql_stmt_fetch(s)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		if (out->nrows == cap) {
			cap = cap ? cap * 2 : 8;
			char **cells = realloc(out->cells, sizeof(char *) * (size_t)(cap * ncols));
			if (!cells) {
				rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
				goto drain;
			}
			out->cells = cells;
		}
		for (int i = 0; i < ncols; i++) {
			char *v = NULL;
			if (!isnull[i]) {
				v = malloc(len[i] + 1);
				if (v && len[i] < MY_CELL) {
					memcpy(v, buf[i], len[i]);
				} else if (v) {
					/* longer than the bind buffer: fetch the whole value */
					MYSQL_BIND one = {0};
					one.buffer_type = MYSQL_TYPE_STRING;
					one.buffer = v;
					one.buffer_length = len[i] + 1;
					mysql_stmt_fetch_column(s, &one, (unsigned int)i, 0);
				}
				if (!v)
					rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
				else
					v[len[i]] = '\0';
			}
			out->cells[out->nrows * ncols + i] = v;
		}
		out->nrows++;
		if (rc)
			goto drain;
	}
	if (f == 1) /* an error inside the result (INSERT ... RETURNING that hit a
	             * lock wait timeout): on the statement or on the connection */
		rc = mysql_stmt_errno(s) ? lks_my_stmt_error(c, s) : lks_my_conn_error(c);
	goto done;
drain:
	while (mysql_stmt_fetch(s) == 0)
		;
done:
	free(b);
	free(buf);
	free(len);
	free(isnull);
	return rc;
}

int lks_my_query(lks_conn *c, const char *sql, const lks_value *params,
                 size_t n, lks_rows *out)
{
	MYSQL_BIND b[16];
	int64_t ints[16];
	unsigned long lens[16];
	MYSQL_STMT *s;
	MYSQL_RES *meta;
	int rc = LKS_OK;

	memset(out, 0, sizeof *out);
	if (n > 16)
		return lks_set_error(c, LKS_EINVAL, "too many parameters (max 16)");
	memset(b, 0, sizeof b);
	for (size_t i = 0; i < n; i++) {
		switch (params[i].type) {
		case LKS_TYPE_INT:
			ints[i] = params[i].i;
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = &ints[i];
			break;
		case LKS_TYPE_TEXT:
			if (!params[i].s)
				return lks_set_error(c, LKS_EINVAL, "text parameter %zu is NULL", i + 1);
			lens[i] = strlen(params[i].s);
			b[i].buffer_type = MYSQL_TYPE_STRING;
			b[i].buffer = (void *)(uintptr_t)params[i].s;
			b[i].buffer_length = lens[i];
			b[i].length = &lens[i];
			break;
		default:
			b[i].buffer_type = MYSQL_TYPE_NULL;
		}
	}
	if (!(s = my_prepare(c, sql)))
		return c->err;
	if (mysql_stmt_param_count(s) != n)
		return lks_set_error(c, LKS_EINVAL, "statement takes %lu parameters, %zu given",
		                     mysql_stmt_param_count(s), n);
	if ((n && mysql_stmt_bind_param(s, b)) || mysql_stmt_execute(s))
		return lks_my_stmt_error(c, s);
	meta = mysql_stmt_result_metadata(s);
	if (meta) {
		rc = my_fetch_rows(c, s, meta, out);
		out->affected = out->nrows;
		mysql_free_result(meta);
		mysql_stmt_free_result(s);
	} else {
		out->affected = my_matched_rows(c, s);
		out->insert_id = mysql_stmt_insert_id(s);
	}
	if (rc)
		lks_rows_clear(out);
	return rc;
}
