/* Connection handles: open by URL, dispatch to a backend, plain statements. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#ifdef LKS_WITH_MYSQL
#include <mysql.h>
#endif

int lks_library_init(void)
{
#ifdef LKS_WITH_MYSQL
	static int done;
	if (!done) {
		if (mysql_library_init(0, NULL, NULL))
			return LKS_EDB;
		done = 1;
	}
#endif
	return LKS_OK;
}

lks_conn *lks_conn_new(void)
{
	lks_conn *c = calloc(1, sizeof *c);
	if (c) {
		strcpy(c->lease_table, LKS_LEASE_TABLE_DEFAULT);
		c->owner_col = -1;
		c->op_timeout_us = LKS_OP_TIMEOUT_DEFAULT_S * 1000000LL;
	}
	return c;
}

int lks_conn_open(lks_conn **out, const char *url)
{
	lks_conn *c;
	lks_backend b;
	if (!out)
		return LKS_EINVAL;
	*out = c = lks_conn_new();
	if (!c)
		return LKS_ENOMEM;
	if (!url)
		return lks_set_error(c, LKS_EINVAL, "URL is NULL");
	b = lks_url_backend(url);
	switch (b) {
	case LKS_BACKEND_POSTGRESQL:
#ifdef LKS_WITH_PG
		if (lks_pg_open(c, url))
			lks_redact(c->errmsg, url); /* libpq quotes URL tokens */
		return c->err;
#else
		return lks_set_error(c, LKS_EUNSUPPORTED, "built without PostgreSQL support");
#endif
	case LKS_BACKEND_MYSQL:
#ifdef LKS_WITH_MYSQL
		if (lks_mysql_open(c, url))
			lks_redact(c->errmsg, url);
		return c->err;
#else
		return lks_set_error(c, LKS_EUNSUPPORTED, "built without MySQL support");
#endif
	default:
		return lks_set_error(c, LKS_EINVAL,
		                     "malformed URL: must start with postgresql://, postgres://, mysql:// or mariadb://");
	}
}

void lks_conn_close(lks_conn *c)
{
	if (!c)
		return;
	lks_lease_forget_batons(c);
	if (c->ops)
		c->ops->close(c);
	lks_rows_clear(&c->last);
	free(c->texts);
	if (c->url) { /* it may hold a password */
		explicit_bzero(c->url, strlen(c->url));
		free(c->url);
	}
	free(c);
}

int lks_conn_reset(lks_conn *c)
{
	char *url;
	int rc;
	if (!c || !c->ops)
		return LKS_EINVAL;
	if (!c->url)
		return lks_set_error(c, LKS_EINVAL, "reset needs a handle opened from a URL; reopen"
		                                    " an adopted connection yourself and adopt it again");
	/* the old session's statements and session locks are gone with it */
	lks_lease_forget_batons(c);
	c->ops->close(c);
	c->backend = NULL;
	c->owner_col = -1;
	lks_clear_error(c);
	url = c->url;
	c->url = NULL;
	switch (c->ops->id) {
#ifdef LKS_WITH_PG
	case LKS_BACKEND_POSTGRESQL:
		if ((rc = lks_pg_open(c, url)))
			lks_redact(c->errmsg, url);
		break;
#endif
#ifdef LKS_WITH_MYSQL
	case LKS_BACKEND_MYSQL:
		if ((rc = lks_mysql_open(c, url)))
			lks_redact(c->errmsg, url);
		break;
#endif
	default:
		rc = lks_set_error(c, LKS_EUNSUPPORTED, "backend not built in");
	}
	if (rc && !c->url) { /* keep the URL for the next try */
		c->url = url;
		return rc;
	}
	explicit_bzero(url, strlen(url));
	free(url);
	return rc;
}

lks_backend lks_conn_backend(const lks_conn *c)
{
	return c && c->ops ? c->ops->id : LKS_BACKEND_NONE;
}

/* Common entry check: a usable, connected handle. */
int lks_conn_check(lks_conn *c)
{
	if (!c)
		return LKS_EINVAL;
	if (!c->ops || !c->native)
		return lks_set_error(c, LKS_ECONN, "handle is not connected");
	lks_clear_error(c);
	return LKS_OK;
}

int lks_conn_exec(lks_conn *c, const char *sql)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!sql || !*sql)
		return lks_set_error(c, LKS_EINVAL, "SQL text is NULL or empty");
	return c->ops->exec(c, sql);
}

int lks_conn_query_int(lks_conn *c, const char *sql, const lks_value *params,
                       size_t nparams, int64_t *out)
{
	lks_rows r = {0};
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!sql || !*sql || !out || (nparams && !params))
		return lks_set_error(c, LKS_EINVAL, "NULL argument");
	rc = c->ops->query(c, sql, params, nparams, &r);
	if (rc == LKS_OK) {
		if (r.ncols == 0) {
			*out = r.affected;
		} else if (r.nrows == 0) {
			rc = LKS_NOT_FOUND;
		} else if (!lks_rows_get(&r, 0, 0) ||
		           lks_parse_i64(lks_rows_get(&r, 0, 0), out)) {
			rc = lks_set_error(c, LKS_EDB, "first column is not an integer");
		}
	}
	lks_rows_clear(&r);
	return rc;
}

int lks_conn_set_prepare(lks_conn *c, int on)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (on != 0 && on != 1)
		return lks_set_error(c, LKS_EINVAL, "prepare must be 0 or 1");
	return c->ops->set_prepare(c, on == 1);
}

const char *lks_version(void)
{
	return LKS_VERSION_STRING;
}

int lks_version_number(void)
{
	return LKS_VERSION_NUMBER;
}

int lks_conn_set_op_timeout(lks_conn *c, int64_t ms)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (ms < 0 || ms > 86400000)
		return lks_set_error(c, LKS_EINVAL, "op timeout must be 0 (none) .. 86400000 ms");
	if (c->ops->id != LKS_BACKEND_POSTGRESQL)
		return lks_set_error(c, LKS_EUNSUPPORTED,
		                     "MySQL: set MYSQL_OPT_READ_TIMEOUT and MYSQL_OPT_WRITE_TIMEOUT before"
		                     " connecting, or op-timeout in the URL");
	c->op_timeout_us = ms * 1000;
	return LKS_OK;
}

int lks_conn_set_event_hook(lks_conn *c, lks_event_fn fn, void *arg)
{
	if (!c)
		return LKS_EINVAL;
	c->event_fn = fn;
	c->event_arg = arg;
	return LKS_OK;
}

int lks_conn_set_log_hook(lks_conn *c, lks_log_fn fn, void *arg)
{
	if (!c)
		return LKS_EINVAL;
	c->log_fn = fn;
	c->log_arg = arg;
	return LKS_OK;
}

void lks_emit(lks_conn *c, lks_event_kind kind, const char *name, int64_t fence,
              int64_t duration_us, int polls, int attempt, int status)
{
	lks_event ev;
	if (!c || !c->event_fn)
		return;
	ev.kind = kind;
	ev.name = name;
	ev.fence = fence;
	ev.duration_us = duration_us;
	ev.polls = polls;
	ev.attempt = attempt;
	ev.status = status;
	c->event_fn(&ev, c->event_arg);
}

void lks_log(lks_conn *c, int level, const char *fmt, ...)
{
	char msg[LKS_ERRMSG_MAX];
	va_list ap;
	if (!c || !c->log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->log_fn(level, msg, c->log_arg);
}
