/* MySQL/MariaDB backend (libmysqlclient / MariaDB Connector/C): connection,
 * prepared-statement cache, and the CAS and lease statements in MySQL's
 * dialect (no RETURNING: LAST_INSERT_ID(expr) carries the new fence). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mysql.h>
#include "internal.h"
#include "lockstock-mysql.h"

#define MY_CACHE_MAX 64
#define MY_CELL 64

typedef struct my_stmt {
	char *sql;
	MYSQL_STMT *stmt;
} my_stmt;

#define MY_HINTS_MAX 8

typedef struct my_state {
	my_stmt cache[MY_CACHE_MAX];
	int n;
	bool found_rows; /* opened with CLIENT_FOUND_ROWS */
	bool returning;  /* MariaDB >= 10.5: INSERT ... RETURNING, SET STATEMENT */
	bool strict;     /* sql_mode has a strict mode: overflows fail, never clamp */
	bool wsrep;      /* a Galera node (wsrep_on): see SYNC and my_lease_guard */
	lks_fence_guard guard_mode; /* from the URL */
	bool write_guard;           /* the guard in effect: see my_lease_guard */
	bool interrupted; /* a cancel shut the socket mid-statement (set under
	                     the token's lock, read after leaving it) */
	/* fence hints: the fence a lease had when this handle released it, by
	 * baton key (table and name); see my_lease_try_hinted */
	struct {
		uint64_t key;
		int64_t fence;
	} hint[MY_HINTS_MAX];
	unsigned hint_next;
} my_state;

#define MY(c) ((MYSQL *)(c)->native)
#define ST(c) ((my_state *)(c)->backend)

/* On a Galera node a statement reads the node's own state, which may lag the
 * cluster. Statements whose reading decides (renew, release, the fenced-write
 * guard, inspect, list, force release) first wait until the node has applied
 * everything the cluster had committed when they started. Grants need no
 * wait: certification refuses a grant made on a stale row. */
#define SYNC(c) (ST(c)->wsrep ? "SET STATEMENT wsrep_sync_wait = 15 FOR " : "")

static int my_error(lks_conn *c, unsigned int e, const char *state, const char *msg)
{
	return lks_set_db_error(c, lks_map_mysql_errno(e), state, e, msg);
}
static int my_conn_error(lks_conn *c)
{
	return my_error(c, mysql_errno(MY(c)), mysql_sqlstate(MY(c)), mysql_error(MY(c)));
}
static int my_stmt_error(lks_conn *c, MYSQL_STMT *s)
{
	return my_error(c, mysql_stmt_errno(s), mysql_stmt_sqlstate(s), mysql_stmt_error(s));
}

static void my_close(lks_conn *c)
{
	my_state *st = c->backend;
	if (st) {
		for (int i = 0; i < st->n; i++) {
			mysql_stmt_close(st->cache[i].stmt);
			free(st->cache[i].sql);
		}
		free(st);
	}
	if (c->native && !c->borrowed)
		mysql_close(MY(c));
	c->native = NULL;
}

static int my_init_state(lks_conn *c, bool found_rows)
{
	c->ops = &lks_mysql_ops;
	c->backend = calloc(1, sizeof(my_state));
	if (!c->backend)
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	ST(c)->found_rows = found_rows;
	return LKS_OK;
}

/* The one-statement grant needs MariaDB 10.5 (INSERT ... RETURNING); MySQL
 * and older MariaDB take the three-statement path and poll. */
static void my_detect_server(lks_conn *c)
{
	const char *info = mysql_get_server_info(MY(c));
	MYSQL_RES *res;
	MYSQL_ROW row;
	ST(c)->returning = info && strstr(info, "MariaDB") &&
	                   mysql_get_server_version(MY(c)) >= 100500;
	/* an adopted connection may run without a strict sql_mode */
	ST(c)->strict = false;
	ST(c)->wsrep = false;
	if (!mysql_query(MY(c), ST(c)->returning ? "SELECT @@sql_mode, @@wsrep_on" : "SELECT @@sql_mode") &&
	    (res = mysql_store_result(MY(c)))) {
		if ((row = mysql_fetch_row(res)) && row[0] && strstr(row[0], "STRICT_"))
			ST(c)->strict = true;
		if (row && ST(c)->returning && row[1] && !strcmp(row[1], "1"))
			ST(c)->wsrep = true;
		mysql_free_result(res);
	}
	ST(c)->write_guard = ST(c)->guard_mode == LKS_GUARD_WRITE ||
	                     (ST(c)->guard_mode == LKS_GUARD_AUTO && ST(c)->wsrep);
}

/* TLS settings from the URL. MariaDB Connector/C has no ssl-mode: it
 * checks the chain whenever a CA file is set, the host name only with
 * VERIFY_SERVER_CERT, and its SSL_ENFORCE still connects in plaintext to a
 * server without TLS (3.3), so my_check_tls refuses that afterwards. */
/* Plugins that never send the password itself: mysql_clear_password,
 * dialog (PAM), sha256_password and caching_sha2_password's full
 * authentication would hand the password to whoever answers (in plaintext,
 * inside TLS to an impersonator, or RSA-encrypted with the impersonator's
 * key). Even with ssl-mode=VERIFY_IDENTITY: Connector/C 3.3 goes on in
 * plaintext when the server offers no TLS, and the password would be gone
 * before my_check_tls refuses the session. Over a Unix socket (the local
 * server) anything goes; auth-plugins= in the URL sets the list. */
#define MY_SAFE_PLUGINS "mysql_native_password,client_ed25519,parsec"

static void my_set_auth(MYSQL *my, const lks_url *u)
{
#if defined(MARIADB_PACKAGE_VERSION_ID) && MARIADB_PACKAGE_VERSION_ID >= 30300
	if (u->auth_plugins || !u->socket)
		mysql_options(my, MARIADB_OPT_RESTRICTED_AUTH,
		              u->auth_plugins ? u->auth_plugins : MY_SAFE_PLUGINS);
#else
	(void)my;
	(void)u; /* libmysqlclient sends a cleartext password only when enabled */
#endif
}

static void my_set_tls(MYSQL *my, const lks_url *u)
{
	my_set_auth(my, u);
#ifdef MARIADB_PACKAGE_VERSION_ID
	/* no ssl-mode: PREFERRED, TLS whenever the server offers it (it was
	 * plaintext before 0.3; ssl-mode=DISABLED keeps that) */
	my_bool use = u->ssl_mode != LKS_SSL_DISABLED;
	my_bool verify_host = u->ssl_mode == LKS_SSL_VERIFY_IDENTITY;
	if (use)
		mysql_options(my, MYSQL_OPT_SSL_ENFORCE, &use);
	mysql_options(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify_host);
#else
	static const unsigned int modes[] = {
		[LKS_SSL_DISABLED] = SSL_MODE_DISABLED, [LKS_SSL_PREFERRED] = SSL_MODE_PREFERRED,
		[LKS_SSL_REQUIRED] = SSL_MODE_REQUIRED, [LKS_SSL_VERIFY_CA] = SSL_MODE_VERIFY_CA,
		[LKS_SSL_VERIFY_IDENTITY] = SSL_MODE_VERIFY_IDENTITY,
	};
	if (u->ssl_mode != LKS_SSL_UNSET) /* unset: libmysqlclient's PREFERRED */
		mysql_options(my, MYSQL_OPT_SSL_MODE, &modes[u->ssl_mode]);
#endif
	if (u->ssl_ca)
		mysql_options(my, MYSQL_OPT_SSL_CA, u->ssl_ca);
	if (u->ssl_cert)
		mysql_options(my, MYSQL_OPT_SSL_CERT, u->ssl_cert);
	if (u->ssl_key)
		mysql_options(my, MYSQL_OPT_SSL_KEY, u->ssl_key);
}

/* A mode that requires TLS never settles for a plaintext session. */
static int my_check_tls(lks_conn *c, const lks_url *u)
{
	if (u->ssl_mode < LKS_SSL_REQUIRED || mysql_get_ssl_cipher(MY(c)))
		return LKS_OK;
	return lks_set_error(c, LKS_ECONN,
	                     "ssl-mode=%s: the server did not start TLS (it may not support it); "
	                     "refusing a plaintext connection", lks_ssl_mode_name(u->ssl_mode));
}

/* The op timeout (default 30 s) is the read and write timeout, unless those
 * are given on their own. */
static void my_set_timeouts(lks_conn *c, MYSQL *my, const lks_url *u)
{
	unsigned int connect = u->connect_timeout ? u->connect_timeout : 10;
	unsigned int op = u->op_timeout_set ? u->op_timeout : LKS_OP_TIMEOUT_DEFAULT_S;
	unsigned int rd = u->read_timeout ? u->read_timeout : op, wr = u->write_timeout ? u->write_timeout : op;
	c->op_timeout_us = (int64_t)op * 1000000;
	mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect);
	if (rd)
		mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &rd);
	if (wr)
		mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &wr);
}

/* once, before threads (lks_library_init); my_open calls it too, for
 * callers that did not */
static int my_library_init(void)
{
	static int done;
	if (!done) {
		if (mysql_library_init(0, NULL, NULL))
			return LKS_EDB;
		done = 1;
	}
	return LKS_OK;
}

static int my_open(lks_conn *c, const char *url)
{
	lks_url u;
	char err[256];
	int rc;
	my_bool off = 0;
	if ((rc = lks_url_parse(url, &u, err, sizeof err)))
		return lks_set_error(c, rc, "malformed URL: %s", rc == LKS_EINVAL ? err : "out of memory");
	if (my_library_init()) {
		lks_url_free(&u);
		return lks_set_error(c, LKS_EDB, "mysql_library_init failed");
	}
	if ((rc = my_init_state(c, true)))
		goto out;
	ST(c)->guard_mode = u.fence_guard;
	c->native = mysql_init(NULL);
	if (!c->native) {
		rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
		goto out;
	}
	my_set_timeouts(c, MY(c), &u);
	my_set_tls(MY(c), &u);
	/* never reconnect silently: it would lose the open transaction */
	mysql_options(MY(c), MYSQL_OPT_RECONNECT, &off);
	/* strict: a version or fence at its maximum must fail, not clamp */
	mysql_options(MY(c), MYSQL_INIT_COMMAND,
	              "SET SESSION sql_mode = IF(@@sql_mode = '', 'STRICT_ALL_TABLES',"
	              " CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'))");
	mysql_options(MY(c), MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (u.port && !u.socket) {
		/* "localhost" would mean the default Unix socket, and maybe
		 * another server: a URL that names a port means that port */
		unsigned int tcp = MYSQL_PROTOCOL_TCP;
		mysql_options(MY(c), MYSQL_OPT_PROTOCOL, &tcp);
	}
	if (!mysql_real_connect(MY(c), u.socket ? NULL : u.host, u.user, u.password,
	                        u.database, u.port, u.socket, CLIENT_FOUND_ROWS)) {
		rc = lks_set_db_error(c, LKS_ECONN, mysql_sqlstate(MY(c)), mysql_errno(MY(c)),
		                      mysql_error(MY(c)));
		mysql_close(MY(c));
		c->native = NULL;
		goto out;
	}
	if ((rc = my_check_tls(c, &u))) {
		mysql_close(MY(c));
		c->native = NULL;
		goto out;
	}
	my_detect_server(c);
	c->url = strdup(url);
	rc = c->url ? LKS_OK : lks_set_error(c, LKS_ENOMEM, "out of memory");
out:
	lks_url_free(&u);
	return rc;
}

int lks_conn_adopt_mysql(lks_conn **out, MYSQL *my)
{
	lks_conn *c;
	if (!out)
		return LKS_EINVAL;
	*out = c = lks_conn_new();
	if (!c)
		return LKS_ENOMEM;
	if (!my)
		return lks_set_error(c, LKS_EINVAL, "MYSQL is NULL");
	if (my_init_state(c, (my->client_flag & CLIENT_FOUND_ROWS) != 0))
		return c->err;
	c->native = my;
	c->borrowed = true;
	my_detect_server(c);
	return LKS_OK;
}

MYSQL *lks_conn_mysql(lks_conn *c)
{
	return c && c->ops == &lks_mysql_ops ? MY(c) : NULL;
}

static int my_exec(lks_conn *c, const char *sql)
{
	MYSQL_RES *res;
	if (mysql_real_query(MY(c), sql, strlen(sql)))
		return my_conn_error(c);
	res = mysql_store_result(MY(c));
	if (res)
		mysql_free_result(res);
	else if (mysql_errno(MY(c)))
		return my_conn_error(c);
	return LKS_OK;
}

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
		my_stmt_error(c, s);
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
		rc = my_stmt_error(c, s);
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
		rc = mysql_stmt_errno(s) ? my_stmt_error(c, s) : my_conn_error(c);
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

static int my_query(lks_conn *c, const char *sql, const lks_value *params,
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
		return my_stmt_error(c, s);
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

static int my_commit(lks_conn *c)
{
	return my_exec(c, "COMMIT");
}

static bool my_in_transaction(lks_conn *c)
{
	return (MY(c)->server_status & SERVER_STATUS_IN_TRANS) != 0;
}

static int my_quote(const char *ident, char *out, size_t outsz)
{
	return lks_ident_quote(ident, '`', out, outsz);
}


static int my_cas_update(lks_conn *c, const char *table, const char *key,
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
	/* Without a strict sql_mode the server would clamp version + 1 at the
	 * column's maximum and report the row changed. MariaDB: every CAS is
	 * strict for its own statement, whatever the session's sql_mode is now
	 * (the caller may SET SESSION sql_mode = '' after open); MySQL has no
	 * per-statement setting: refuse a connection that was not strict. */
	if (ST(c)->returning)
		lks_sql_add(&q, "SET STATEMENT sql_mode = 'STRICT_ALL_TABLES' FOR ");
	else if (!ST(c)->strict)
		return lks_set_error(c, LKS_EINVAL,
		                     "CAS needs a strict sql_mode (STRICT_ALL_TABLES or"
		                     " STRICT_TRANS_TABLES) on this connection");
	/* MySQL assigns left to right; no expression reads a column set
	 * earlier in this statement (version + 1 reads the old version). */
	lks_sql_add(&q, "UPDATE %s SET ", table);
	for (size_t i = 0; i < n; i++) {
		lks_sql_add(&q, "%s = ?, ", cols[i]);
		p[i] = values[i];
	}
	lks_sql_add(&q, "%s = %s + 1 WHERE %s = ? AND %s = ?", ver, ver, key, ver);
	p[n] = keyv;
	p[n + 1] = LKS_INT(expected);
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = my_query(c, q.buf, p, n + 2, &r)))
		return rc;
	bool applied = r.affected == 1;
	lks_rows_clear(&r);
	if (applied) {
		*version = expected + 1; /* no RETURNING; never re-read */
		return LKS_OK;
	}
	return lks_classify_miss(c, table, key, ver, keyv, "?", version);
}

static int my_cas_read(lks_conn *c, const char *table, const char *key,
                       const char *ver, lks_value keyv, const char *const *cols,
                       size_t n, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_sql_select_by_key(&q, table, key, ver, cols, n, "?");
	if (q.overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	return my_query(c, q.buf, &keyv, 1, out);
}

/* An existing table must be one lockstock can trust: the columns it uses
 * with their types; a name that compares byte for byte (a case-insensitive
 * or PAD SPACE collation would make "Lease", "lease" and "lease " one
 * lease); DATETIME, not TIMESTAMP (session time zone, DST). */
/* The lease table's columns: lower-case name, data type. */
static int my_lease_columns(lks_conn *c, const char *table, lks_rows *r)
{
	const char *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	lks_value p[2] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema)};
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	return my_query(c,
	                dot ? "SELECT LOWER(COLUMN_NAME), LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, -1)"
	                      " FROM information_schema.COLUMNS WHERE TABLE_NAME = ? AND TABLE_SCHEMA = ?"
	                    : "SELECT LOWER(COLUMN_NAME), LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, -1)"
	                      " FROM information_schema.COLUMNS WHERE TABLE_NAME = ? AND TABLE_SCHEMA = DATABASE()",
	                p, dot ? 2 : 1, r);
}

/* Whether name alone, whole (no prefix), is a PRIMARY or UNIQUE key: the
 * grant's INSERT ... ON DUPLICATE KEY UPDATE conflicts on nothing else, so
 * without one every acquirer inserts a row of its own and is granted. */
static int my_lease_name_is_key(lks_conn *c, const char *table, int64_t *keys)
{
	const char *dot = strchr(table, '.');
	char schema[LKS_IDENT_MAX + 1] = "";
	lks_value p[2] = {LKS_TEXT(dot ? dot + 1 : table), LKS_TEXT(schema)};
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - table), table);
	return lks_query_int(
		c,
		dot ? "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS"
		      " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = ? AND NON_UNIQUE = 0 GROUP BY INDEX_NAME"
		      " HAVING COUNT(*) = 1 AND MAX(LOWER(COLUMN_NAME)) = 'name'"
		      " AND MAX(SUB_PART) IS NULL) k"
		    : "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS"
		      " WHERE TABLE_NAME = ? AND TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0"
		      " GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(LOWER(COLUMN_NAME)) = 'name'"
		      " AND MAX(SUB_PART) IS NULL) k",
		p, dot ? 2 : 1, keys);
}

static int my_lease_check_schema(lks_conn *c, const char *table, bool *has_owner,
                                 bool *has_writes)
{
	static const char *const want[][2] = {
		{"name", "varbinary"}, {"holder", "char"}, {"fence", "bigint"},
		{"acquired_at", "datetime"}, {"expires_at", "datetime"},
	};
	lks_rows r;
	int rc = my_lease_columns(c, table, &r);
	if (rc)
		return rc;
	*has_owner = lks_rows_find(&r, 0, "owner") >= 0;
	*has_writes = lks_rows_find(&r, 0, "writes") >= 0;
	if (r.nrows == 0)
		rc = lks_set_error(c, LKS_EINVAL,
		                   "lease table %s does not exist: run lks_lease_install (or lockstock"
		                   " install) once", table);
	for (size_t w = 0; w < sizeof want / sizeof *want && rc == LKS_OK; w++) {
		int found = lks_rows_find(&r, 0, want[w][0]);
		if (found < 0)
			rc = lks_set_error(c, LKS_EINVAL, "lease table %s exists without column %s", table,
			                   want[w][0]);
		else if (strcmp(lks_rows_get(&r, found, 1), want[w][1]) &&
		         !(w == 1 && !strcmp(lks_rows_get(&r, found, 1), "varchar")))
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column %s is %s, expected %s%s", table,
			                   want[w][0], lks_rows_get(&r, found, 1), want[w][1],
			                   w == 0 ? " (names must compare byte for byte)" : "");
	}
	/* whole-second DATETIME: the server truncates the expiry it stores
	 * while renew and the holder's deadline count the full TTL */
	for (size_t w = 3; w < 5 && rc == LKS_OK; w++) {
		int found = lks_rows_find(&r, 0, want[w][0]);
		if (strcmp(lks_rows_get(&r, found, 2), "6"))
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column %s is DATETIME(%s), expected DATETIME(6)",
			                   table, want[w][0], lks_rows_get(&r, found, 2));
	}
	lks_rows_clear(&r);
	if (rc == LKS_OK) {
		int64_t keys = 0;
		if ((rc = my_lease_name_is_key(c, table, &keys)) == LKS_OK && keys < 1)
			rc = lks_set_error(c, LKS_EINVAL,
			                   "lease table %s: column name is not a PRIMARY KEY or UNIQUE key of"
			                   " its own (without one every acquirer would be granted the lease)",
			                   table);
	}
	return rc;
}

static void my_lease_ddl(const char *t, lks_sql *q)
{
	/* VARBINARY name: exact byte comparison (no PAD SPACE, no case folding);
	 * DATETIME(6) with UTC_TIMESTAMP(6): independent of the session zone */
	lks_sql_add(q,
	            "CREATE TABLE IF NOT EXISTS %s (\n"
	            "    name        VARBINARY(%d) NOT NULL PRIMARY KEY,\n"
	            "    holder      CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,\n"
	            "    fence       BIGINT NOT NULL,\n"
	            "    acquired_at DATETIME(6) NULL,\n"
	            "    expires_at  DATETIME(6) NOT NULL,\n"
	            "    owner       VARBINARY(%d) NULL,\n"
	            "    writes      BIGINT NOT NULL DEFAULT 0,\n"
	            "    CONSTRAINT lks_lease_name_nonempty CHECK (LENGTH(name) > 0),\n"
	            "    CONSTRAINT lks_lease_fence_nonneg CHECK (fence >= 0)\n"
	            ") ENGINE=InnoDB",
	            t, LKS_LEASE_NAME_MAX, LKS_OWNER_TAG_MAX);
}

/* Columns added since the first table: owner (labels), writes (the fenced
 * write's guard on Galera). */
static void add_column(lks_sql *q, size_t i, const char *sep, const char *if_not_exists)
{
	if (i == 0)
		lks_sql_add(q, "%s ADD COLUMN %sowner VARBINARY(%d) NULL", sep, if_not_exists,
		            LKS_OWNER_TAG_MAX);
	else
		lks_sql_add(q, "%s ADD COLUMN %swrites BIGINT NOT NULL DEFAULT 0", sep, if_not_exists);
}

static int my_lease_install(lks_conn *c, const char *t)
{
	lks_sql q = {.len = 0};
	my_lease_ddl(t, &q);
	bool has[2];
	int rc = my_exec(c, q.buf);
	if (rc || (rc = my_lease_check_schema(c, c->lease_table, &has[0], &has[1])) ||
	    (has[0] && has[1]))
		return rc;
	/* A table from an older version: add the columns in place
	 * (ALGORITHM=INSTANT: catalog only, no copy; a Galera cluster runs it on
	 * every node in turn), waiting at most 5 s for the table's metadata lock
	 * so lease calls never queue behind it. */
	q.len = 0;
	if (ST(c)->returning) { /* MariaDB: SET STATEMENT, IF NOT EXISTS */
		lks_sql_add(&q, "SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE %s", t);
		for (size_t i = 0; i < 2; i++)
			add_column(&q, i, i ? "," : "", "IF NOT EXISTS ");
		lks_sql_add(&q, ", ALGORITHM=INSTANT");
		return my_exec(c, q.buf);
	}
	lks_sql_add(&q, "ALTER TABLE %s", t);
	for (size_t i = 0, n = 0; i < 2; i++)
		if (!has[i])
			add_column(&q, i, n++ ? "," : "", "");
	if ((rc = my_exec(c, "SET @lks_lwt = @@SESSION.lock_wait_timeout, SESSION lock_wait_timeout = 5")))
		return rc;
	rc = my_exec(c, q.buf);
	if (my_exec(c, "SET SESSION lock_wait_timeout = @lks_lwt") && !rc)
		rc = c->err;
	return rc;
}

/* GET_LOCK name of a baton: at most 64 characters. */
static void my_baton_name(uint64_t baton, char out[24])
{
	snprintf(out, 24, "lks:%016" PRIx64, baton);
}

static int my_baton_held(lks_conn *c, uint64_t baton, int *held)
{
	char bn[24];
	lks_value p = LKS_TEXT(bn);
	int64_t v = 0;
	int rc;
	my_baton_name(baton, bn);
	rc = lks_query_int(c, "SELECT COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0)", &p, 1, &v);
	*held = v == 1;
	return rc;
}

/* A new name starts at the table's fence floor + 1 (lks_lease_purge). The
 * floor is read with a share lock: a locking read sees the latest value,
 * where a consistent read could predate a purge whose delete the insert's
 * key check then sees; the floor's one writer holds it for one statement. */
#define MY_FLOOR_FENCE "COALESCE((SELECT fence FROM %s WHERE name = X'FF' LOCK IN SHARE MODE), 0)"

/*
 * MariaDB: one statement decides, whether the name is new, free, expired or
 * held. The VALUES row is evaluated once, and carries whether we may grant
 * an existing lease in acquired_at: the statement's time when we have the
 * baton (or need none), 1 us earlier when not. Without the baton only a
 * lease free for LKS_BATON_STALE_MS is granted (lks_baton_mode); a new name
 * is granted by its insert either way. ON DUPLICATE KEY UPDATE assigns left
 * to right, so expires_at, which every condition reads, is set last.
 * RETURNING shows the row as it is now: granted when the holder is ours.
 * innodb_lock_wait_timeout bounds the row-lock wait by the caller's time
 * left (whole seconds: 1 with more than 1.2 s left, else 0, a locked row
 * being busy).
 */
static int my_lease_try_returning(lks_conn *c, const char *t, const char *name,
                                  const char *holder, const char *owner_tag, int64_t ttl_us,
                                  lks_baton_mode mode, uint64_t baton,
                                  int64_t lock_wait_us, lks_grant *g)
{
	static const char *const baton_expr[] = {
		[LKS_BATON_TRY] = "GET_LOCK(?, 0) = 1",
		[LKS_BATON_HELD] = "? IS NOT NULL",
		[LKS_BATON_NONE] = "? IS NOT NULL",
		[LKS_BATON_PEEK] = "COALESCE(IS_USED_LOCK(?), CONNECTION_ID()) = CONNECTION_ID()",
	};
	lks_sql q = {.len = 0}, cond = {.len = 0}, own = {.len = 0};
	char bn[24];
	lks_value p[6] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_TEXT(bn), LKS_INT(ttl_us), LKS_TEXT(bn),
	                  LKS_TEXT(owner_tag)};
	lks_rows r;
	int rc;
	my_baton_name(baton, bn);
	lks_sql_add(&cond,
	            "expires_at <= UTC_TIMESTAMP(6) AND (VALUES(acquired_at) = UTC_TIMESTAMP(6)"
	            " OR expires_at <= UTC_TIMESTAMP(6) - INTERVAL %d MICROSECOND)",
	            LKS_BATON_STALE_MS * 1000);
	if (owner_tag) /* the last parameter; assigned before expires_at, which cond reads */
		lks_sql_add(&own, " owner = IF(%s, VALUES(owner), owner),", cond.buf);
	lks_sql_add(&q,
	            "SET STATEMENT innodb_lock_wait_timeout = %d FOR"
	            " INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s)"
	            " VALUES (?, ?, " MY_FLOOR_FENCE " + 1,"
	            " IF(%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) - INTERVAL 1 MICROSECOND),"
	            " UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s)"
	            " ON DUPLICATE KEY UPDATE holder = IF(%s, VALUES(holder), holder),"
	            " fence = IF(%s, fence + 1, fence),"
	            " acquired_at = IF(%s, UTC_TIMESTAMP(6), acquired_at),%s"
	            " expires_at = IF(%s, VALUES(expires_at), expires_at)"
	            " RETURNING holder, fence, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at),"
	            " COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0)",
	            lock_wait_us >= 1200000 ? 1 : 0, t, owner_tag ? ", owner" : "", t, baton_expr[mode],
	            owner_tag ? ", ?" : "", cond.buf, cond.buf, cond.buf, own.buf, cond.buf);
	if (owner_tag) { /* VALUES order: name, holder, baton, ttl, owner; then RETURNING's baton */
		p[4] = LKS_TEXT(owner_tag);
		p[5] = LKS_TEXT(bn);
	}
	g->baton = mode == LKS_BATON_HELD;
	rc = my_query(c, q.buf, p, owner_tag ? 6 : 5, &r);
	if (rc) /* LKS_ETRANSIENT: lease.c takes it as busy */
		return rc;
	if (r.nrows == 1) {
		const char *h = lks_rows_get(&r, 0, 0);
		g->granted = h && !strcmp(h, holder);
		g->released = !h;
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 2), &g->remaining_us);
		g->baton = (mode == LKS_BATON_TRY || mode == LKS_BATON_HELD) && lks_rows_get(&r, 0, 3) &&
		           !strcmp(lks_rows_get(&r, 0, 3), "1");
		if (g->granted && g->remaining_us > ttl_us)
			g->remaining_us = ttl_us;
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

static int64_t *hint_slot(lks_conn *c, uint64_t key)
{
	for (int i = 0; i < MY_HINTS_MAX; i++)
		if (ST(c)->hint[i].key == key && ST(c)->hint[i].fence > 0)
			return &ST(c)->hint[i].fence;
	return NULL;
}

static void hint_put(lks_conn *c, uint64_t key, int64_t fence)
{
	int64_t *slot = hint_slot(c, key);
	if (!slot) {
		unsigned i = ST(c)->hint_next++ % MY_HINTS_MAX;
		ST(c)->hint[i].key = key;
		slot = &ST(c)->hint[i].fence;
	}
	*slot = fence;
}

/*
 * A lease this handle released last is most often still free with the fence
 * it left: a plain UPDATE that names that fence grants it, and the new fence
 * is known without reading it back (MariaDB's UPDATE has no RETURNING). It
 * costs about what the statement a service would write itself costs, where
 * INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING takes a third more server
 * CPU. The hint is only a guess: the WHERE re-checks fence, expiry and the
 * waiting room, so a wrong hint (another grant since, a key collision)
 * matches nothing, and the full statement decides. A locked row is busy.
 */
static int my_lease_try_hinted(lks_conn *c, const char *t, const char *name,
                               const char *holder, const char *owner_tag, int64_t ttl_us,
                               uint64_t baton, int64_t fence, lks_grant *g)
{
	lks_sql q = {.len = 0};
	char bn[24];
	lks_value p[7] = {LKS_TEXT(holder), LKS_INT(fence + 1), LKS_INT(ttl_us)};
	size_t np = 3;
	lks_rows r;
	int rc;
	my_baton_name(baton, bn);
	if (owner_tag)
		p[np++] = LKS_TEXT(owner_tag);
	p[np++] = LKS_TEXT(name);
	p[np++] = LKS_INT(fence);
	p[np++] = LKS_TEXT(bn);
	lks_sql_add(&q,
	            "SET STATEMENT innodb_lock_wait_timeout = 0 FOR"
	            " UPDATE %s SET holder = ?, fence = ?, acquired_at = UTC_TIMESTAMP(6),"
	            " expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s"
	            " WHERE name = ? AND fence = ? AND expires_at <= UTC_TIMESTAMP(6)"
	            " AND COALESCE(IS_USED_LOCK(?), CONNECTION_ID()) = CONNECTION_ID()",
	            t, owner_tag ? ", owner = ?" : "");
	rc = my_query(c, q.buf, p, np, &r);
	if (rc)
		return rc; /* LKS_ETRANSIENT: locked, busy */
	if (r.affected == 1) {
		g->granted = 1;
		g->fence = fence + 1;
		g->remaining_us = ttl_us; /* from the statement's own UTC_TIMESTAMP(6) */
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

/*
 * MySQL and MariaDB < 10.5. Free or expired: one UPDATE grants,
 * LAST_INSERT_ID(fence + 1) hands the new fence back without a second query.
 * Otherwise one SELECT reads the holder's remaining time; a name never seen
 * gets its row first (INSERT ... ON DUPLICATE KEY UPDATE, not INSERT IGNORE,
 * which would hide real errors). No waiting room here: waiters poll.
 */
static int my_lease_try(lks_conn *c, const char *t, const char *name,
                        const char *holder, const char *owner_tag, int64_t ttl_us,
                        lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                        lks_grant *g)
{
	lks_sql up = {.len = 0}, sel = {.len = 0}, ins = {.len = 0};
	lks_value pu[4] = {LKS_TEXT(holder), LKS_INT(ttl_us), LKS_TEXT(name)};
	lks_value pn = LKS_TEXT(name);
	lks_rows r;
	int rc;
	g->granted = 0;
	g->fence = 0;
	g->remaining_us = -1;
	g->baton = 0;
	g->released = 0;
	g->statements = 1;
	if (mode == LKS_BATON_WOKEN) /* one statement here either way */
		mode = LKS_BATON_HELD;
	if (ST(c)->returning && (mode == LKS_BATON_PEEK || mode == LKS_BATON_NONE)) {
		int64_t *hint = hint_slot(c, baton);
		if (hint) {
			int64_t fence = *hint;
			*hint = 0; /* one try per release */
			if ((rc = my_lease_try_hinted(c, t, name, holder, owner_tag, ttl_us, baton, fence,
			                              g)) || g->granted)
				return rc;
			g->statements++;
		}
	}
	if (ST(c)->returning)
		return my_lease_try_returning(c, t, name, holder, owner_tag, ttl_us, mode, baton,
		                              lock_wait_us, g);
	lks_sql_add(&up,
	            "UPDATE %s SET holder = ?, fence = LAST_INSERT_ID(fence + 1),"
	            " acquired_at = UTC_TIMESTAMP(6),"
	            " expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s"
	            " WHERE name = ? AND expires_at <= UTC_TIMESTAMP(6)",
	            t, owner_tag ? ", owner = ?" : "");
	if (owner_tag) {
		pu[2] = LKS_TEXT(owner_tag);
		pu[3] = LKS_TEXT(name);
	}
	lks_sql_add(&sel,
	            "SELECT fence, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at)"
	            " FROM %s WHERE name = ?",
	            t);
	lks_sql_add(&ins,
	            "INSERT INTO %s (name, holder, fence, acquired_at, expires_at)"
	            " VALUES (?, NULL, " MY_FLOOR_FENCE ", NULL, '1970-01-01')"
	            " ON DUPLICATE KEY UPDATE name = name",
	            t, t);
	for (int round = 0; round < 3; round++) {
		if ((rc = my_query(c, up.buf, pu, owner_tag ? 4 : 3, &r)))
			return rc == LKS_ETRANSIENT ? (lks_clear_error(c), LKS_OK) : rc; /* locked: busy */
		int64_t granted = r.affected;
		uint64_t fence = r.insert_id;
		lks_rows_clear(&r);
		if (granted == 1) {
			g->granted = 1;
			g->fence = (int64_t)fence;
			g->remaining_us = ttl_us;
			return LKS_OK;
		}
		g->statements++;
		if ((rc = my_query(c, sel.buf, &pn, 1, &r)))
			return rc;
		if (r.nrows == 1) {
			lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
			lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
			lks_rows_clear(&r);
			if (g->remaining_us > 0)
				return LKS_OK; /* held */
			continue;          /* expired since the UPDATE: try again */
		}
		lks_rows_clear(&r);
		g->statements += 2;
		if ((rc = my_query(c, ins.buf, &pn, 1, &r)))
			return rc;
		lks_rows_clear(&r);
	}
	return LKS_OK;
}

static int my_lease_renew(lks_conn *c, const char *t, const char *name,
                          const char *holder, int64_t fence, int64_t ttl_us,
                          int64_t *remaining_us)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_INT(ttl_us), LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	lks_sql_add(&q,
	            "%sUPDATE %s SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND"
	            " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	if ((rc = lks_query_grant(c, &q, p, 4, NULL)) == LKS_OK)
		*remaining_us = ttl_us; /* from the statement's own UTC_TIMESTAMP(6) */
	return rc;
}

/* With the baton: RELEASE_LOCK runs inside the matched row's update, before
 * the commit; the woken waiter's grant then waits on the row lock for that
 * commit (its row-lock wait is bounded, see my_lease_try_returning). */
static int my_lease_release(lks_conn *c, const char *t, const char *name,
                            const char *holder, int64_t fence, bool give_baton,
                            uint64_t baton)
{
	lks_sql q = {.len = 0};
	char bn[24];
	lks_value p[4] = {LKS_TEXT(bn), LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	my_baton_name(baton, bn);
	lks_sql_add(&q, "%sUPDATE %s SET holder = NULL, expires_at = UTC_TIMESTAMP(6)", SYNC(c), t);
	if (give_baton)
		lks_sql_add(&q, " + INTERVAL (COALESCE(RELEASE_LOCK(?), 0) * 0) MICROSECOND");
	lks_sql_add(&q, " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)");
	rc = lks_query_grant(c, &q, give_baton ? p : p + 1, give_baton ? 4 : 3, NULL);
	if (rc == LKS_OK && !give_baton)
		hint_put(c, baton, fence); /* nobody was in line: likely free next time */
	if (rc == LKS_LOST && give_baton) {
		int rc2 = c->ops->baton_give(c, baton); /* the row did not match */
		if (rc2)
			return rc2;
	}
	return rc;
}

static bool my_baton_supported(lks_conn *c)
{
	return ST(c)->returning;
}

static int my_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got)
{
	char bn[24], secs[32];
	lks_value p[2] = {LKS_TEXT(bn), LKS_TEXT(secs)};
	int64_t v = 0;
	int rc;
	my_baton_name(baton, bn);
	snprintf(secs, sizeof secs, "%lld.%06lld", (long long)(timeout_us / 1000000),
	         (long long)(timeout_us % 1000000));
	rc = lks_query_int(c, "SELECT COALESCE(GET_LOCK(?, ?), 0)", p, 2, &v);
	*got = rc == LKS_OK && v == 1;
	if (rc == LKS_OK && !*got) /* a grant racing the timeout is still ours */
		rc = my_baton_held(c, baton, got);
	return rc;
}

static int my_baton_give(lks_conn *c, uint64_t baton)
{
	char bn[24];
	lks_value p = LKS_TEXT(bn);
	int64_t v;
	my_baton_name(baton, bn);
	return lks_query_int(c, "SELECT COALESCE(RELEASE_LOCK(?), 0)", &p, 1, &v);
}

/*
 * The fenced write's guard, first statement of its transaction. On one
 * server a share-mode lock on the current grant's row makes a takeover wait
 * for this commit. A Galera node's row locks are its own, and certification
 * compares only what transactions write: there the guard writes the row
 * (writes + 1), so a takeover committed on any node first makes this commit
 * fail certification (lease.c reports LKS_LOST), and a takeover this node
 * applies first aborts the write. See README, "Galera".
 */
static int my_lease_guard(lks_conn *c, const char *t, const char *name,
                          const char *holder, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	if (!ST(c)->write_guard) {
		lks_sql_add(&q,
		            "SELECT 1 FROM %s WHERE name = ? AND holder = ? AND fence = ?"
		            " AND expires_at > UTC_TIMESTAMP(6) LOCK IN SHARE MODE",
		            t);
		return lks_query_grant(c, &q, p, 3, NULL);
	}
	lks_sql_add(&q,
	            "%sUPDATE %s SET writes = writes + 1 WHERE name = ? AND holder = ? AND fence = ?"
	            " AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	rc = lks_query_grant(c, &q, p, 3, NULL);
	if (rc == LKS_EDB && c->err_no == 1054) /* ER_BAD_FIELD_ERROR */
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no writes column, which fenced writes need on"
		                     " Galera: run lks_lease_install (or lockstock install) once",
		                     c->lease_table);
	return rc;
}

#define MY_SELECT_ROW \
	"SELECT name, COALESCE(holder, ''), fence," \
	" GREATEST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at), 0)," \
	" expires_at > UTC_TIMESTAMP(6), %s FROM %s"

static int my_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                           lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_sql_add(&q, "%s" MY_SELECT_ROW, SYNC(c), with_owner ? "owner" : "NULL", t);
	if (name)
		lks_sql_add(&q, " WHERE name = ?");
	else
		lks_sql_add(&q, " WHERE expires_at > UTC_TIMESTAMP(6) ORDER BY name");
	return my_query(c, q.buf, &p, name ? 1 : 0, out);
}

/* Asked on a handle's first use of a table: the whole schema check, one
 * more query than the column list alone, so a table without a unique key
 * on name or with whole-second times is refused before any grant (MySQL's
 * INSERT ... ON DUPLICATE KEY UPDATE would grant every acquirer). */
static int my_lease_has_owner(lks_conn *c, const char *t, bool *has)
{
	bool writes;
	(void)t;
	return my_lease_check_schema(c, c->lease_table, has, &writes);
}

/* In one transaction: the row, locked (after a fenced write in flight),
 * then freed with its fence advanced if it was held. */
static int my_lease_force_release(lks_conn *c, const char *t, const char *name,
                                  bool with_owner, lks_rows *out)
{
	lks_sql sel = {.len = 0}, up = {.len = 0};
	lks_value p = LKS_TEXT(name);
	lks_rows r;
	int rc;
	lks_sql_add(&sel, "%s" MY_SELECT_ROW " WHERE name = ? FOR UPDATE", SYNC(c),
	            with_owner ? "owner" : "NULL", t);
	lks_sql_add(&up,
	            "UPDATE %s SET holder = NULL, fence = fence + 1, expires_at = UTC_TIMESTAMP(6)"
	            " WHERE name = ? AND expires_at > UTC_TIMESTAMP(6)",
	            t);
	if ((rc = my_exec(c, "START TRANSACTION")))
		return rc;
	if ((rc = my_query(c, sel.buf, &p, 1, out)) == LKS_OK) {
		if (out->nrows == 1 && !strcmp(lks_rows_get(out, 0, 4) ? lks_rows_get(out, 0, 4) : "", "1") &&
		    (rc = my_query(c, up.buf, &p, 1, &r)) == LKS_OK)
			lks_rows_clear(&r);
		if (rc == LKS_OK)
			rc = my_exec(c, "COMMIT");
		if (rc)
			lks_rows_clear(out);
	}
	if (rc && c->native && my_in_transaction(c)) {
		char msg[LKS_ERRMSG_MAX];
		memcpy(msg, c->errmsg, sizeof msg);
		my_exec(c, "ROLLBACK");
		memcpy(c->errmsg, msg, sizeof msg);
	}
	return rc;
}

/* MariaDB Connector/C: reads and writes on the connection fail from now on
 * (the handle must be reset); no network I/O, so the tripping thread never
 * waits. The server goes on with the statement: my_after_cancel ends it. */
static void my_interrupt(lks_conn *c)
{
#ifdef MARIADB_PACKAGE_VERSION_ID
	ST(c)->interrupted = true;
	mariadb_cancel(MY(c));
#else
	(void)c; /* libmysqlclient: the statement runs to its own timeout */
#endif
}

/*
 * After a cancel cut the socket, the server still runs the statement: a
 * grant waiting on a row lock would complete when the lock is freed and
 * hold the lease for a whole TTL for a holder nobody knows. So: reconnect
 * (the handle is usable again), KILL the old session, wait until it is gone
 * from the process list, then free any grant with this acquire's holder id
 * (unique to it), in case the grant committed before the kill.
 */
static int my_after_cancel(lks_conn *c, const char *t, const char *name, const char *holder)
{
	char sql[160];
	unsigned long id;
	lks_value p[2] = {LKS_TEXT(name), LKS_TEXT(holder)};
	lks_sql q = {.len = 0};
	int64_t gone = 1;
	int rc;
	if (!ST(c)->interrupted)
		return LKS_OK; /* the trip came between statements: the session is whole */
	id = mysql_thread_id(MY(c));
	if ((rc = lks_conn_reset(c)))
		return rc; /* the old session ends when the server sees the socket closed */
	snprintf(sql, sizeof sql, "KILL CONNECTION %lu", id);
	if (my_exec(c, sql) && c->err_no != 1094 /* ER_NO_SUCH_THREAD: already gone */)
		return c->err;
	snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %lu",
	         id);
	for (int i = 0; i < 500 && gone; i++) { /* a killed session ends at its next check */
		if ((rc = lks_query_int(c, sql, NULL, 0, &gone)))
			return rc;
		if (gone)
			lks_sleep_us(10000);
	}
	lks_sql_add(&q, "%sUPDATE %s SET holder = NULL, expires_at = UTC_TIMESTAMP(6)"
	                " WHERE name = ? AND holder = ? AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	rc = lks_query_grant(c, &q, p, 2, NULL);
	return rc == LKS_LOST ? LKS_OK : rc; /* LKS_LOST: it never got it */
}

static int my_set_prepare(lks_conn *c, bool on)
{
	(void)on;
	return lks_set_error(c, LKS_EUNSUPPORTED, "statement mode is a PostgreSQL setting");
}

/* Cleanup is not offered on Galera yet: with grants running on other
 * nodes, a purge on one left grants hanging in tests (open in #18). */
static int my_lease_floor_raise(lks_conn *c, const char *t, int64_t *bound)
{
	if (ST(c)->wsrep)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease purge is not supported on a Galera node yet");
	return lks_my_lease_floor_raise(c, t, bound);
}

/* MySQL names the column in its message ("Out of range value for column
 * 'version'", or "BIGINT value is out of range in `t`.`version` + 1") */
static lks_overflow my_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                     const char *key_q, const char *version_q,
                                     const char *version_column, lks_value key)
{
	char quoted[2 * LKS_IDENT_MAX + 16];
	(void)c;
	(void)table_q;
	(void)key_q;
	(void)key;
	snprintf(quoted, sizeof quoted, "'%s'", version_column);
	return strcasestr(server, quoted) || (strcasestr(server, version_q) && strstr(server, " + 1"))
	           ? LKS_OVERFLOW_VERSION
	           : LKS_OVERFLOW_VALUE;
}

const lks_backend_ops lks_mysql_ops = {
	.id = LKS_BACKEND_MYSQL,
	.name = "mysql",
	.caps = LKS_CAP_NOCASE_COLUMNS,
	.quote = '`',
	.connect_timeout_key = "connect-timeout",
	.connect_timeout_min_s = 1,
	.no_op_timeout = "MySQL: set MYSQL_OPT_READ_TIMEOUT and MYSQL_OPT_WRITE_TIMEOUT before"
	                 " connecting, or op-timeout in the URL",
	.library_init = my_library_init,
	.open = my_open,
	.lease_ddl = my_lease_ddl,
	.overflow_part = my_overflow_part,
	.close = my_close,
	.exec = my_exec,
	.query = my_query,
	.in_transaction = my_in_transaction,
	.commit = my_commit,
	.quote_ident = my_quote,
	.cas_update = my_cas_update,
	.cas_read = my_cas_read,
	.lease_install = my_lease_install,
	.once_install = lks_my_once_install,
	.once_select = lks_my_once_select,
	.once_insert = lks_my_once_insert,
	.once_purge = lks_my_once_purge,
	.once_list = lks_my_once_list,
	.once_forget = lks_my_once_forget,
	.once_steps_install = lks_my_once_steps_install,
	.once_step_put = lks_my_once_step_put,
	.once_step_get = lks_my_once_step_get,
	.once_step_delete = lks_my_once_step_delete,
	.lease_try = my_lease_try,
	.lease_renew = my_lease_renew,
	.lease_release = my_lease_release,
	.baton_supported = my_baton_supported,
	.baton_wait = my_baton_wait,
	.baton_give = my_baton_give,
	.baton_held = my_baton_held,
	.lease_guard = my_lease_guard,
	.lease_select = my_lease_select,
	.set_prepare = my_set_prepare,
	.interrupt = my_interrupt,
	.after_cancel = my_after_cancel,
	.lease_has_owner = my_lease_has_owner,
	.lease_force_release = my_lease_force_release,
	.lease_floor_raise = my_lease_floor_raise,
	.lease_purge_batch = lks_my_lease_purge_batch,
};
