/* PostgreSQL backend: connection (open, adopt, close), errors, waiting for
 * an answer within the op deadline, and cancel requests. */
#include "pg.h"

int lks_pg_error(lks_conn *c, PGresult *res)
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
bool lks_pg_wait_ready(lks_conn *c, int64_t deadline)
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

int64_t lks_pg_deadline(lks_conn *c)
{
	ST(c)->timed_out = false;
	return c->op_timeout_us > 0 ? lks_now_us() + c->op_timeout_us : INT64_MAX;
}

/* PQexec's result, bounded by the op timeout: the first error, else the
 * last result; NULL when nothing came (lks_pg_error tells why). */
PGresult *lks_pg_collect(lks_conn *c)
{
	int64_t deadline = lks_pg_deadline(c);
	PGresult *keep = NULL, *r;
	for (;;) {
		if (!lks_pg_wait_ready(c, deadline)) {
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

PGresult *lks_pg_exec_res(lks_conn *c, const char *sql)
{
	ST(c)->timed_out = false;
	return PQsendQuery(PG(c), sql) ? lks_pg_collect(c) : NULL;
}

void lks_pg_close(lks_conn *c)
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
				PQclear(lks_pg_exec_res(c, dealloc));
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
static int pg_take_params(lks_conn *c, const char *url, char **libpq_url, bool *unprepared,
                          bool *write_guard, bool *single_grant)
{
	char *v = NULL, *t = NULL, *g = NULL, *grant = NULL, *mid = NULL, *mid2 = NULL, *mid3 = NULL;
	int rc = lks_url_take_param(url, "prepare", &mid, &v);
	if (rc == LKS_OK)
		rc = lks_url_take_param(mid, "fence_guard", &mid2, &g);
	if (rc == LKS_OK)
		rc = lks_url_take_param(mid2, "grant", &mid3, &grant);
	if (rc == LKS_OK)
		rc = lks_url_take_param(mid3, "op_timeout", libpq_url, &t);
	lks_free_secret(mid);
	lks_free_secret(mid2);
	lks_free_secret(mid3);
	if (rc) {
		free(v);
		free(t);
		free(g);
		free(grant);
		return lks_set_error(c, rc, rc == LKS_EINVAL ? "malformed URL: bad percent escape" : "out of memory");
	}
	/* grant=single: each statement modifies the lease table once at most,
	 * for engines that refuse two modifications of a table in one
	 * statement (CockroachDB's default); combined (the default) is one
	 * statement per poll */
	if (grant && strcmp(grant, "single") && strcmp(grant, "combined"))
		rc = lks_set_error(c, LKS_EINVAL, "malformed URL: grant must be combined or single");
	*single_grant = grant && !strcmp(grant, "single");
	free(grant);
	/* lock (FOR SHARE, the default) or write: an UPDATE of the lease row,
	 * for engines where a share lock does not hold off a takeover */
	if (g && strcmp(g, "auto") && strcmp(g, "lock") && strcmp(g, "write"))
		rc = lks_set_error(c, LKS_EINVAL, "malformed URL: fence-guard must be auto, lock or write");
	*write_guard = g && !strcmp(g, "write");
	free(g);
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

int lks_pg_open(lks_conn *c, const char *url)
{
	char *err = NULL, *libpq_url = NULL;
	bool ok = true, unprepared = false, write_guard = false, single_grant = false;
	PQconninfoOption *opts;
	if (pg_take_params(c, url, &libpq_url, &unprepared, &write_guard, &single_grant)) {
		lks_free_secret(libpq_url);
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
		lks_free_secret(libpq_url);
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
	ST(c)->write_guard = write_guard;
	ST(c)->single_grant = single_grant;
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
	lks_free_secret(libpq_url); /* it may hold a password */
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

int lks_pg_exec(lks_conn *c, const char *sql)
{
	PGresult *res = lks_pg_exec_res(c, sql);
	int rc = LKS_OK;
	ExecStatusType s = PQresultStatus(res);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		rc = lks_pg_error(c, res);
	PQclear(res);
	return rc;
}

int lks_pg_commit(lks_conn *c)
{
	PGresult *res = lks_pg_exec_res(c, "COMMIT");
	int rc = LKS_OK;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = lks_pg_error(c, res);
	else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		/* COMMIT of a failed transaction answers ROLLBACK */
		rc = lks_set_error(c, LKS_EDB, "transaction was rolled back, not committed");
	PQclear(res);
	return rc;
}

/* A dead connection (PQTRANS_UNKNOWN) is not in a transaction: calls on it
 * go on to report the lost connection. */
bool lks_pg_in_transaction(lks_conn *c)
{
	PGTransactionStatusType s = PQtransactionStatus(PG(c));
	return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

int lks_pg_set_prepare(lks_conn *c, bool on)
{
	ST(c)->unprepared = !on;
	return LKS_OK;
}
