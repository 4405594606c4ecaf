/* MySQL/MariaDB backend (libmysqlclient / MariaDB Connector/C), private to
 * src/mysql/: the handle's state and what its files call of each other.
 * conn.c: open (auth plugins, TLS, timeouts), close, errors, cancel;
 * query.c: the prepared-statement cache and result rows; cas.c, schema.c,
 * lease.c, baton.c: the CAS, schema, lease and waiting-room statements in
 * MySQL's dialect (no RETURNING: LAST_INSERT_ID(expr) carries the new
 * fence); backend.c: the ops table. */
#ifndef LKS_MY_H
#define LKS_MY_H
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
	bool wsrep;      /* a Galera node (wsrep_on): see SYNC and lks_my_lease_guard */
	lks_fence_guard guard_mode; /* from the URL */
	bool write_guard;           /* the guard in effect: see lks_my_lease_guard */
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

int lks_my_conn_error(lks_conn *c);
int lks_my_stmt_error(lks_conn *c, MYSQL_STMT *s);
void lks_my_close(lks_conn *c);
int lks_my_library_init(void);
int lks_my_open(lks_conn *c, const char *url);
int lks_my_exec(lks_conn *c, const char *sql);
int lks_my_query(lks_conn *c, const char *sql, const lks_value *params,
                 size_t n, lks_rows *out);
int lks_my_commit(lks_conn *c);
bool lks_my_in_transaction(lks_conn *c);
int lks_my_cas_update(lks_conn *c, const char *table, const char *key,
                      const char *ver, lks_value keyv, int64_t expected,
                      const char *const *cols, const lks_value *values,
                      size_t n, int64_t *version);
void lks_my_lease_ddl(const char *t, lks_sql *q);
int lks_my_lease_install(lks_conn *c, const char *t);
void lks_my_baton_name(uint64_t baton, char out[24]);
int lks_my_baton_held(lks_conn *c, uint64_t baton, int *held);
int lks_my_lease_try(lks_conn *c, const char *t, const char *name,
                     const char *holder, const char *owner_tag, int64_t ttl_us,
                     lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                     lks_grant *g);
int lks_my_lease_renew(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence, int64_t ttl_us,
                       int64_t *remaining_us);
int lks_my_lease_release(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence, bool give_baton,
                         uint64_t baton);
bool lks_my_baton_supported(lks_conn *c);
int lks_my_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got);
int lks_my_baton_give(lks_conn *c, uint64_t baton);
int lks_my_lease_guard(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence);
int lks_my_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                        lks_rows *out);
int lks_my_lease_has_owner(lks_conn *c, const char *t, bool *has);
int lks_my_lease_has_payload(lks_conn *c, const char *t, bool *has);
int lks_my_lease_set_payload(lks_conn *c, const char *t, const char *name, const char *holder,
                             int64_t fence, const char *hex);
int lks_my_lease_get_payload(lks_conn *c, const char *t, const char *name, bool with_owner,
                             lks_rows *out);
int lks_my_lease_renew_many(lks_conn *c, const char *t, const char *json, lks_rows *out);
int lks_my_lease_select_slots(lks_conn *c, const char *t, const char *prefix, int permits,
                              bool with_owner, lks_rows *out);
int lks_my_lease_force_release(lks_conn *c, const char *t, const char *name,
                               bool with_owner, lks_rows *out);
void lks_my_interrupt(lks_conn *c);
int lks_my_after_cancel(lks_conn *c, const char *t, const char *name, const char *holder);
/* ROLLBACK of an open transaction that keeps the error the caller sees */
void lks_my_rollback_keeping_error(lks_conn *c);
int lks_my_set_prepare(lks_conn *c, bool on);
lks_overflow lks_my_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                  const char *key_q, const char *version_q,
                                  const char *version_column, lks_value key);

#endif
