/* Integration-test support (see support.h). */
#include "support.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

lks_backend T_BACKEND;
const char *T_BASE_URL;
const char *T_CTL;
int T_POOLED;

int support_init(const char *backend)
{
	const char *url_var, *ctl_var;
	if (!strcmp(backend, "postgresql")) {
		T_BACKEND = LKS_BACKEND_POSTGRESQL;
		url_var = "LKS_PG_URL";
		ctl_var = "LKS_PG_CTL";
	} else if (!strcmp(backend, "pgbouncer")) {
		/* PostgreSQL through PgBouncer in transaction pooling; the
		 * control script is the server's behind it */
		T_BACKEND = LKS_BACKEND_POSTGRESQL;
		url_var = "LKS_PGBOUNCER_URL";
		ctl_var = "LKS_PGBOUNCER_PG_CTL";
	} else if (!strcmp(backend, "mysql")) {
		T_BACKEND = LKS_BACKEND_MYSQL;
		url_var = "LKS_MYSQL_URL";
		ctl_var = "LKS_MYSQL_CTL";
	} else {
		fprintf(stderr, "backend: postgresql, pgbouncer or mysql, not %s\n", backend);
		return -1;
	}
	T_BASE_URL = getenv(url_var);
	T_CTL = getenv(ctl_var);
	T_POOLED = T_BASE_URL && strstr(T_BASE_URL, "prepare=off") != NULL;
	if (!T_BASE_URL || !*T_BASE_URL) {
		/* never turn a missing server into skipped tests */
		fprintf(stderr,
		        "FAILED: %s is not set. Run scripts/test.sh, which starts the servers, "
		        "or point %s at a server.\n",
		        url_var, url_var);
		return -1;
	}
	lks_library_init();
	return 0;
}

void t_libpq_url(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "prepare=off");
	if (!p) {
		snprintf(out, n, "%s", url);
		return;
	}
	const char *after = p + strlen("prepare=off");
	if (*after == '&') /* keep the separator before it, drop the one after */
		snprintf(out, n, "%.*s%s", (int)(p - url), url, after + 1);
	else /* last: drop the separator before it */
		snprintf(out, n, "%.*s", (int)(p - url - 1), url);
}

/* A connect that timed out is tried twice more: 32 connections at once
 * under valgrind on a loaded machine once outlived the 30 s connect timeout.
 * The library's own connect timeout is tested with URLs of its own. */
lks_conn *t_open(const char *url)
{
	lks_conn *c = NULL;
	int rc = lks_conn_open(&c, url);
	for (int i = 0; i < 2 && rc == LKS_ECONN && strstr(lks_conn_errmsg(c), "timeout"); i++) {
		fprintf(stderr, "# open: %s; trying again\n", lks_conn_errmsg(c));
		lks_conn_close(c);
		c = NULL;
		rc = lks_conn_open(&c, url);
	}
	if (rc)
		fail_msg("open %s: %s (%s)", url, lks_strerror(rc), lks_conn_errmsg(c));
	return c;
}

static void rewrite(const char *sql, char *out, size_t n)
{
	int k = 1;
	size_t o = 0;
	for (; *sql && o + 4 < n; sql++) {
		if (*sql == '?' && T_BACKEND == LKS_BACKEND_POSTGRESQL)
			o += (size_t)snprintf(out + o, n - o, "$%d", k++);
		else
			out[o++] = *sql;
	}
	out[o] = '\0';
}

int t_int(lks_conn *c, int64_t *out, const char *sql, const lks_value *p, size_t n)
{
	char buf[2048];
	rewrite(sql, buf, sizeof buf);
	return lks_conn_query_int(c, buf, p, n, out);
}

int64_t t_int1(lks_conn *c, const char *sql)
{
	int64_t v = 0;
	int rc = t_int(c, &v, sql, NULL, 0);
	if (rc)
		fail_msg("%s: %s (%s)", sql, lks_strerror(rc), lks_conn_errmsg(c));
	return v;
}

void t_exec(lks_conn *c, const char *sql)
{
	int rc = lks_conn_exec(c, sql);
	if (rc)
		fail_msg("%s: %s (%s)", sql, lks_strerror(rc), lks_conn_errmsg(c));
}

int64_t t_session_id(lks_conn *c)
{
	return t_int1(c, T_BACKEND == LKS_BACKEND_POSTGRESQL ? "SELECT pg_backend_pid()"
	                                                      : "SELECT CONNECTION_ID()");
}

void t_kill_session(const char *url, int64_t id)
{
	char sql[128];
	lks_conn *k = t_open(url);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)id);
	else
		snprintf(sql, sizeof sql, "KILL %lld", (long long)id);
	t_exec(k, sql);
	lks_conn_close(k);
}

const char *t_sleep_sql(void)
{
	return T_BACKEND == LKS_BACKEND_POSTGRESQL ? "SELECT pg_sleep(5)" : "SELECT SLEEP(5)";
}

void t_ctl(const char *what)
{
	char cmd[1024];
	if (!T_CTL)
		fail_msg("this test stops and starts the server: set LKS_PG_CTL / LKS_MYSQL_CTL "
		         "to a script taking start|stop|restart (scripts/test.sh does)");
	snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", T_CTL, what);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

/* URL of the same server with another default schema / database. */
static void url_with_ns(const char *base, const char *ns, char *out, size_t n)
{
	/* behind a transaction pooler no startup option reaches the server:
	 * each test gets a database of its own */
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL && !T_POOLED) {
		snprintf(out, n, "%s%coptions=-csearch_path%%3D%s", base,
		         strchr(base, '?') ? '&' : '?', ns);
	} else {
		const char *auth = strstr(base, "://") + 3;
		const char *path = auth + strcspn(auth, "/?");
		const char *query = strchr(path, '?');
		snprintf(out, n, "%.*s/%s%s", (int)(path - base), base, ns, query ? query : "");
	}
}

int fx_setup(void **state)
{
	static int counter;
	char sql[256];
	fx *f = calloc(1, sizeof *f);
	lks_conn *admin;
	snprintf(f->ns, sizeof f->ns, "lks_t_%d_%d", (int)getpid(), ++counter);
	admin = t_open(T_BASE_URL);
	snprintf(sql, sizeof sql,
	         T_BACKEND == LKS_BACKEND_POSTGRESQL && !T_POOLED ? "CREATE SCHEMA %s" : "CREATE DATABASE %s",
	         f->ns);
	t_exec(admin, sql);
	lks_conn_close(admin);
	url_with_ns(T_BASE_URL, f->ns, f->url, sizeof f->url);
	f->c = t_open(f->url);
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	fx *f = *state;
	char sql[256];
	lks_conn *admin = NULL;
	lks_conn_close(f->c);
	if (lks_conn_open(&admin, T_BASE_URL) == LKS_OK) {
		snprintf(sql, sizeof sql,
		         T_BACKEND == LKS_BACKEND_MYSQL ? "DROP DATABASE %s"
		         : T_POOLED                     ? "DROP DATABASE %s WITH (FORCE)"
		                                        : "DROP SCHEMA %s CASCADE",
		         f->ns);
		lks_conn_exec(admin, sql);
	}
	lks_conn_close(admin);
	free(f);
	return 0;
}

void t_wait_for(lks_conn *c, const char *sql, int64_t want)
{
	for (int i = 0; i < 6000; i++) {
		if (t_int1(c, sql) == want)
			return;
		usleep(10000);
	}
	fail_msg("still not %lld after 60 s: %s", (long long)want, sql);
}

void t_wait_in_line(lks_conn *c, int64_t n)
{
	t_wait_for(c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                  ? "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
	                  : "SELECT count(*) FROM information_schema.PROCESSLIST"
	                    " WHERE INFO LIKE 'SELECT COALESCE(GET_LOCK(%'",
	           n);
}

int t_fork_holder(const char *url, t_holder_fn fn, void *arg, int64_t out[2])
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	int pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lks_conn *c = NULL;
		int64_t got[2] = {-1, -1};
		close(fds[0]);
		if (lks_conn_open(&c, url) == LKS_OK)
			fn(c, got, arg);
		if (write(fds[1], got, sizeof got) != sizeof got)
			_exit(3);
		for (;;)
			pause(); /* holding until killed */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], out, 2 * sizeof *out), (ssize_t)(2 * sizeof *out));
	close(fds[0]);
	return pid;
}
