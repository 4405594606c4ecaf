/* Integration-test support: which server, a fresh namespace per test, and
 * helpers that hide the two SQL dialects' small differences. */
#ifndef LKS_TEST_SUPPORT_H
#define LKS_TEST_SUPPORT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lockstock.h"

typedef struct fx {
	char url[1024];  /* URL whose default schema/database is the fresh one */
	char ns[64];     /* that schema (PostgreSQL) or database (MySQL) */
	lks_conn *c;     /* open on url, lease table installed */
} fx;

extern lks_backend T_BACKEND;
extern const char *T_BASE_URL; /* server given by the environment */
extern const char *T_CTL;      /* script: start|stop|restart (may be NULL) */
extern int T_POOLED;           /* PostgreSQL through a transaction pooler (prepare=off) */

int support_init(const char *backend); /* reads the environment */
int fx_setup(void **state);
int fx_teardown(void **state);

/* url without lockstock's own prepare=off, for libpq itself */
void t_libpq_url(const char *url, char *out, size_t n);
/* Open on url, asserting success. */
lks_conn *t_open(const char *url);
/* Run SQL with '?' placeholders (rewritten to $n on PostgreSQL). */
int t_int(lks_conn *c, int64_t *out, const char *sql, const lks_value *p, size_t n);
int64_t t_int1(lks_conn *c, const char *sql); /* asserts success */
void t_exec(lks_conn *c, const char *sql);    /* asserts success */
/* A holder in a child process, to be SIGKILLed: the child opens url, runs
 * fn (which fills out[0..1], -1 on failure), sends out to the parent and
 * pauses until killed. Returns its pid with out filled. */
typedef void (*t_holder_fn)(lks_conn *c, int64_t out[2], void *arg);
int t_fork_holder(const char *url, t_holder_fn fn, void *arg, int64_t out[2]);
/* call must return LKS_OK; otherwise fail with the handle's message */
#define T_OK(c, call)                                                                    \
	do {                                                                             \
		int t_rc_ = (call);                                                      \
		if (t_rc_ != LKS_OK)                                                     \
			fail_msg("%s: %s (%s)", #call, lks_strerror(t_rc_), lks_conn_errmsg(c)); \
	} while (0)
/* Waits on observed state: sql (one integer) reaches want; 60 s means hung. */
void t_wait_for(lks_conn *c, const char *sql, int64_t want);
/* Waits until n connections wait in a waiting room's line (blocked on a
 * baton: pg_locks / PROCESSLIST). */
void t_wait_in_line(lks_conn *c, int64_t n);
int64_t t_session_id(lks_conn *c);
void t_kill_session(const char *url, int64_t id);
const char *t_sleep_sql(void); /* a statement that sleeps 5 s */
void t_ctl(const char *what);  /* runs T_CTL what; fails the test if absent */
#endif
