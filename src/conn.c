/* Connection handles: open by URL, dispatch to a backend, plain statements. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int lks_library_init(void)
{
	return lks_backends_init();
}

lks_conn *lks_conn_new(void)
{
	lks_conn *c = calloc(1, sizeof *c);
	if (c) {
		strcpy(c->lease_table, LKS_LEASE_TABLE_DEFAULT);
		c->owner_col = c->payload_col = c->base_col = -1;
		c->op_timeout_us = LKS_OP_TIMEOUT_DEFAULT_S * 1000000LL;
	}
	return c;
}

int lks_conn_open(lks_conn **out, const char *url)
{
	lks_conn *c;
	const lks_backend_ops *ops;
	int rc;
	if (!out)
		return LKS_EINVAL;
	*out = c = lks_conn_new();
	if (!c)
		return LKS_ENOMEM;
	if (!url)
		return lks_set_error(c, LKS_EINVAL, "URL is NULL");
	if ((rc = lks_backend_for_url(c, url, &ops)))
		return rc;
	if ((rc = ops->open(c, url)))
		lks_redact(c->errmsg, url); /* the client libraries quote URL tokens */
	return rc;
}

static void end_session(lks_conn *c)
{
	if (c->session_end)
		c->session_end(c);
}

void lks_conn_close(lks_conn *c)
{
	if (!c)
		return;
	end_session(c);
	if (c->ops)
		c->ops->close(c);
	lks_rows_clear(&c->last);
	free(c->texts);
	lks_free_secret(c->url); /* it may hold a password */
	free(c);
}

int lks_conn_reset(lks_conn *c)
{
	char *url;
	const lks_backend_ops *ops;
	int rc;
	if (!c || !c->ops)
		return LKS_EINVAL;
	if (!c->url)
		return lks_set_error(c, LKS_EINVAL, "reset needs a handle opened from a URL; reopen"
		                                    " an adopted connection yourself and adopt it again");
	/* the old session's statements and session locks are gone with it */
	end_session(c);
	ops = c->ops;
	ops->close(c);
	c->backend = NULL;
	c->owner_col = c->payload_col = c->base_col = -1;
	lks_clear_error(c);
	url = c->url;
	c->url = NULL;
	if ((rc = ops->open(c, url)))
		lks_redact(c->errmsg, url);
	if (rc && !c->url) { /* keep the URL for the next try */
		c->url = url;
		return rc;
	}
	lks_free_secret(url);
	if (rc == LKS_OK)
		lks_untold_give_back(c);
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
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	char *portable = NULL;
	if (!sql || !*sql || !out || (nparams && !params))
		return lks_set_error(c, LKS_EINVAL, "NULL argument");
	if ((rc = lks_sql_portable(c->ops->id, sql, &portable)))
		return lks_set_error(c, rc, "out of memory");
	rc = lks_query_int(c, portable ? portable : sql, params, nparams, out);
	free(portable);
	return rc;
}

int lks_query_int(lks_conn *c, const char *sql, const lks_value *params, size_t nparams,
                  int64_t *out)
{
	lks_rows r = {0};
	int rc = c->ops->query(c, sql, params, nparams, &r);
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
	if (!(c->ops->caps & LKS_CAP_OP_TIMEOUT))
		return lks_set_error(c, LKS_EUNSUPPORTED, "%s", c->ops->no_op_timeout);
	c->op_timeout_us = ms * 1000;
	return LKS_OK;
}

int lks_conn_set_clock_offset(lks_conn *c, int64_t ms)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (ms < 0 || ms > 60000)
		return lks_set_error(c, LKS_EINVAL, "clock offset must be 0..60000 ms");
	c->clock_offset_us = ms * 1000;
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
