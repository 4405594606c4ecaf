/* TLS for mysql:// URLs (ssl-mode, ssl-ca, ssl-cert, ssl-key) and the
 * read/write timeouts, against two real servers: the plain MariaDB of the
 * other suites (LKS_MYSQL_URL) and one that accepts TLS only
 * (LKS_MYSQL_TLS_URL, require_secure_transport) with the test certificates
 * in LKS_TLS_DIR: ca.pem signed server.pem (for the name localhost only)
 * and client.pem; wrong-ca.pem signed nothing. scripts/test.sh starts both.
 * Usage: tls */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <mysql.h>
#include "lockstock.h"
#include "lockstock-mysql.h"
#include "tap.h"

static const char *plain_url, *tls_url, *tls_dir;

/* The TLS server's URL with another host and user, plus parameters. */
static void url_for(char *out, size_t n, const char *host, const char *user,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void url_for(char *out, size_t n, const char *host, const char *user,
                    const char *fmt, ...)
{
	/* tls_url is mysql://USER:PASSWORD@HOST:PORT/DB */
	const char *auth = strstr(tls_url, "://") + 3, *at = strchr(auth, '@');
	const char *pw = memchr(auth, ':', (size_t)(at - auth)), *port = strchr(at, ':');
	char params[1024];
	va_list ap;
	assert_non_null(pw);
	assert_non_null(port);
	va_start(ap, fmt);
	vsnprintf(params, sizeof params, fmt, ap);
	va_end(ap);
	if (user) /* the password stays */
		snprintf(out, n, "mysql://%s%.*s@%s%s?%s", user, (int)(at - pw), pw, host, port, params);
	else
		snprintf(out, n, "mysql://%.*s@%s%s?%s", (int)(at - auth), auth, host, port, params);
}

static char *file(const char *name)
{
	static char paths[4][512];
	static int k;
	char *p = paths[k++ % 4];
	snprintf(p, sizeof paths[0], "%s/%s", tls_dir, name);
	return p;
}

/* The session's Ssl_cipher ("" when the session is plaintext). */
static void cipher_of(lks_conn *c, char *out, size_t n)
{
	MYSQL *my = lks_conn_mysql(c);
	MYSQL_RES *res;
	MYSQL_ROW row;
	out[0] = '\0';
	assert_non_null(my);
	assert_int_equal(mysql_query(my, "SHOW SESSION STATUS LIKE 'Ssl_cipher'"), 0);
	res = mysql_store_result(my);
	assert_non_null(res);
	row = mysql_fetch_row(res);
	assert_non_null(row);
	snprintf(out, n, "%s", row[1] ? row[1] : "");
	mysql_free_result(res);
}

static lks_conn *open_ok(const char *url)
{
	lks_conn *c = NULL;
	int rc = lks_conn_open(&c, url);
	if (rc)
		fail_msg("open: %s (%s)", lks_strerror(rc), lks_conn_errmsg(c));
	return c;
}

static void open_fails(const char *url, const char *needle)
{
	lks_conn *c = NULL;
	assert_int_equal(lks_conn_open(&c, url), LKS_ECONN);
	if (needle && !strstr(lks_conn_errmsg(c), needle))
		fail_msg("error \"%s\" does not say \"%s\"", lks_conn_errmsg(c), needle);
	assert_null(strstr(lks_conn_errmsg(c), "lkspw"));
	lks_conn_close(c);
}

/* Opens url and checks that the session is encrypted. */
static void open_encrypted(const char *url)
{
	char cipher[128];
	lks_conn *c = open_ok(url);
	cipher_of(c, cipher, sizeof cipher);
	assert_true(cipher[0] != '\0');
	lks_conn_close(c);
}

/* REQUIRED against a server without TLS fails; it never falls back to
 * plaintext (Connector/C's SSL_ENFORCE alone would). */
static void required_refuses_plaintext_server(void **state)
{
	char url[1200];
	(void)state;
	snprintf(url, sizeof url, "%s%cssl-mode=REQUIRED", plain_url, strchr(plain_url, '?') ? '&' : '?');
	open_fails(url, "refusing a plaintext connection");
	snprintf(url, sizeof url, "%s%cssl-mode=VERIFY_IDENTITY&ssl-ca=%s", plain_url,
	         strchr(plain_url, '?') ? '&' : '?', file("ca.pem"));
	open_fails(url, NULL);
}

static void each_mode_on_tls_server(void **state)
{
	char url[1200];
	(void)state;
	/* REQUIRED and PREFERRED: encrypted, nothing verified */
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-mode=REQUIRED");
	open_encrypted(url);
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl_mode=preferred");
	open_encrypted(url);
	/* VERIFY_CA checks the chain, not the name: 127.0.0.1 is accepted */
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-mode=VERIFY_CA&ssl-ca=%s", file("ca.pem"));
	open_encrypted(url);
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-mode=VERIFY_CA&ssl-ca=%s", file("wrong-ca.pem"));
	open_fails(url, "TLS");
	/* VERIFY_IDENTITY checks the name too: the certificate is for localhost */
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", file("ca.pem"));
	open_fails(url, "TLS");
	url_for(url, sizeof url, "localhost", NULL, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", file("ca.pem"));
	open_encrypted(url);
	/* ssl-ca alone implies VERIFY_CA */
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-ca=%s", file("wrong-ca.pem"));
	open_fails(url, "TLS");
	/* no ssl-mode: PREFERRED, so TLS when the server offers it (hardening
	 * 3, item 12: it was plaintext, which this server refuses) */
	url_for(url, sizeof url, "127.0.0.1", NULL, "connect-timeout=10");
	open_encrypted(url);
	/* DISABLED is plaintext: this server refuses it */
	url_for(url, sizeof url, "127.0.0.1", NULL, "ssl-mode=DISABLED");
	open_fails(url, NULL);
}

/* ssl-cert and ssl-key reach the server: lks_x509 must present one. */
static void client_certificate(void **state)
{
	char url[1200];
	(void)state;
	url_for(url, sizeof url, "localhost", "lks_x509", "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s&ssl-cert=%s&ssl-key=%s",
	        file("ca.pem"), file("client.pem"), file("client-key.pem"));
	open_encrypted(url);
	url_for(url, sizeof url, "localhost", "lks_x509", "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", file("ca.pem"));
	open_fails(url, NULL);
}

static int exec_ok(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	(void)arg;
	return lks_conn_exec(c, "UPDATE tls_counter SET n = n + 1");
}

/* The lease calls, fenced writes and CAS work over TLS; auto-renew opens
 * its connection with the lease's transport (the server takes no other). */
static void leases_and_autorenew_over_tls(void **state)
{
	char url[1200], name[64];
	lks_conn *c;
	lks_lease *l = NULL;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	int64_t n = 0;
	(void)state;
	url_for(url, sizeof url, "localhost", NULL, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", file("ca.pem"));
	c = open_ok(url);
	assert_int_equal(lks_lease_install(c), LKS_OK);
	assert_int_equal(lks_conn_exec(c, "CREATE TABLE IF NOT EXISTS tls_counter (n bigint NOT NULL)"), LKS_OK);
	assert_int_equal(lks_conn_exec(c, "DELETE FROM tls_counter"), LKS_OK);
	assert_int_equal(lks_conn_exec(c, "INSERT INTO tls_counter VALUES (0)"), LKS_OK);
	snprintf(name, sizeof name, "tls-%d", (int)getpid());
	assert_int_equal(lks_lease_acquire(&l, c, name, 600, 0, NULL), LKS_OK);
	ao.interval_ms = 150;
	assert_int_equal(lks_lease_autorenew_start(l, c, NULL, &ao), LKS_OK);
	usleep(1500 * 1000); /* 2.5 TTLs: only renewals keep it */
	assert_false(lks_lease_is_lost(l));
	assert_int_equal(lks_lease_fenced_write(c, l, exec_ok, NULL), LKS_OK);
	assert_int_equal(lks_conn_query_int(c, "SELECT n FROM tls_counter", NULL, 0, &n), LKS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(lks_lease_release(c, l), LKS_OK);
	lks_lease_free(l);
	lks_conn_close(c);
}

/* An adopted TLS connection: auto-renew takes the caller's URL, with the
 * same transport; a plaintext one cannot start on this server. */
static void adopted_connection_autorenew_url(void **state)
{
	char url[1200], bad[1200], name[64];
	MYSQL *my = mysql_init(NULL);
	my_bool on = 1;
	unsigned int tcp = MYSQL_PROTOCOL_TCP;
	lks_conn *c = NULL;
	lks_lease *l = NULL;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	const char *port = strchr(strchr(tls_url, '@'), ':') + 1;
	(void)state;
	assert_non_null(my);
	mysql_options(my, MYSQL_OPT_PROTOCOL, &tcp);
	mysql_options(my, MYSQL_OPT_SSL_ENFORCE, &on);
	mysql_options(my, MYSQL_OPT_SSL_CA, file("ca.pem"));
	mysql_options(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
	if (!mysql_real_connect(my, "localhost", "lks", "lkspw", "lockstock", (unsigned int)atoi(port), NULL,
	                        CLIENT_FOUND_ROWS))
		fail_msg("native TLS connect: %s", mysql_error(my));
	assert_int_equal(lks_conn_adopt_mysql(&c, my), LKS_OK);
	assert_int_equal(lks_lease_install(c), LKS_OK);
	snprintf(name, sizeof name, "tls-adopted-%d", (int)getpid());
	assert_int_equal(lks_lease_acquire(&l, c, name, 600, 0, NULL), LKS_OK);
	ao.interval_ms = 150;
	/* no URL: an adopted handle has none to copy */
	assert_int_equal(lks_lease_autorenew_start(l, c, NULL, &ao), LKS_EINVAL);
	url_for(bad, sizeof bad, "localhost", NULL, "ssl-mode=DISABLED");
	assert_int_equal(lks_lease_autorenew_start(l, c, bad, &ao), LKS_ECONN);
	url_for(url, sizeof url, "localhost", NULL, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", file("ca.pem"));
	assert_int_equal(lks_lease_autorenew_start(l, c, url, &ao), LKS_OK);
	usleep(1500 * 1000);
	assert_false(lks_lease_is_lost(l));
	assert_int_equal(lks_lease_release(c, l), LKS_OK);
	lks_lease_free(l);
	lks_conn_close(c);
	mysql_close(my);
}

/* read-timeout reaches the client library: a statement that outlasts it
 * fails instead of blocking (the plain server, TCP). */
static void read_timeout_applies(void **state)
{
	char url[1200];
	lks_conn *c;
	int64_t v = 0;
	(void)state;
	snprintf(url, sizeof url, "%s%cread-timeout=1&write_timeout=5&connect-timeout=3", plain_url,
	         strchr(plain_url, '?') ? '&' : '?');
	c = open_ok(url);
	assert_int_equal(lks_conn_query_int(c, "SELECT SLEEP(0.2)", NULL, 0, &v), LKS_OK);
	assert_int_not_equal(lks_conn_query_int(c, "SELECT SLEEP(4)", NULL, 0, &v), LKS_OK);
	lks_conn_close(c);
}

int main(void)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(required_refuses_plaintext_server),
		cmocka_unit_test(each_mode_on_tls_server),
		cmocka_unit_test(client_certificate),
		cmocka_unit_test(leases_and_autorenew_over_tls),
		cmocka_unit_test(adopted_connection_autorenew_url),
		cmocka_unit_test(read_timeout_applies),
	};
	plain_url = getenv("LKS_MYSQL_URL");
	tls_url = getenv("LKS_MYSQL_TLS_URL");
	tls_dir = getenv("LKS_TLS_DIR");
	if (!plain_url || !tls_url || !tls_dir || !strchr(tls_url, '@')) {
		/* never turn a missing server into skipped tests */
		fprintf(stderr, "FAILED: set LKS_MYSQL_URL, LKS_MYSQL_TLS_URL (mysql://USER:PASSWORD@HOST:PORT/DB) "
		                "and LKS_TLS_DIR; scripts/test.sh starts those servers\n");
		return 1;
	}
	lks_library_init();
	return cmocka_run_group_tests_name("tls-mysql", tests, NULL, NULL);
}
