/* PostgreSQL backend (libpq): connection, prepared-statement cache, and the
 * CAS and lease statements in PostgreSQL's dialect. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "internal.h"
#include "lockstock-pg.h"

#define PG_CACHE_MAX 64

#define PG_SHAPE_COLS 16

typedef struct pg_stmt {
	char *sql;
	char name[40];
	/* the result's shape, from its first execution: a later result of
	 * another shape came from another statement under this name */
	int nfields; /* -1: not seen yet */
	ExecStatusType status;
	Oid types[PG_SHAPE_COLS];
} pg_stmt;

typedef struct pg_state {
	pg_stmt cache[PG_CACHE_MAX];
	int n;
	unsigned long next_id;
	char prefix[17]; /* random per handle: names never meet another
	                    handle's on a shared or re-adopted connection */
	bool unprepared; /* prepare=off: no named statement outlives its call
	                    (transaction poolers), and no session locks */
	bool timed_out;   /* the last call shut the connection: no answer */
	bool unanswered_cancel; /* ... to a cancel request within CANCEL_GRACE_US */
} pg_state;

#define ST(c) ((pg_state *)(c)->backend)
/* how long a canceled statement may run on before its socket is shut down */
#define CANCEL_GRACE_US 1000000

#define PG(c) ((PGconn *)(c)->native)
#define REMAINING_US "(extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::bigint"

static int pg_error(lks_conn *c, PGresult *res)
{
	if (ST(c)->timed_out && ST(c)->unanswered_cancel)
		return lks_set_error(c, LKS_ECONN,
		                     "postgresql: the server did not end the canceled statement within"
		                     " %d ms; the connection is closed: lks_conn_reset or reopen it",
		                     CANCEL_GRACE_US / 1000);
	if (ST(c)->timed_out)
		return lks_set_error(c, LKS_ECONN,
		                     "postgresql: no answer within the op timeout (%lld ms); the connection"
		                     " is closed: lks_conn_reset or reopen it",
		                     (long long)(c->op_timeout_us / 1000));
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
	                                                      : PQerrorMessage(PG(c));
	int code = PQstatus(PG(c)) == CONNECTION_BAD ? LKS_ECONN : lks_map_sqlstate(state);
	lks_set_db_error(c, code, state, 0, msg);
	/* a statement this handle prepared is gone, or its name is taken: the
	 * server connection changed under us */
	if (state && (!strcmp(state, "26000") || !strcmp(state, "42P05"))) {
		size_t n = strlen(c->errmsg);
		snprintf(c->errmsg + n, sizeof c->errmsg - n,
		         " (lockstock's prepared statements live on one server connection: behind"
		         " a transaction pooler such as PgBouncer, add prepare=off to the URL or"
		         " call lks_conn_set_prepare(c, 0))");
	}
	return code;
}

/* A cancel request in flight: freed by whichever of the sender thread and
 * the waiting statement lets go of it last. */
typedef struct pg_cancel_req {
	PGcancel *pc;
	atomic_int done, refs;
} pg_cancel_req;

static void cancel_req_put(pg_cancel_req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1) {
		PQfreeCancel(r->pc);
		free(r);
	}
}

static void *pg_cancel_thread(void *arg)
{
	pg_cancel_req *r = arg;
	char err[256];
	PQcancel(r->pc, err, sizeof err); /* blocks while the server is silent */
	atomic_store(&r->done, 1);
	cancel_req_put(r);
	return NULL;
}

/* PostgreSQL's cancel request is a new connection to the server: sent from
 * a detached thread, so neither the tripping thread nor this one waits on a
 * server that does not answer. NULL when it could not be sent. */
static pg_cancel_req *pg_send_cancel(lks_conn *c)
{
	pg_cancel_req *r = calloc(1, sizeof *r);
	pthread_attr_t a;
	pthread_t th;
	if (!r || !(r->pc = PQgetCancel(PG(c)))) {
		free(r);
		return NULL;
	}
	atomic_store(&r->refs, 2);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &a, pg_cancel_thread, r)) {
		PQfreeCancel(r->pc);
		free(r);
		r = NULL; /* the grace period ends the statement instead */
	}
	pthread_attr_destroy(&a);
	return r;
}

/* The statement ended: let the cancel request finish first (until the
 * deadline), so it cannot land on the handle's next statement. */
static void pg_cancel_settle(pg_cancel_req *r, int64_t deadline)
{
	if (!r)
		return;
	while (!atomic_load(&r->done) && lks_now_us() < deadline)
		lks_sleep_us(1000);
	cancel_req_put(r);
}

/*
 * Wait until libpq can hand over a result without blocking, or the handle's
 * op timeout passes: then the socket is shut down (a server that stopped
 * answering: SIGSTOP, a black-holed network) and false. Every statement
 * goes through here, so no call blocks forever. The cancel token of the
 * statement in flight (if any) is polled too: once it trips, a cancel
 * request goes out, and a statement still running CANCEL_GRACE_US later
 * is cut off the same way.
 */
static bool pg_wait_ready(lks_conn *c, int64_t deadline)
{
	bool sent = false;
	pg_cancel_req *req = NULL;
	ST(c)->unanswered_cancel = false;
	while (PQisBusy(PG(c))) {
		struct pollfd p[2] = {{.fd = PQsocket(PG(c)), .events = POLLIN},
		                      {.fd = sent ? -1 : lks_cancel_fd(c->cancel), .events = POLLIN}};
		int64_t left = deadline - lks_now_us();
		int r;
		if (deadline != INT64_MAX && left <= 0) {
			shutdown(p[0].fd, SHUT_RDWR);
			ST(c)->timed_out = true;
			ST(c)->unanswered_cancel = sent;
			pg_cancel_settle(req, 0); /* cut off: no next statement on it */
			return false;
		}
		r = poll(p, 2, deadline != INT64_MAX ? (int)(left / 1000 + 1 < INT_MAX ? left / 1000 + 1 : INT_MAX) : -1);
		if (r < 0 && errno != EINTR)
			break; /* libpq reports the broken connection */
		if (r > 0 && (p[1].revents & POLLIN)) {
			int64_t grace = lks_now_us() + CANCEL_GRACE_US;
			sent = true;
			req = pg_send_cancel(c);
			if (grace < deadline)
				deadline = grace;
		}
		if (r > 0 && p[0].revents && !PQconsumeInput(PG(c)))
			break;
	}
	pg_cancel_settle(req, deadline);
	return true;
}

static int64_t pg_deadline(lks_conn *c)
{
	ST(c)->timed_out = false;
	return c->op_timeout_us > 0 ? lks_now_us() + c->op_timeout_us : INT64_MAX;
}

/* PQexec's result, bounded by the op timeout: the first error, else the
 * last result; NULL when nothing came (pg_error tells why). */
static PGresult *pg_collect(lks_conn *c)
{
	int64_t deadline = pg_deadline(c);
	PGresult *keep = NULL, *r;
	for (;;) {
		if (!pg_wait_ready(c, deadline)) {
			PQclear(keep);
			return NULL;
		}
		if (!(r = PQgetResult(PG(c))))
			break;
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(r);
		} else {
			PQclear(keep);
			keep = r;
		}
		if (PQstatus(PG(c)) == CONNECTION_BAD)
			break;
	}
	return keep;
}

static PGresult *pg_exec_res(lks_conn *c, const char *sql)
{
	ST(c)->timed_out = false;
	return PQsendQuery(PG(c), sql) ? pg_collect(c) : NULL;
}

static void pg_close(lks_conn *c)
{
	pg_state *st = c->backend;
	if (st) {
		/* a borrowed connection goes back to its owner without our
		 * statements; best effort, not inside a failed transaction */
		bool clean = c->native && c->borrowed && PQstatus(PG(c)) == CONNECTION_OK &&
		             PQtransactionStatus(PG(c)) == PQTRANS_IDLE;
		for (int i = 0; i < st->n; i++) {
			if (clean) {
				char dealloc[64];
				snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", st->cache[i].name);
				PQclear(pg_exec_res(c, dealloc));
			}
			free(st->cache[i].sql);
		}
		free(st);
	}
	if (c->native && !c->borrowed)
		PQfinish(PG(c));
	c->native = NULL;
}

static int pg_init_state(lks_conn *c)
{
	uint64_t r;
	c->ops = &lks_pg_ops;
	c->backend = calloc(1, sizeof(pg_state));
	if (!c->backend)
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	if (lks_random_bytes(&r, sizeof r))
		r = (uint64_t)lks_now_us() ^ (uint64_t)(uintptr_t)c;
	snprintf(((pg_state *)c->backend)->prefix, 17, "%016" PRIx64, r);
	return LKS_OK;
}

/* libpq accepts any port text and fails only when connecting; a malformed
 * URL should be told apart from an unreachable server. */
static bool ports_valid(const char *v)
{
	while (*v) {
		size_t n = strspn(v, "0123456789");
		long port = n && n <= 5 ? strtol(v, NULL, 10) : 0;
		if (port < 1 || port > 65535 || (v[n] != ',' && v[n] != '\0'))
			return false;
		v += n + (v[n] == ',');
	}
	return true;
}

/* Server notices (DROP ... CASCADE and such) are not the caller's output. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* prepare=on|off and op-timeout=SECONDS are lockstock's, not libpq's:
 * taken out of the URL. */
static int pg_take_params(lks_conn *c, const char *url, char **libpq_url, bool *unprepared)
{
	char *v = NULL, *t = NULL, *mid = NULL;
	int rc = lks_url_take_param(url, "prepare", &mid, &v);
	if (rc == LKS_OK)
		rc = lks_url_take_param(mid, "op_timeout", libpq_url, &t);
	if (mid)
		explicit_bzero(mid, strlen(mid));
	free(mid);
	if (rc) {
		free(v);
		free(t);
		return lks_set_error(c, rc, rc == LKS_EINVAL ? "malformed URL: bad percent escape" : "out of memory");
	}
	*unprepared = v && !strcmp(v, "off");
	if (v && strcmp(v, "off") && strcmp(v, "on"))
		rc = lks_set_error(c, LKS_EINVAL, "malformed URL: prepare must be on or off");
	if (t) {
		char *end;
		long s = strtol(t, &end, 10);
		if (!*t || *end || s < 0 || s > 86400)
			rc = lks_set_error(c, LKS_EINVAL, "malformed URL: op-timeout must be 0 (none) .. 86400 seconds");
		else
			c->op_timeout_us = s * 1000000LL;
	}
	free(v);
	free(t);
	return rc;
}

static int pg_open(lks_conn *c, const char *url)
{
	char *err = NULL, *libpq_url = NULL;
	bool ok = true, unprepared = false;
	PQconninfoOption *opts;
	if (pg_take_params(c, url, &libpq_url, &unprepared)) {
		free(libpq_url);
		return c->err;
	}
	if (c->op_timeout_us > 0 && !strstr(libpq_url, "connect_timeout=")) {
		/* connecting is bounded too */
		size_t n = strlen(libpq_url) + 40;
		char *with = malloc(n);
		if (!with) {
			lks_set_error(c, LKS_ENOMEM, "out of memory");
			goto out;
		}
		snprintf(with, n, "%s%cconnect_timeout=%lld", libpq_url, strchr(libpq_url, '?') ? '&' : '?',
		         (long long)((c->op_timeout_us + 999999) / 1000000));
		explicit_bzero(libpq_url, strlen(libpq_url));
		free(libpq_url);
		libpq_url = with;
	}
	opts = PQconninfoParse(libpq_url, &err);
	if (!opts) {
		lks_set_error(c, err ? LKS_EINVAL : LKS_ENOMEM, "malformed URL: %s",
		              err ? err : "out of memory");
		PQfreemem(err);
		goto out;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "port") && o->val && !ports_valid(o->val))
			ok = false;
	PQconninfoFree(opts);
	if (!ok) {
		lks_set_error(c, LKS_EINVAL, "malformed URL: bad port (1..65535)");
		goto out;
	}
	if (pg_init_state(c))
		goto out;
	ST(c)->unprepared = unprepared;
	c->native = PQconnectdb(libpq_url);
	if (!c->native) {
		lks_set_error(c, LKS_ENOMEM, "out of memory");
		goto out;
	}
	if (PQstatus(PG(c)) != CONNECTION_OK) {
		lks_set_db_error(c, LKS_ECONN, NULL, 0, PQerrorMessage(PG(c)));
		PQfinish(PG(c));
		c->native = NULL;
		goto out;
	}
	PQsetNoticeProcessor(PG(c), quiet_notice, NULL);
	/* the whole URL: auto-renew connects the same way */
	c->url = strdup(url);
	if (!c->url)
		lks_set_error(c, LKS_ENOMEM, "out of memory");
out:
	if (libpq_url) /* it may hold a password */
		explicit_bzero(libpq_url, strlen(libpq_url));
	free(libpq_url);
	return c->err;
}

int lks_conn_adopt_pg(lks_conn **out, PGconn *pg)
{
	lks_conn *c;
	if (!out)
		return LKS_EINVAL;
	*out = c = lks_conn_new();
	if (!c)
		return LKS_ENOMEM;
	if (!pg)
		return lks_set_error(c, LKS_EINVAL, "PGconn is NULL");
	if (pg_init_state(c))
		return c->err;
	c->native = pg;
	c->borrowed = true;
	if (PQstatus(pg) != CONNECTION_OK)
		return lks_set_error(c, LKS_ECONN, "PGconn is not connected");
	return LKS_OK;
}

PGconn *lks_conn_pg(lks_conn *c)
{
	return c && c->ops == &lks_pg_ops ? PG(c) : NULL;
}

static int pg_exec(lks_conn *c, const char *sql)
{
	PGresult *res = pg_exec_res(c, sql);
	int rc = LKS_OK;
	ExecStatusType s = PQresultStatus(res);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		rc = pg_error(c, res);
	PQclear(res);
	return rc;
}

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
		PQclear(pg_exec_res(c, dealloc));
		free(st->cache[0].sql);
		memmove(&st->cache[0], &st->cache[1], sizeof(pg_stmt) * (PG_CACHE_MAX - 1));
		st->n--;
	}
	e = &st->cache[st->n];
	e->nfields = -1;
	snprintf(e->name, sizeof e->name, "lks_%s_%lu", st->prefix, st->next_id++);
	ST(c)->timed_out = false;
	res = PQsendPrepare(PG(c), e->name, sql, nparams, NULL) ? pg_collect(c) : NULL;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_error(c, res);
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

static const char *pg_prepare(lks_conn *c, const char *sql, int nparams)
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

/* Parameters as text (libpq's text format). */
typedef struct pg_params {
	char ints[16][24];
	const char *vals[16];
} pg_params;

static int pg_bind(lks_conn *c, const lks_value *params, size_t n, pg_params *pp)
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

static int pg_query(lks_conn *c, const char *sql, const lks_value *params,
                    size_t n, lks_rows *out)
{
	pg_params pp;
	pg_stmt *e = NULL;
	PGresult *res;
	ExecStatusType s;
	int rc = LKS_OK;

	memset(out, 0, sizeof *out);
	if ((rc = pg_bind(c, params, n, &pp)))
		return rc;
	if (ST(c)->unprepared) { /* the unnamed statement: parsed and run in one go */
		ST(c)->timed_out = false;
		res = PQsendQueryParams(PG(c), sql, (int)n, NULL, pp.vals, NULL, NULL, 0) ? pg_collect(c) : NULL;
	} else {
		if (!(e = pg_prepare_stmt(c, sql, (int)n)))
			return c->err;
		ST(c)->timed_out = false;
		res = PQsendQueryPrepared(PG(c), e->name, (int)n, pp.vals, NULL, NULL, 0) ? pg_collect(c)
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
		rc = pg_error(c, res);
	}
	PQclear(res);
	if (rc)
		lks_rows_clear(out);
	return rc;
}

static int pg_commit(lks_conn *c)
{
	PGresult *res = pg_exec_res(c, "COMMIT");
	int rc = LKS_OK;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = pg_error(c, res);
	else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		/* COMMIT of a failed transaction answers ROLLBACK */
		rc = lks_set_error(c, LKS_EDB, "transaction was rolled back, not committed");
	PQclear(res);
	return rc;
}

/* A dead connection (PQTRANS_UNKNOWN) is not in a transaction: calls on it
 * go on to report the lost connection. */
static bool pg_in_transaction(lks_conn *c)
{
	PGTransactionStatusType s = PQtransactionStatus(PG(c));
	return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

static int pg_quote(const char *ident, char *out, size_t outsz)
{
	return lks_ident_quote(ident, '"', out, outsz);
}

static int pg_cas_update(lks_conn *c, const char *table, const char *key,
                         const char *ver, lks_value keyv, int64_t expected,
                         const char *const *cols, const lks_value *values,
                         size_t n, int64_t *version)
{
	lks_sql q = {.len = 0};
	lks_value p[16];
	lks_rows r;
	int rc;
	if (n > 13)
		return lks_set_error(c, LKS_EINVAL, "at most 13 columns per CAS");
	lks_sql_add(&q, "UPDATE %s SET ", table);
	for (size_t i = 0; i < n; i++) {
		lks_sql_add(&q, "%s = $%zu, ", cols[i], i + 1);
		p[i] = values[i];
	}
	lks_sql_add(&q, "%s = %s + 1 WHERE %s = $%zu AND %s = $%zu RETURNING %s", ver,
	            ver, key, n + 1, ver, n + 2, ver);
	p[n] = keyv;
	p[n + 1] = LKS_INT(expected);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = pg_query(c, q.buf, p, n + 2, &r)))
		return rc;
	if (r.nrows == 1) {
		rc = lks_parse_i64(lks_rows_get(&r, 0, 0), version);
		lks_rows_clear(&r);
		return rc ? lks_set_error(c, LKS_EDB, "version column is not an integer") : LKS_OK;
	}
	lks_rows_clear(&r);
	/* no row matched: classify with a second, read-only query */
	return lks_classify_miss(c, table, key, ver, keyv, "$1", version);
}

static int pg_cas_read(lks_conn *c, const char *table, const char *key,
                       const char *ver, lks_value keyv, const char *const *cols,
                       size_t n, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_sql_select_by_key(&q, table, key, ver, cols, n, "$1");
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	return pg_query(c, q.buf, &keyv, 1, out);
}

int lks_pg_columns(lks_conn *c, const char *t, lks_rows *out)
{
	lks_value p = LKS_TEXT(t);
	return pg_query(c,
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

static int pg_lease_has_owner(lks_conn *c, const char *t, bool *has);

static void pg_lease_ddl(const char *t, lks_sql *q)
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
	            "    owner       text\n"
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
	int rc = pg_query(c,
	                  "SELECT concat_ws(', ',"
	                  " CASE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                  " AND attname = 'owner' AND NOT attisdropped)"
	                  " THEN 'ADD COLUMN IF NOT EXISTS owner text' END,"
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

static int pg_lease_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	char change[512];
	pg_lease_ddl(t, &q);
	int rc = pg_exec(c, q.buf);
	if (rc || (rc = pg_lease_check_schema(c, t)) ||
	    (rc = pg_lease_migration(c, t, change, sizeof change)) || !*change)
		return rc;
	/* A table from an older version. Adding a nullable column without a
	 * default and dropping a CHECK only touch the catalog, but they need the
	 * table's exclusive lock: wait at most 5 s for it, or every lease call
	 * would queue behind this ALTER while it waits for a long transaction. */
	q.len = 0;
	bool ours = !pg_in_transaction(c);
	if (!ours) /* the caller's migration: their lock policy */
		lks_sql_add(&q, "ALTER TABLE %s %s", t, change);
	else
		lks_sql_add(&q, "BEGIN; SET LOCAL lock_timeout = '5s'; ALTER TABLE %s %s; COMMIT", t,
		            change);
	if ((rc = pg_exec(c, q.buf)) && ours && pg_in_transaction(c)) {
		/* our own transaction failed: end it, keep the error */
		char msg[LKS_ERRMSG_MAX];
		memcpy(msg, c->errmsg, sizeof msg);
		PQclear(pg_exec_res(c, "ROLLBACK"));
		memcpy(c->errmsg, msg, sizeof msg);
	}
	return rc;
}

/* Whether this session holds the baton (pg_locks shows a bigint key as
 * classid = high 32 bits, objid = low 32 bits, objsubid = 1). */
static int pg_baton_held(lks_conn *c, uint64_t baton, int *held)
{
	lks_value k[2] = {LKS_INT((int64_t)(baton >> 32)), LKS_INT((int64_t)(baton & 0xffffffffu))};
	int64_t n = 0;
	int rc = lks_query_int(c,
	                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
	                            " AND pid = pg_backend_pid() AND granted AND objsubid = 1"
	                            " AND classid = $1::bigint::oid AND objid = $2::bigint::oid",
	                            k, 2, &n);
	*held = n > 0;
	return rc;
}

/* The plain UPDATE that grants a free or expired lease (see pg_lease_try);
 * a busy, locked or never-seen lease matches nothing here. The baton is
 * checked (PEEK: taken and given back at once) only once the row qualifies;
 * TRY, which keeps it, always goes through the full statement. */
static int pg_lease_try_lean(lks_conn *c, const char *t, const lks_value *p, size_t np,
                             lks_baton_mode mode, lks_grant *g)
{
	lks_sql q = {.len = 0};
	lks_rows r;
	int rc;
	/* without the waiting room (NONE) no text names an advisory-lock
	 * function: engines that lack them (CockroachDB) run these statements */
	lks_sql_add(&q,
	            "UPDATE %s SET holder = $2, fence = fence + 1, acquired_at = clock_timestamp(),"
	            " expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE name = $1 AND expires_at <= clock_timestamp()"
	            " AND CASE WHEN (SELECT CASE WHEN $4::int <> 3 THEN true %s"
	            " ELSE false END FROM (SELECT set_config('lock_timeout', $6::text, true)) s) THEN true"
	            " ELSE expires_at <= clock_timestamp() - interval '%d milliseconds' END"
	            " RETURNING fence, " REMAINING_US,
	            t, np > 6 ? ", owner = $7" : "",
	            mode == LKS_BATON_NONE ? "WHEN $5::bigint IS NULL THEN false"
	                                   : "WHEN pg_try_advisory_lock($5::bigint) THEN pg_advisory_unlock($5::bigint)",
	            LKS_BATON_STALE_MS);
	rc = pg_query(c, q.buf, p, np, &r);
	if (rc) /* LKS_ETRANSIENT: the row is locked and the wait used up: busy */
		return rc;
	if (r.nrows == 1) {
		g->granted = 1;
		lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

/*
 * One round trip decides the grant. The UPDATE grants a free or expired
 * lease: rows that do not match its WHERE in the snapshot are skipped without
 * a row lock, and a row that changed meanwhile is re-checked on its latest
 * version (EvalPlanQual, with clock_timestamp() evaluated again), so two
 * callers never both win. A name never seen is inserted (ON CONFLICT DO
 * NOTHING: a racing insert just makes this attempt busy). The last branch
 * reports the holder's fence and time left.
 *
 * CTE b runs first and once: it takes the baton (unless held already; see
 * lks_baton_mode for grants without it: a new name, a baton left behind) and
 * bounds this statement's row-lock wait by the caller's time left
 * (set_config(..., true) lasts until the end of this implicit transaction;
 * lease.c refuses to run inside the caller's transaction). A row lock is
 * only ever waited for when the snapshot shows the lease free or expired,
 * that is behind a stale holder's fenced write or a racing grant.
 *
 * A new name starts at the table's fence floor + 1 (lks_lease_purge). The
 * floor is read with a share lock, which sees its latest committed value
 * (or waits for a purge raising it): the statement's snapshot alone could
 * predate a whole insert, release and purge of the same name. Evaluated
 * only when the insert runs (a name the snapshot has no row for).
 *
 * Why not the single INSERT ... ON CONFLICT DO UPDATE ... WHERE expired: it
 * locks the row even when the lease is held, so every busy poll queues on the
 * row lock, in front of the holder's fenced write.
 */
/* The shortest row-lock wait a grant statement is given, whatever the
 * caller's time left: a poll overruns the deadline by at most this much. */
#define LOCK_WAIT_FLOOR_US 50000

static int pg_lease_try(lks_conn *c, const char *t, const char *name,
                        const char *holder, const char *owner_tag, int64_t ttl_us,
                        lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                        lks_grant *g)
{
	lks_sql q = {.len = 0};
	char timeout[32];
	lks_value p[7] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(ttl_us), LKS_INT(mode),
	                  LKS_INT((int64_t)baton), LKS_TEXT(timeout), LKS_TEXT(owner_tag)};
	size_t np = owner_tag ? 7 : 6;
	bool lean_first = mode == LKS_BATON_WOKEN ||
	                  ((mode == LKS_BATON_PEEK || mode == LKS_BATON_NONE) && !g->skip_lean);
	lks_rows r;
	int rc;
	if (mode == LKS_BATON_WOKEN)
		p[3] = LKS_INT(mode = LKS_BATON_HELD);
	/* lock_timeout 0 would mean "wait forever"; the floor lets a free lease's
	 * grant ride out a short relation-extension or index lock wait instead
	 * of calling it busy (seen at 16 threads with 1 ms) */
	snprintf(timeout, sizeof timeout, "%lldms",
	         (long long)(lock_wait_us > LOCK_WAIT_FLOOR_US ? lock_wait_us : LOCK_WAIT_FLOOR_US) / 1000);
	g->granted = 0;
	g->fence = 0;
	g->remaining_us = -1;
	g->baton = mode == LKS_BATON_HELD;
	g->released = 0;
	g->statements = 1;
	if (lean_first) {
		/* A first poll, and a waiter the release just woke, try the common
		 * case first, as lean as the statement a service would write
		 * itself: a plain UPDATE of a free or expired lease (and cheap to
		 * plan: the full statement's custom plan alone costs 0.5-1 ms).
		 * Only when it matches nothing does the full statement above run.
		 * The head's other polls (HELD) go straight to it. */
		if ((rc = pg_lease_try_lean(c, t, p, np, mode, g)) || g->granted)
			return rc; /* LKS_ETRANSIENT: lease.c takes it as busy */
		g->statements++;
	}
	lks_sql_add(&q,
	            "WITH b AS (SELECT %s AS got,"
	            " set_config('lock_timeout', $6::text, true) AS cfg),"
	            " u AS (UPDATE %s SET holder = $2, fence = fence + 1,"
	            " acquired_at = clock_timestamp(),"
	            " expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE name = $1 AND expires_at <= clock_timestamp()"
	            " AND ((SELECT got OR $4::int = 2 FROM b)"
	            " OR expires_at <= clock_timestamp() - interval '%d milliseconds')"
	            " RETURNING fence, expires_at),"
	            " i AS (INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s)"
	            " SELECT $1, $2, coalesce((SELECT fence FROM %s WHERE name = '' FOR SHARE), 0) + 1,"
	            " clock_timestamp(), clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)"
	            " ON CONFLICT (name) DO NOTHING RETURNING fence, expires_at)"
	            " SELECT 1, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b), false FROM u"
	            " UNION ALL SELECT 1, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b), false FROM i"
	            " UNION ALL SELECT 0, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b),"
	            " holder IS NULL FROM %s"
	            " WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM u) AND NOT EXISTS (SELECT 1 FROM i)"
	            " UNION ALL SELECT 0, 0, 0, (SELECT got AND $4::int <> 3 FROM b), true"
	            " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)",
	            mode == LKS_BATON_NONE
	                ? "($4::int = 1 AND $5::bigint IS NOT NULL)" /* NONE is 2: false */
	                : "CASE WHEN $4::int = 1 THEN true WHEN $4::int = 2 THEN false"
	                  " WHEN $4::int = 3 THEN CASE WHEN pg_try_advisory_lock($5::bigint)"
	                  " THEN pg_advisory_unlock($5::bigint) ELSE false END"
	                  " ELSE pg_try_advisory_lock($5::bigint) END",
	            t, owner_tag ? ", owner = $7" : "", LKS_BATON_STALE_MS, t,
	            owner_tag ? ", owner" : "", t, owner_tag ? ", $7" : "", t, t, t);
	rc = pg_query(c, q.buf, p, np, &r);
	if (rc) /* LKS_ETRANSIENT: lease.c takes it as busy */
		return rc;
	for (int i = 0; i < r.nrows && !g->granted; i++) {
		/* a granted row wins over the busy report of the same snapshot */
		g->granted = !strcmp(lks_rows_get(&r, i, 0), "1");
		lks_parse_i64(lks_rows_get(&r, i, 1), &g->fence);
		lks_parse_i64(lks_rows_get(&r, i, 2), &g->remaining_us);
		g->baton = lks_rows_get(&r, i, 3) && !strcmp(lks_rows_get(&r, i, 3), "t");
		g->released = lks_rows_get(&r, i, 4) && !strcmp(lks_rows_get(&r, i, 4), "t");
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

static int pg_lease_renew(lks_conn *c, const char *t, const char *name,
                          const char *holder, int64_t fence, int64_t ttl_us,
                          int64_t *remaining_us)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence), LKS_INT(ttl_us)};
	lks_sql_add(&q,
	            "UPDATE %s SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'"
	            " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()"
	            " RETURNING " REMAINING_US,
	            t);
	return lks_query_grant(c, &q, p, 4, remaining_us);
}

/* Read one pipelined statement's result and its sync; the matched-row count
 * goes to *affected. A lost connection leaves nothing more to read. */
static int pg_pipeline_result(lks_conn *c, int64_t deadline, int64_t *affected)
{
	PGresult *res;
	int rc = LKS_OK;
	bool synced = false;
	while (!synced) {
		if (!pg_wait_ready(c, deadline))
			return pg_error(c, NULL);
		res = PQgetResult(PG(c));
		if (!res) {
			if (PQstatus(PG(c)) == CONNECTION_BAD)
				return rc ? rc : pg_error(c, NULL);
			continue; /* end of one statement's results */
		}
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			synced = true;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			if (affected)
				*affected = *PQcmdTuples(res) ? strtoll(PQcmdTuples(res), NULL, 10) : 0;
			break;
		case PGRES_PIPELINE_ABORTED:
			break;
		default:
			if (!rc)
				rc = pg_error(c, res);
		}
		PQclear(res);
	}
	return rc;
}

/*
 * The release, then the baton handed on, in one round trip: pipelined as two
 * implicit transactions, so the next waiter wakes only after the release has
 * committed and its grant sees the lease free. Releasing the baton inside
 * the release statement would wake it before the commit.
 */
static int pg_lease_release(lks_conn *c, const char *t, const char *name,
                            const char *holder, int64_t fence, bool give_baton,
                            uint64_t baton)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	lks_value k = LKS_INT((int64_t)baton);
	pg_params rel, unl;
	const char *rel_name, *unl_name;
	int64_t released = 0;
	int rc, rc2;
	/* Committed without waiting for the WAL flush: a release lost in a crash
	 * only keeps the lease until its TTL, and the next grant's durable commit
	 * flushes it anyway (WAL is written in order). Grants stay durable. */
	lks_sql_add(&q,
	            "UPDATE %s SET holder = NULL, expires_at = clock_timestamp()"
	            " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()"
	            " AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL",
	            t);
	if (!give_baton)
		return lks_query_grant(c, &q, p, 3, NULL);
	if ((rc = pg_bind(c, p, 3, &rel)) || (rc = pg_bind(c, &k, 1, &unl)))
		return rc;
	if (!(rel_name = pg_prepare(c, q.buf, 3)) ||
	    !(unl_name = pg_prepare(c, "SELECT pg_advisory_unlock($1::bigint)", 1)))
		return c->err;
	int64_t deadline = pg_deadline(c);
	if (!PQenterPipelineMode(PG(c)))
		return pg_error(c, NULL);
	if (!PQsendQueryPrepared(PG(c), rel_name, 3, rel.vals, NULL, NULL, 0) ||
	    !PQpipelineSync(PG(c)) ||
	    !PQsendQueryPrepared(PG(c), unl_name, 1, unl.vals, NULL, NULL, 0) ||
	    !PQpipelineSync(PG(c))) {
		rc = pg_error(c, NULL);
		if (PQstatus(PG(c)) == CONNECTION_BAD)
			return rc;
	}
	rc2 = pg_pipeline_result(c, deadline, &released);
	rc = rc ? rc : rc2;
	if (PQstatus(PG(c)) != CONNECTION_BAD && !ST(c)->timed_out) {
		rc2 = pg_pipeline_result(c, deadline, NULL);
		rc = rc ? rc : rc2;
	}
	PQexitPipelineMode(PG(c));
	if (rc)
		return rc;
	return released == 1 ? LKS_OK : LKS_LOST;
}

/* Session locks stay on one server connection: not behind a pooler. */
static bool pg_baton_supported(lks_conn *c)
{
	return !ST(c)->unprepared;
}

static int pg_set_prepare(lks_conn *c, bool on)
{
	ST(c)->unprepared = !on;
	return LKS_OK;
}

/* Wait in the server's lock queue (first come, first served). lock_timeout
 * is set by the inner query, which runs before the outer one takes the lock:
 * a subquery with a volatile target list is never flattened. */
static int pg_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got)
{
	char timeout[32];
	lks_value p[2] = {LKS_INT((int64_t)baton), LKS_TEXT(timeout)};
	lks_rows r;
	int rc;
	snprintf(timeout, sizeof timeout, "%lldms",
	         (long long)(timeout_us > 1000 ? timeout_us / 1000 : 1));
	*got = 0;
	rc = pg_query(c,
	              "SELECT pg_advisory_lock($1::bigint) IS NOT NULL"
	              " FROM (SELECT set_config('lock_timeout', $2::text, true)) s",
	              p, 2, &r);
	if (rc == LKS_ETRANSIENT && !strcmp(c->sqlstate, "55P03")) {
		/* Timed out, unless the lock was granted just as the timeout
		 * fired: PostgreSQL then keeps it and still reports the error. */
		lks_clear_error(c);
		return pg_baton_held(c, baton, got);
	}
	if (rc == LKS_OK)
		*got = r.nrows == 1;
	lks_rows_clear(&r);
	return rc;
}

static int pg_baton_give(lks_conn *c, uint64_t baton)
{
	lks_value k = LKS_INT((int64_t)baton);
	lks_rows r;
	int rc = pg_query(c, "SELECT pg_advisory_unlock($1::bigint)", &k, 1, &r);
	lks_rows_clear(&r);
	return rc;
}

static int pg_lease_guard(lks_conn *c, const char *t, const char *name,
                                const char *holder, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	lks_sql_add(&q,
	            "SELECT 1 FROM %s WHERE name = $1 AND holder = $2 AND fence = $3"
	            " AND expires_at > clock_timestamp() FOR SHARE",
	            t);
	return lks_query_grant(c, &q, p, 3, NULL);
}

#define PG_SELECT_ROW \
	"SELECT name, coalesce(holder, ''), fence," \
	" CASE WHEN expires_at > clock_timestamp() THEN " REMAINING_US " ELSE 0 END," \
	" (expires_at > clock_timestamp())::int, %s FROM %s"

static int pg_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                           lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&q, PG_SELECT_ROW, with_owner ? "owner" : "NULL::text", t);
	if (name)
		lks_sql_add(&q, " WHERE name = $1");
	else
		lks_sql_add(&q, " WHERE expires_at > clock_timestamp() ORDER BY name");
	return pg_query(c, q.buf, &p, name ? 1 : 0, out);
}

static int pg_lease_has_owner(lks_conn *c, const char *t, bool *has)
{
	lks_value p = LKS_TEXT(t);
	int64_t n = 0;
	int rc = lks_query_int(c,
	                            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1)"
	                            " AND attname = 'owner' AND NOT attisdropped",
	                            &p, 1, &n);
	*has = n > 0;
	return rc;
}

/* The row before, locked; then freed with its fence advanced. One
 * statement: the CTE's FOR UPDATE waits for a fenced write in flight. */
static int pg_lease_force_release(lks_conn *c, const char *t, const char *name,
                                  bool with_owner, lks_rows *out)
{
	lks_sql q = {.len = 0}, old = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&old, PG_SELECT_ROW " WHERE name = $1 FOR UPDATE",
	            with_owner ? "owner" : "NULL::text", t);
	lks_sql_add(&q,
	            "WITH old AS (%s), u AS (UPDATE %s SET holder = NULL, fence = fence + 1,"
	            " expires_at = clock_timestamp() WHERE name = $1 AND EXISTS (SELECT 1 FROM old)"
	            " AND expires_at > clock_timestamp() RETURNING 1)"
	            " SELECT * FROM old",
	            old.buf, t);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	return pg_query(c, q.buf, &p, 1, out);
}

/* Does this probe fail with a numeric overflow? */
static bool probe_overflows(lks_conn *c, const char *sql, lks_value key)
{
	lks_rows r;
	int rc = pg_query(c, sql, &key, 1, &r);
	lks_rows_clear(&r);
	return rc == LKS_EOVERFLOW;
}

/* PostgreSQL does not name the column that overflowed: two read-only
 * probes tell (the key alone, then version + 1); none can run inside the
 * caller's transaction, which the error aborted. */
static lks_overflow pg_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                     const char *key_q, const char *version_q,
                                     const char *version_column, lks_value key)
{
	char sql[3 * (2 * LKS_IDENT_MAX + 8) + 64];
	(void)server;
	(void)version_column;
	if (pg_in_transaction(c))
		return LKS_OVERFLOW_UNPROBED;
	snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE %s = $1", table_q, key_q);
	if (probe_overflows(c, sql, key))
		return LKS_OVERFLOW_KEY;
	snprintf(sql, sizeof sql, "SELECT %s + 1 FROM %s WHERE %s = $1", version_q, table_q, key_q);
	return probe_overflows(c, sql, key) ? LKS_OVERFLOW_VERSION : LKS_OVERFLOW_VALUE;
}

const lks_backend_ops lks_pg_ops = {
	.id = LKS_BACKEND_POSTGRESQL,
	.name = "postgresql",
	.caps = LKS_CAP_OP_TIMEOUT,
	.quote = '"',
	.connect_timeout_key = "connect_timeout",
	.connect_timeout_min_s = 2, /* libpq: a value under 2 s counts as 2 */
	.open = pg_open,
	.lease_ddl = pg_lease_ddl,
	.overflow_part = pg_overflow_part,
	.close = pg_close,
	.exec = pg_exec,
	.query = pg_query,
	.in_transaction = pg_in_transaction,
	.commit = pg_commit,
	.quote_ident = pg_quote,
	.cas_update = pg_cas_update,
	.cas_read = pg_cas_read,
	.lease_install = pg_lease_install,
	.once_install = lks_pg_once_install,
	.once_select = lks_pg_once_select,
	.once_insert = lks_pg_once_insert,
	.once_purge = lks_pg_once_purge,
	.once_list = lks_pg_once_list,
	.once_forget = lks_pg_once_forget,
	.once_steps_install = lks_pg_once_steps_install,
	.once_step_put = lks_pg_once_step_put,
	.once_step_get = lks_pg_once_step_get,
	.once_step_delete = lks_pg_once_step_delete,
	.lease_try = pg_lease_try,
	.lease_renew = pg_lease_renew,
	.lease_release = pg_lease_release,
	.baton_supported = pg_baton_supported,
	.baton_wait = pg_baton_wait,
	.baton_give = pg_baton_give,
	.baton_held = pg_baton_held,
	.lease_guard = pg_lease_guard,
	.lease_select = pg_lease_select,
	.set_prepare = pg_set_prepare,
	.interrupt = NULL, /* pg_wait_ready polls the token */
	.lease_has_owner = pg_lease_has_owner,
	.lease_force_release = pg_lease_force_release,
	.lease_floor_raise = lks_pg_lease_floor_raise,
	.lease_purge_batch = lks_pg_lease_purge_batch,
};
