/* Internal types shared by the backend-neutral code and the backends. */
#ifndef LKS_INTERNAL_H
#define LKS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "lockstock.h"

#define LKS_IDENT_MAX 63
#define LKS_HOLDER_LEN 32
#define LKS_ERRMSG_MAX 512

/* A fully read result: text cells, row-major, NULL for SQL NULL. */
typedef struct lks_rows {
	int nrows, ncols;
	char **cells;
	int64_t affected;   /* matched rows for UPDATE/INSERT */
	uint64_t insert_id; /* MySQL LAST_INSERT_ID(expr) */
} lks_rows;

/* Versioned options (their first member is unsigned int version; sizes[v - 1]
 * is how many leading bytes version v has, the last being sizeof the
 * struct). lks_options_copy lays the caller's options of any known version
 * over dst, which holds the defaults; NULL src leaves them. lks_options_init
 * writes the defaults of one version, as a caller built against that
 * version's header expects. Both refuse an unknown version (LKS_EINVAL). */
int lks_options_copy(lks_conn *c, const char *what, void *dst, const void *src,
                     const size_t *sizes, unsigned int versions);
int lks_options_init(void *opts, const void *defaults, unsigned int version,
                     const size_t *sizes, unsigned int versions);

char *lks_hex_of(const void *data, size_t len);
int lks_unhex(const char *s, unsigned char *out, size_t *len);

/* Wipes a string that may hold a password, then frees it; NULL is fine. */
void lks_free_secret(char *s);
void lks_rows_clear(lks_rows *r);
const char *lks_rows_get(const lks_rows *r, int row, int col);
/* first row whose column col equals value, or -1 */
int lks_rows_find(const lks_rows *r, int col, const char *value);
int lks_parse_i64(const char *s, int64_t *out);

/* Outcome of one grant attempt. */
typedef struct lks_grant {
	int granted;
	int64_t fence;        /* granted: new token; busy: current holder's (0 unknown) */
	int64_t remaining_us; /* granted: TTL left; busy: holder's time left, -1 unknown */
	int baton;            /* this connection holds the name's baton afterwards */
	int released;         /* busy: the row is free (released or never granted) */
	int statements;       /* grant statements this attempt sent */
	int skip_lean;        /* in: the lease was handed on at this handle's last
	                         release, so it is most likely held: no lean try */
	int stale_ms;         /* in: without the baton, a row free this long counts
	                         as left behind by a stalled line (0: the default,
	                         LKS_BATON_STALE_MS) */
} lks_grant;

/* A semaphore's line: a newcomer takes a permit that has been free this
 * long even though a head waits (a head stalled that long, or gone).
 * Longer than a lease's: with several permits a hand-off is not one
 * release's baton but the next head's poll, which a loaded machine can
 * delay past 50 ms, and the line is the promise. */
#define LKS_SEMAPHORE_LINE_STALE_MS 500
#define LKS_STALE_MS(g) ((g)->stale_ms > 0 ? (g)->stale_ms : LKS_BATON_STALE_MS)

/* A grant attempt's outcome before it is known: nothing granted, nothing
 * known of the holder, one statement. */
static inline void lks_grant_clear(lks_grant *g)
{
	g->granted = 0;
	g->fence = 0;
	g->remaining_us = -1;
	g->baton = 0;
	g->released = 0;
	g->statements = 1;
}

/*
 * The waiting room (see lease_acquire.c): a session-level server lock per lease name,
 * the "baton". The holder keeps it while it holds the lease; waiters block on
 * it in the server instead of polling, and the release hands it to the first
 * in line. It is only an optimisation: the lease row alone decides grants.
 */
/* A lease free this long while another connection keeps its baton is
 * granted without the baton: the baton was left behind (a stalled or
 * departed holder), not handed to a waiter about to take the lease. */
#define LKS_BATON_STALE_MS 50
typedef enum lks_baton_mode {
	LKS_BATON_TRY = 0,  /* take the baton if free; without it, grant only a
	                       new name or a lease free for LKS_BATON_STALE_MS */
	LKS_BATON_HELD = 1, /* this connection holds the baton already */
	LKS_BATON_NONE = 2, /* no waiting room: never touch the baton */
	LKS_BATON_PEEK = 3, /* like TRY, but leave the baton free: an
	                       uncontended holder keeps none, so its release
	                       needs no second statement */
	LKS_BATON_WOKEN = 4 /* HELD, just handed over by a release: the lease
	                       is most likely free, so try the leanest grant */
} lks_baton_mode;

typedef struct lks_backend_ops lks_backend_ops;

/* Statement text builder with a fixed buffer; overflow is reported once. */
typedef struct lks_sql {
	char buf[4096];
	size_t len;
	bool overflow;
} lks_sql;

struct lks_conn {
	const lks_backend_ops *ops;
	void *native;         /* PGconn * or MYSQL * */
	bool borrowed;
	char *url;            /* NULL for adopted connections */
	char lease_table[LKS_IDENT_MAX * 2 + 2];
	int owner_col;        /* lease table has the owner column: -1 not known yet */
	int payload_col;      /* ... the payload column: -1 not known yet */
	int base_col;         /* ... the base column (the fence floor's guard): -1 not known yet */
	int64_t op_timeout_us; /* longest wait for one answer; 0: none */
	int64_t clock_offset_us; /* lks_conn_set_clock_offset: added to lease margins */
	lks_event_fn event_fn; /* hooks (NULL: none) */
	void *event_arg;
	lks_log_fn log_fn;
	void *log_arg;
	/* last error */
	int err;
	unsigned int err_no;
	char sqlstate[6];
	char errmsg[LKS_ERRMSG_MAX];
	/* last lks_cas_read texts */
	lks_rows last;
	const char **texts;
	void *backend;        /* backend private state (statement cache...) */
	struct lks_lease *batons; /* leases whose baton this connection holds */
	uint64_t handed_on;   /* baton key of the lease this handle's last release
	                         handed to a waiter (0: none) */
	/* the token whose trip ends the statement in flight (cancel.c) */
	struct lks_cancel *cancel;
	struct lks_conn *cancel_next;
	/* run when the session ends (close, reset): set by lease.c, which
	 * forgets the batons the session held */
	void (*session_end)(lks_conn *c);
	/* a grant statement cut off by a lost connection: it may have
	 * committed a grant nobody was told of. Given back by the handle's
	 * next lks_conn_reset (lease_acquire.c: lks_untold_*). */
	struct lks_untold {
		char table_q[LKS_IDENT_MAX * 2 + 8];
		char name[LKS_LEASE_NAME_MAX + 16]; /* the name, or a semaphore's prefix */
		bool prefix;
		char holder[LKS_HOLDER_LEN + 1];
		int64_t session; /* the lost session's id on the server (0: unknown) */
		char server[160]; /* which server that id belongs to */
	} untold;
};

/*
 * The one interface each backend implements. Text SQL never crosses it:
 * the neutral code passes validated identifiers and values, the backend owns
 * its dialect. Every function sets the handle's error on failure.
 */
/* Capability bits (lks_backend_ops.caps): what the neutral code may ask of
 * a backend without naming it. */
enum {
	/* a per-call op timeout (lks_conn_set_op_timeout): a renewal's wait can
	 * be bounded to the lease's deadline; without it the renew connection's
	 * URL carries an op-timeout */
	LKS_CAP_OP_TIMEOUT = 1u << 0,
	/* column names compare case-insensitively */
	LKS_CAP_NOCASE_COLUMNS = 1u << 1,
	/* parameters are numbered ($1, $2); without it they are all ? */
	LKS_CAP_NUMBERED_PARAMS = 1u << 2,
};

/* After an out-of-range error: which part of a CAS overflowed. */
typedef enum {
	LKS_OVERFLOW_VALUE,    /* a SET value: bad input */
	LKS_OVERFLOW_KEY,      /* the key value: bad input */
	LKS_OVERFLOW_VERSION,  /* version + 1 */
	LKS_OVERFLOW_UNPROBED, /* cannot tell (the caller's transaction failed) */
} lks_overflow;

struct lks_backend_ops {
	lks_backend id;
	const char *name;
	unsigned caps;              /* LKS_CAP_* */
	char quote;                 /* identifier quote character */
	/* a renew connection's URL: the connect timeout parameter's name, and
	 * the shortest one the client library honours (s) */
	const char *connect_timeout_key;
	int connect_timeout_min_s;
	const char *no_op_timeout;  /* without LKS_CAP_OP_TIMEOUT: how to set one */
	int (*library_init)(void);  /* NULL: nothing to do; once, before threads */
	/* connect c (from lks_conn_new or a closed handle) to url */
	int (*open)(lks_conn *c, const char *url);
	/* CREATE TABLE IF NOT EXISTS of the lease table, formatted for reading */
	void (*lease_ddl)(const char *table_q, lks_sql *q);
	/* the server's message of the failed CAS is in server */
	lks_overflow (*overflow_part)(lks_conn *c, const char *server, const char *table_q,
	                              const char *key_q, const char *version_q,
	                              const char *version_column, lks_value key);
	void (*close)(lks_conn *c);
	int (*exec)(lks_conn *c, const char *sql);
	int (*query)(lks_conn *c, const char *sql, const lks_value *params,
	             size_t n, lks_rows *out);
	bool (*in_transaction)(lks_conn *c);
	/* COMMIT; an error if the server rolled back instead */
	int (*commit)(lks_conn *c);
	int (*cas_update)(lks_conn *c, const char *table_q, const char *key_q,
	                  const char *version_q, lks_value key, int64_t expected,
	                  const char *const *cols_q, const lks_value *values,
	                  size_t n, int64_t *version);
	int (*lease_install)(lks_conn *c, const char *table_q);
	/* One grant poll. Never waits on a row lock longer than lock_wait_us;
	 * a locked row, a serialization failure or a deadlock returns
	 * LKS_ETRANSIENT, which the caller takes as "busy". */
	/* owner_tag ("holder:owner"): stored with a grant; NULL leaves the
	 * owner column alone (it may not exist). */
	int (*lease_try)(lks_conn *c, const char *table_q, const char *name,
	                 const char *holder, const char *owner_tag, int64_t ttl_us,
	                 lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
	                 lks_grant *g);
	int (*lease_renew)(lks_conn *c, const char *table_q, const char *name,
	                   const char *holder, int64_t fence, int64_t ttl_us,
	                   int64_t *remaining_us);
	/* Renew many in one statement (renewer.c): json is an array of
	 * {"n": name, "h": holder, "f": fence, "t": ttl_us}; out rows are the
	 * leases that were still current and are renewed: name, holder,
	 * fence, remaining_us. */
	int (*lease_renew_many)(lks_conn *c, const char *table_q, const char *json, lks_rows *out);
	/* Frees the lease; with give_baton, hands this connection's baton to
	 * the next waiter after the release has committed. */
	int (*lease_release)(lks_conn *c, const char *table_q, const char *name,
	                     const char *holder, int64_t fence, bool give_baton,
	                     uint64_t baton);
	/* waiting room; baton_supported false: leases poll instead */
	bool (*baton_supported)(lks_conn *c);
	/* block up to timeout_us for the baton; *got = 1 when taken */
	int (*baton_wait)(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got);
	int (*baton_give)(lks_conn *c, uint64_t baton);
	int (*baton_held)(lks_conn *c, uint64_t baton, int *held);
	/* inside an open transaction: hold the row if it is the current grant,
	 * so a takeover cannot commit before this transaction (else LKS_LOST) */
	int (*lease_guard)(lks_conn *c, const char *table_q, const char *name,
	                   const char *holder, int64_t fence);
	/* rows: name, holder, fence, remaining_us, held (0/1), owner tag (NULL
	 * unless with_owner); name NULL = all held */
	int (*lease_select)(lks_conn *c, const char *table_q, const char *name,
	                    bool with_owner, lks_rows *out);
	/* NULL, or one statement: grant any free or expired slot of
	 * prefix0 .. prefix(permits-1) that exists and no statement has locked
	 * (a fenced write in flight: skipped); *slot = -1 when none, with g
	 * telling the soonest expiry and *existing how many slot rows exist.
	 * mode PEEK (a newcomer): only while the semaphore's line (baton) is
	 * empty, or a slot has been free for LKS_BATON_STALE_MS (a stalled
	 * head); *existing = permits when the line held it back. HELD: the
	 * head of the line. NONE: no line. */
	int (*semaphore_grab)(lks_conn *c, const char *table_q, const char *prefix, int permits,
	                      const char *holder, const char *owner_tag, int64_t ttl_us,
	                      lks_baton_mode mode, uint64_t baton, int *slot, int *existing,
	                      lks_grant *g);
	/* as lease_select, the existing rows named prefix0 .. prefix(permits-1)
	 * (a semaphore's slots), in any order */
	int (*lease_select_slots)(lks_conn *c, const char *table_q, const char *prefix, int permits,
	                          bool with_owner, lks_rows *out);
	/* Cancellation: interrupt (NULL when the backend's own wait polls
	 * lks_cancel_fd) runs on the tripping thread while a statement blocks;
	 * it must not wait for the network. */
	void (*interrupt)(lks_conn *c);
	/* NULL, or: after a canceled acquire, make sure it holds nothing (the
	 * interrupt cost the session, whose statement may still complete) */
	int (*after_cancel)(lks_conn *c, const char *table_q, const char *name, const char *holder);
	/* the session's id on the server (0: none known), and, on a new
	 * session: end that old session (waiting until it is gone, so its
	 * statement in flight has finished; server says which server the id
	 * belongs to), then free any lease row of
	 * holder under name (or under every name with the prefix) */
	int64_t (*session_id)(lks_conn *c, char *server, size_t n);
	int (*give_back_untold)(lks_conn *c, const char *table_q, const char *name, bool prefix,
	                        const char *holder, int64_t old_session);
	/* PostgreSQL: named prepared statements (on) or unnamed ones (off) */
	int (*set_prepare)(lks_conn *c, bool on);
	/* processed once (src/once.c; SQL in pg/once.c, mysql/once.c): records.
	 * select rows: code, result (hex), fence, completed_at_us, fingerprint
	 * (hex, NULL when none), failed (0/1) */
	int (*once_install)(lks_conn *c, const char *table_q);
	int (*once_select)(lks_conn *c, const char *table_q, const char *scope, const char *key,
	                   lks_rows *out);
	int (*once_insert)(lks_conn *c, const char *table_q, const char *scope, const char *key,
	                   const char *fingerprint_hex, int code, const char *result_hex,
	                   int64_t fence, bool failed);
	int (*once_purge)(lks_conn *c, const char *table_q, int64_t older_than_us, int batch,
	                  int64_t *deleted);
	/* rows: scope, key, then as once_select; scope NULL: all; limit 0: all */
	int (*once_list)(lks_conn *c, const char *table_q, const char *scope, int limit,
	                 lks_rows *out);
	int (*once_forget)(lks_conn *c, const char *table_q, const char *scope, const char *key);
	/* steps table (steps_q): one current step per key; get rows: step,
	 * data (hex), fence, saved_at_us */
	int (*once_steps_install)(lks_conn *c, const char *steps_q);
	int (*once_step_put)(lks_conn *c, const char *steps_q, const char *scope, const char *key,
	                     const char *step, const char *data_hex, int64_t fence);
	int (*once_step_get)(lks_conn *c, const char *steps_q, const char *scope, const char *key,
	                     lks_rows *out);
	int (*once_step_delete)(lks_conn *c, const char *steps_q, const char *scope, const char *key);
	/* whether the lease table has the owner column */
	int (*lease_has_owner)(lks_conn *c, const char *table_q, bool *has);
	/* whether it has the base column, which new names are inserted with
	 * (the fence they start at); lease_seal drops its default, so that a
	 * client built before the fence floor, which inserts new names at
	 * fence 1, fails instead of sending a purged name's fence back */
	int (*lease_has_base)(lks_conn *c, const char *table_q, bool *has);
	int (*lease_seal)(lks_conn *c, const char *table_q);
	/* payloads: the column; set (hex) on the current grant (LKS_LOST when
	 * it is not); get rows as lease_select, then the current grant's
	 * payload (hex, NULL when none) */
	int (*lease_has_payload)(lks_conn *c, const char *table_q, bool *has);
	int (*lease_set_payload)(lks_conn *c, const char *table_q, const char *name,
	                         const char *holder, int64_t fence, const char *hex);
	int (*lease_get_payload)(lks_conn *c, const char *table_q, const char *name, bool with_owner,
	                         lks_rows *out);
	/* one transaction: the row as lease_select shows it, then, if held,
	 * holder NULL, fence + 1, expired now */
	int (*lease_force_release)(lks_conn *c, const char *table_q, const char *name,
	                           bool with_owner, lks_rows *out);
	/* cleanup (lease_purge.c): raise the fence floor to the table's largest
	 * fence, committed, and return it; then delete free rows older than the
	 * age with fence <= bound, in name order after the cursor (an opaque
	 * string of the backend's, "" first; next may be the same buffer);
	 * *more when the batch was full */
	int (*lease_floor_raise)(lks_conn *c, const char *table_q, int64_t *bound);
	int (*lease_purge_batch)(lks_conn *c, const char *table_q, const char *after,
	                         int64_t older_than_us, int64_t bound, int batch, int64_t *deleted,
	                         bool *more, char *next, size_t nextsz);
};

extern const lks_backend_ops lks_pg_ops;
extern const lks_backend_ops lks_mysql_ops;

/* errors */
int lks_set_error(lks_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int lks_set_db_error(lks_conn *c, int code, const char *sqlstate,
                     unsigned int err_no, const char *msg);
void lks_clear_error(lks_conn *c);
/* The handle's error, kept across a cleanup call (ROLLBACK, a release, giving
 * a baton back) whose own outcome must not replace what the caller sees. */
typedef struct lks_error_saved {
	int err;
	unsigned int err_no;
	char sqlstate[6];
	char errmsg[LKS_ERRMSG_MAX];
} lks_error_saved;
void lks_error_save(const lks_conn *c, lks_error_saved *saved);
void lks_error_restore(lks_conn *c, const lks_error_saved *saved);
/* map a server SQLSTATE / errno to a status code */
int lks_map_sqlstate(const char *sqlstate);
int lks_map_mysql_errno(unsigned int err_no);

/* identifiers: validate, then quote with the backend's quoting */
bool lks_ident_valid(const char *s);
/* 1..max bytes of well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF) without C0/C1 controls or DEL: safe to store
 * in either database and to print on a terminal. */
bool lks_label_valid(const char *s, size_t max);
int lks_ident_quote(const char *s, char quote, char *out, size_t outsz);

/* Schema checks: every column of want (name, type as r's column 1 spells
 * it) is in r (rows: name, type, ...), else LKS_EINVAL saying which. */
int lks_schema_columns(lks_conn *c, const char *what, const char *table, const lks_rows *r,
                       const char *const (*want)[2], size_t n);

/* PostgreSQL: rows name, type (format_type), deterministic collation (0/1) */
int lks_pg_columns(lks_conn *c, const char *t, lks_rows *out);

/* the backends' records SQL for processed once */
int lks_pg_once_install(lks_conn *c, const char *t);
int lks_pg_once_select(lks_conn *c, const char *t, const char *scope, const char *key,
                       lks_rows *out);
int lks_pg_once_insert(lks_conn *c, const char *t, const char *scope, const char *key,
                       const char *fp, int code, const char *result, int64_t fence, bool failed);
int lks_pg_once_purge(lks_conn *c, const char *t, int64_t older_than_us, int batch,
                      int64_t *deleted);
int lks_pg_once_list(lks_conn *c, const char *t, const char *scope, int limit, lks_rows *out);
int lks_pg_once_forget(lks_conn *c, const char *t, const char *scope, const char *key);
int lks_pg_once_steps_install(lks_conn *c, const char *s);
int lks_pg_once_step_put(lks_conn *c, const char *s, const char *scope, const char *key,
                         const char *step, const char *data, int64_t fence);
int lks_pg_once_step_get(lks_conn *c, const char *s, const char *scope, const char *key,
                         lks_rows *out);
int lks_pg_once_step_delete(lks_conn *c, const char *s, const char *scope, const char *key);
int lks_my_once_install(lks_conn *c, const char *t);
int lks_my_once_select(lks_conn *c, const char *t, const char *scope, const char *key,
                       lks_rows *out);
int lks_my_once_insert(lks_conn *c, const char *t, const char *scope, const char *key,
                       const char *fp, int code, const char *result, int64_t fence, bool failed);
int lks_my_once_purge(lks_conn *c, const char *t, int64_t older_than_us, int batch,
                      int64_t *deleted);
int lks_my_once_list(lks_conn *c, const char *t, const char *scope, int limit, lks_rows *out);
int lks_my_once_forget(lks_conn *c, const char *t, const char *scope, const char *key);
int lks_my_once_steps_install(lks_conn *c, const char *s);
int lks_my_once_step_put(lks_conn *c, const char *s, const char *scope, const char *key,
                         const char *step, const char *data, int64_t fence);
int lks_my_once_step_get(lks_conn *c, const char *s, const char *scope, const char *key,
                         lks_rows *out);
int lks_my_once_step_delete(lks_conn *c, const char *s, const char *scope, const char *key);

/* the backends' lease-table cleanup SQL */
int lks_pg_lease_floor_raise(lks_conn *c, const char *t, int64_t *bound);
int lks_pg_lease_has_base(lks_conn *c, const char *t, bool *has);
int lks_pg_lease_seal(lks_conn *c, const char *t);
int64_t lks_pg_session_id(lks_conn *c, char *server, size_t n);
int lks_pg_give_back_untold(lks_conn *c, const char *t, const char *name, bool prefix,
                            const char *holder, int64_t old_session);
int lks_pg_lease_purge_batch(lks_conn *c, const char *t, const char *after, int64_t older_than_us,
                             int64_t bound, int batch, int64_t *deleted, bool *more, char *next,
                             size_t nextsz);
int lks_my_lease_floor_raise(lks_conn *c, const char *t, int64_t *bound);
int lks_my_lease_has_base(lks_conn *c, const char *t, bool *has);
int lks_my_lease_seal(lks_conn *c, const char *t);
int64_t lks_my_session_id(lks_conn *c, char *server, size_t n);
int lks_my_give_back_untold(lks_conn *c, const char *t, const char *name, bool prefix,
                            const char *holder, int64_t old_session);
int lks_my_lease_purge_batch(lks_conn *c, const char *t, const char *after, int64_t older_than_us,
                             int64_t bound, int batch, int64_t *deleted, bool *more, char *next,
                             size_t nextsz);

/* time (monotonic) and randomness */
int64_t lks_now_us(void);
void lks_sleep_us(int64_t us);
/* now + us on CLOCK_MONOTONIC, for pthread_cond_timedwait */
struct timespec;
void lks_monotonic_deadline(int64_t us, struct timespec *ts);
int lks_random_bytes(void *buf, size_t n);
uint64_t lks_rng_next(uint64_t *state); /* xorshift64*, state != 0 */
void lks_holder_id(char out[LKS_HOLDER_LEN + 1]);
/* 64-bit FNV-1a of the quoted lease table and the name: the baton key */
uint64_t lks_baton_key(const char *table_q, const char *name);

/* the caller's acquire options of any known version, as the current one */
int lks_acquire_options_copy(lks_conn *c, const lks_lease_acquire_options *in,
                             lks_lease_acquire_options *out);

/* semaphores (semaphore.c): permit k of NAME is the lease row NAME␟k */
#define LKS_SLOT_SEPARATOR "\xe2\x90\x9f" /* U+241F, refused in lease names */
int lks_semaphore_check(lks_conn *c, const char *name, int permits);
void lks_semaphore_prefix(const char *name, char *out, size_t outsz);
/* k of a row named ...␟k (0 <= k < LKS_SEMAPHORE_PERMITS_MAX), else -1 */
int lks_slot_of(const char *row);
int lks_semaphore_choose(lks_conn *c, const char *t, const char *prefix, int permits, bool scan,
                         uint64_t *rng, int *slot, lks_grant *g);
/* full jitter: uniform in [0, min(cap, base * 2^attempt)] */
int64_t lks_backoff_us(int attempt, int64_t base_us, int64_t cap_us,
                       uint64_t *rng);

#define LKS_OP_TIMEOUT_DEFAULT_S 30

/* owner column: "<holder>:<label>" */
#define LKS_OWNER_TAG_MAX (LKS_HOLDER_LEN + 1 + LKS_LEASE_OWNER_MAX)

/* events: a no-op unless the handle has a hook */
void lks_emit(lks_conn *c, lks_event_kind kind, const char *name, int64_t fence,
              int64_t duration_us, int polls, int attempt, int status);
void lks_log(lks_conn *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* cancel tokens: a sleep that ends early when tripped (true then); enter /
 * leave bracket a blocking statement (enter: true when already tripped) */
bool lks_cancel_sleep(lks_cancel *t, int64_t us);
bool lks_cancel_enter(lks_cancel *t, lks_conn *c);
void lks_cancel_leave(lks_cancel *t, lks_conn *c);
/* readable once tripped (poll it beside a socket); -1 for NULL */
int lks_cancel_fd(const lks_cancel *t);

/* URL parsing (shared by tests) */
typedef enum lks_ssl_mode {
	LKS_SSL_UNSET = 0, /* the client library's default */
	LKS_SSL_DISABLED,
	LKS_SSL_PREFERRED,
	LKS_SSL_REQUIRED,
	LKS_SSL_VERIFY_CA,
	LKS_SSL_VERIFY_IDENTITY,
} lks_ssl_mode;
/* How a fenced write holds the lease row (fence-guard=; PostgreSQL knows
 * lock and write, auto being lock) */
typedef enum lks_fence_guard {
	LKS_GUARD_AUTO = 0, /* write on a Galera node, lock elsewhere */
	LKS_GUARD_LOCK,     /* share-mode lock */
	LKS_GUARD_WRITE,    /* writes = writes + 1: holds under certification */
} lks_fence_guard;
typedef struct lks_url {
	lks_backend backend;
	char *user, *password, *host, *socket, *database;
	unsigned int port;
	unsigned int connect_timeout, read_timeout, write_timeout; /* seconds, 0 = default */
	unsigned int op_timeout; /* seconds, 0 = none; valid when op_timeout_set */
	bool op_timeout_set;
	lks_ssl_mode ssl_mode;
	char *ssl_ca, *ssl_cert, *ssl_key; /* file paths */
	lks_fence_guard fence_guard;
	char *auth_plugins; /* mysql: auth-plugins=, the plugins allowed */
} lks_url;
const char *lks_ssl_mode_name(lks_ssl_mode m);
int lks_url_parse(const char *url, lks_url *out, char *err, size_t errsz);
void lks_url_free(lks_url *u);
int lks_url_take_param(const char *url, const char *key, char **rest, char **value);
/* Replace the URL's password (user:password@ or password=) wherever it
 * occurs in msg with "***" (msg shrinks in place). */
void lks_redact(char *msg, const char *url);
/* lease_acquire.c: a grant cut off by a lost connection, remembered and
 * given back at the next reset */
void lks_untold_note(lks_conn *c, const char *t, const char *name, bool prefix, const char *holder);
void lks_untold_give_back(lks_conn *c);
/* statement.c: sql with `?` placeholders numbered for PostgreSQL ($1..):
 * *out a new string (free it), or NULL when sql is fine as it is */
int lks_sql_portable(lks_backend backend, const char *sql, char **out);
/* util.c: rc, or for a table that does not exist LKS_EDB with the install
 * call that makes it */
int lks_missing_table(lks_conn *c, int rc, const char *what, const char *table,
                      const char *install);

/* The registry (backends.c): the scheme's backend (LKS_BACKEND_NONE:
 * none); a built-in backend's ops (NULL: not built); the ops for a URL, or
 * the handle's error (malformed URL, not built in); each library's init. */
lks_backend lks_url_backend(const char *url);
bool lks_backend_known(lks_backend id);
const lks_backend_ops *lks_backend_find(lks_backend id);
int lks_backend_for_url(lks_conn *c, const char *url, const lks_backend_ops **ops);
int lks_backends_init(void);

lks_conn *lks_conn_new(void);
/* entry check for public calls: non-NULL, connected; clears the error */
int lks_conn_check(lks_conn *c);

void lks_sql_add(lks_sql *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run q with its parameters, keep only the count of rows it changed
 * (affected may be NULL). */
int lks_exec_params(lks_conn *c, const lks_sql *q, const lks_value *p, size_t n, int64_t *affected);


/* Statement helpers shared by the backends (placeholder: "$1" or "?"). */
/* The i-th parameter's placeholder (from 1) in the handle's dialect, in buf. */
const char *lks_param(const lks_conn *c, size_t i, char buf[24]);
/* "col = <param i+1>, " for each column: a CAS's SET list */
void lks_sql_set_list(lks_sql *q, const lks_conn *c, const char *const *cols, size_t n);
/* SELECT version[, cols...] FROM table WHERE key = <placeholder> */
void lks_sql_select_by_key(lks_sql *q, const char *table, const char *key, const char *version,
                           const char *const *cols, size_t n, const char *placeholder);
/* After a CAS matched nothing: LKS_CONFLICT with the current version, or
 * LKS_NOT_FOUND. */
int lks_classify_miss(lks_conn *c, const char *table, const char *key, const char *version,
                      lks_value keyv, const char *placeholder, int64_t *current);
/* A lease statement that matches only the current grant: LKS_OK when one
 * row matched, LKS_LOST otherwise; *first gets a returned integer. */
int lks_query_grant(lks_conn *c, const lks_sql *q, const lks_value *p, size_t n, int64_t *first);

/* lks_conn_query_int without the entry check, for the backends: the
 * handle's error is theirs to keep or set */
int lks_query_int(lks_conn *c, const char *sql, const lks_value *params, size_t n, int64_t *out);

#endif
