/* Status strings and the per-handle error record; server codes to statuses. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

const char *lks_strerror(int code)
{
	switch (code) {
	case LKS_OK: return "ok";
	case LKS_CONFLICT: return "conflict: the row has another version";
	case LKS_NOT_FOUND: return "not found";
	case LKS_BUSY: return "busy: held by another holder (a lease, a semaphore's permits, or a once key being processed)";
	case LKS_TIMEOUT: return "timeout: the deadline passed";
	case LKS_LOST: return "lost: the lease is no longer held by this holder";
	case LKS_MISMATCH: return "mismatch: the key was recorded with another request fingerprint";
	case LKS_EINVAL: return "invalid argument";
	case LKS_ECONN: return "connection failed or lost";
	case LKS_EDB: return "database error";
	case LKS_ENOMEM: return "out of memory";
	case LKS_EOVERFLOW: return "version overflow: the column is at its maximum";
	case LKS_EUNKNOWN: return "connection lost during commit: outcome unknown";
	case LKS_EUNSUPPORTED: return "unsupported: backend or feature not built in";
	case LKS_ETRANSIENT: return "transient server error (serialization failure, deadlock or lock wait timeout)";
	case LKS_CANCELED: return "canceled: the cancel token was tripped";
	default: return "unknown status code";
	}
}

void lks_error_save(const lks_conn *c, lks_error_saved *saved)
{
	saved->err = c->err;
	saved->err_no = c->err_no;
	memcpy(saved->sqlstate, c->sqlstate, sizeof saved->sqlstate);
	memcpy(saved->errmsg, c->errmsg, sizeof saved->errmsg);
}

void lks_error_restore(lks_conn *c, const lks_error_saved *saved)
{
	c->err = saved->err;
	c->err_no = saved->err_no;
	memcpy(c->sqlstate, saved->sqlstate, sizeof c->sqlstate);
	memcpy(c->errmsg, saved->errmsg, sizeof c->errmsg);
}

void lks_clear_error(lks_conn *c)
{
	c->err = LKS_OK;
	c->err_no = 0;
	c->sqlstate[0] = '\0';
	c->errmsg[0] = '\0';
}

int lks_set_error(lks_conn *c, int code, const char *fmt, ...)
{
	va_list ap;
	if (!c)
		return code;
	c->err = code;
	c->err_no = 0;
	c->sqlstate[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	return code;
}

int lks_set_db_error(lks_conn *c, int code, const char *sqlstate,
                     unsigned int err_no, const char *msg)
{
	size_t n;
	c->err = code;
	c->err_no = err_no;
	snprintf(c->sqlstate, sizeof c->sqlstate, "%s", sqlstate ? sqlstate : "");
	snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", c->ops ? c->ops->name : "db",
	         msg && *msg ? msg : lks_strerror(code));
	n = strlen(c->errmsg); /* libpq messages end in a newline */
	while (n > 0 && (c->errmsg[n - 1] == '\n' || c->errmsg[n - 1] == ' '))
		c->errmsg[--n] = '\0';
	return code;
}

int lks_map_sqlstate(const char *s)
{
	if (!s || !*s)
		return LKS_ECONN; /* libpq reports client-side failures without one */
	if (!strcmp(s, "40001") || !strcmp(s, "40P01") || !strcmp(s, "55P03"))
		return LKS_ETRANSIENT;
	if (!strcmp(s, "22003"))
		return LKS_EOVERFLOW;
	/* statement_completion_unknown: the server cannot say whether it took
	 * effect (distributed engines: CockroachDB, YugabyteDB) */
	if (!strcmp(s, "40003"))
		return LKS_EUNKNOWN;
	if (!strncmp(s, "08", 2) || !strcmp(s, "57P01") || !strcmp(s, "57P02") ||
	    !strcmp(s, "57P03"))
		return LKS_ECONN;
	return LKS_EDB;
}

int lks_map_mysql_errno(unsigned int e)
{
	switch (e) {
	case 1213: /* ER_LOCK_DEADLOCK */
	case 1205: /* ER_LOCK_WAIT_TIMEOUT */
		return LKS_ETRANSIENT;
	case 1264: /* ER_WARN_DATA_OUT_OF_RANGE */
	case 1690: /* ER_DATA_OUT_OF_RANGE */
		return LKS_EOVERFLOW;
	case 1927: /* ER_CONNECTION_KILLED */
	case 2002: case 2003: case 2005: case 2006: case 2013: case 2055:
	case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT */
		return LKS_ECONN;
	default:
		return e >= 2000 && e < 3000 ? LKS_ECONN : LKS_EDB;
	}
}

int lks_conn_errcode(const lks_conn *c) { return c ? c->err : LKS_EINVAL; }
const char *lks_conn_errmsg(const lks_conn *c)
{
	return c ? c->errmsg : "NULL handle";
}
const char *lks_conn_sqlstate(const lks_conn *c) { return c ? c->sqlstate : ""; }
unsigned int lks_conn_errno(const lks_conn *c) { return c ? c->err_no : 0; }
