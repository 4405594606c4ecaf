/* PostgreSQL backend (libpq), private to src/pg/: the handle's state, the
 * statement cache's entries, and what its files call of each other.
 * conn.c: open, close, waiting with deadlines, cancel; query.c: the
 * prepared-statement cache and parameters; cas.c, schema.c, lease.c: the
 * CAS, schema and lease statements in PostgreSQL's dialect; backend.c: the
 * ops table. */
#ifndef LKS_PG_H
#define LKS_PG_H
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
	bool write_guard; /* fence-guard=write: the guard writes the lease row */
	bool single_grant; /* grant=single: no statement modifies the lease table twice */
} pg_state;

#define ST(c) ((pg_state *)(c)->backend)
/* how long a canceled statement may run on before its socket is shut down */
#define CANCEL_GRACE_US 1000000

#define PG(c) ((PGconn *)(c)->native)
#define REMAINING_US "(extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::bigint"


/* Parameters as text (libpq's text format). */
typedef struct pg_params {
	char ints[16][24];
	const char *vals[16];
} pg_params;

int lks_pg_error(lks_conn *c, PGresult *res);
bool lks_pg_wait_ready(lks_conn *c, int64_t deadline);
int64_t lks_pg_deadline(lks_conn *c);
PGresult *lks_pg_collect(lks_conn *c);
PGresult *lks_pg_exec_res(lks_conn *c, const char *sql);
void lks_pg_close(lks_conn *c);
int lks_pg_open(lks_conn *c, const char *url);
int lks_pg_exec(lks_conn *c, const char *sql);
const char *lks_pg_prepare(lks_conn *c, const char *sql, int nparams);
int lks_pg_bind(lks_conn *c, const lks_value *params, size_t n, pg_params *pp);
int lks_pg_query(lks_conn *c, const char *sql, const lks_value *params,
                 size_t n, lks_rows *out);
int lks_pg_commit(lks_conn *c);
bool lks_pg_in_transaction(lks_conn *c);
int lks_pg_cas_update(lks_conn *c, const char *table, const char *key,
                      const char *ver, lks_value keyv, int64_t expected,
                      const char *const *cols, const lks_value *values,
                      size_t n, int64_t *version);
void lks_pg_lease_ddl(const char *t, lks_sql *q);
int lks_pg_lease_install(lks_conn *c, const char *t);
int lks_pg_baton_held(lks_conn *c, uint64_t baton, int *held);
int lks_pg_lease_try(lks_conn *c, const char *t, const char *name,
                     const char *holder, const char *owner_tag, int64_t ttl_us,
                     lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                     lks_grant *g);
int lks_pg_lease_renew(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence, int64_t ttl_us,
                       int64_t *remaining_us);
int lks_pg_lease_release(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence, bool give_baton,
                         uint64_t baton);
bool lks_pg_baton_supported(lks_conn *c);
int lks_pg_set_prepare(lks_conn *c, bool on);
int lks_pg_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got);
int lks_pg_baton_give(lks_conn *c, uint64_t baton);
int lks_pg_lease_guard(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence);
int lks_pg_lease_select(lks_conn *c, const char *t, const char *name, bool with_owner,
                        lks_rows *out);
int lks_pg_lease_has_owner(lks_conn *c, const char *t, bool *has);
int lks_pg_lease_has_payload(lks_conn *c, const char *t, bool *has);
int lks_pg_lease_set_payload(lks_conn *c, const char *t, const char *name, const char *holder,
                             int64_t fence, const char *hex);
int lks_pg_lease_get_payload(lks_conn *c, const char *t, const char *name, bool with_owner,
                             lks_rows *out);
int lks_pg_lease_renew_many(lks_conn *c, const char *t, const char *json, lks_rows *out);
int lks_pg_semaphore_grab(lks_conn *c, const char *t, const char *prefix, int permits,
                          const char *holder, const char *owner_tag, int64_t ttl_us,
                          lks_baton_mode mode, uint64_t baton, int *slot, int *existing,
                          lks_grant *g);
int lks_pg_lease_select_slots(lks_conn *c, const char *t, const char *prefix, int permits,
                              bool with_owner, lks_rows *out);
int lks_pg_lease_force_release(lks_conn *c, const char *t, const char *name,
                               bool with_owner, lks_rows *out);
lks_overflow lks_pg_overflow_part(lks_conn *c, const char *server, const char *table_q,
                                  const char *key_q, const char *version_q,
                                  const char *version_column, lks_value key);

#endif
