/* MySQL backend: connection (open with safe auth plugins, TLS and
 * timeouts; adopt; close), errors, and interrupting a statement. */
#include "my.h"

static int my_error(lks_conn *c, unsigned int e, const char *state, const char *msg)
{
	return lks_set_db_error(c, lks_map_mysql_errno(e), state, e, msg);
}

int lks_my_conn_error(lks_conn *c)
{
	return my_error(c, mysql_errno(MY(c)), mysql_sqlstate(MY(c)), mysql_error(MY(c)));
}

int lks_my_stmt_error(lks_conn *c, MYSQL_STMT *s)
{
	return my_error(c, mysql_stmt_errno(s), mysql_stmt_sqlstate(s), mysql_stmt_error(s));
}

void lks_my_close(lks_conn *c)
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

/* once, before threads (lks_library_init); lks_my_open calls it too, for
 * callers that did not */
int lks_my_library_init(void)
{
	static int done;
	if (!done) {
		if (mysql_library_init(0, NULL, NULL))
			return LKS_EDB;
		done = 1;
	}
	return LKS_OK;
}

int lks_my_open(lks_conn *c, const char *url)
{
	lks_url u;
	char err[256];
	int rc;
	my_bool off = 0;
	if ((rc = lks_url_parse(url, &u, err, sizeof err)))
		return lks_set_error(c, rc, "malformed URL: %s", rc == LKS_EINVAL ? err : "out of memory");
	if (lks_my_library_init()) {
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

int lks_my_exec(lks_conn *c, const char *sql)
{
	MYSQL_RES *res;
	if (mysql_real_query(MY(c), sql, strlen(sql)))
		return lks_my_conn_error(c);
	res = mysql_store_result(MY(c));
	if (res)
		mysql_free_result(res);
	else if (mysql_errno(MY(c)))
		return lks_my_conn_error(c);
	return LKS_OK;
}

int lks_my_commit(lks_conn *c)
{
	return lks_my_exec(c, "COMMIT");
}

bool lks_my_in_transaction(lks_conn *c)
{
	return (MY(c)->server_status & SERVER_STATUS_IN_TRANS) != 0;
}

/* MariaDB Connector/C: reads and writes on the connection fail from now on
 * (the handle must be reset); no network I/O, so the tripping thread never
 * waits. The server goes on with the statement: lks_my_after_cancel ends it. */
void lks_my_interrupt(lks_conn *c)
{
#ifdef MARIADB_PACKAGE_VERSION_ID
	ST(c)->interrupted = true;
	mariadb_cancel(MY(c));
#else
	(void)c; /* libmysqlclient: the statement runs to its own timeout */
#endif
}

int lks_my_set_prepare(lks_conn *c, bool on)
{
	(void)on;
	return lks_set_error(c, LKS_EUNSUPPORTED, "statement mode is a PostgreSQL setting");
}
