/*
 * lockstock: optimistic (version-column CAS) and pessimistic (fenced lease)
 * concurrency control over PostgreSQL and MySQL/MariaDB.
 *
 * Threading: a lks_conn is used by one thread at a time (libpq and MySQL
 * rules). Different handles may be used from different threads at once.
 * Call lks_library_init() once before starting threads. A lks_lease with
 * auto-renew running may be read (lks_lease_is_lost, accessors) from any
 * thread; everything else follows the one-thread-per-handle rule.
 *
 * Errors: every fallible call returns 0 (LKS_OK) or a negative lks_status.
 * The expected outcomes (conflict, not found, busy, timeout, lost) have codes
 * of their own; for the others the details (backend, SQLSTATE or server errno,
 * message) are readable on the handle until the next call on it.
 *
 * Memory: strings returned by lks_conn_* accessors are owned by the handle and
 * valid until the next call on it. Objects returned through `**out`
 * parameters are owned by the caller and freed with their _free/_close call;
 * every _free/_close accepts NULL.
 *
 * Arguments: a call that makes an object returns it through its first
 * argument (lks_conn_open(&c, url), lks_lease_acquire(&lease, c, ...));
 * values a call reports come out through its last arguments (&deleted,
 * &info, stats in options).
 *
 * Versioned structs: options and lks_lease_info start with a version field.
 * Fill options with their _INIT macro or _options_init(opts, VERSION), so a
 * caller built against an older header keeps its older layout; fields are
 * only ever appended.
 */
#ifndef LOCKSTOCK_H
#define LOCKSTOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version: of these headers (macros) and of the library in use (calls). */
#define LKS_VERSION_MAJOR 0
#define LKS_VERSION_MINOR 2
#define LKS_VERSION_PATCH 0
#define LKS_VERSION_STRING "0.2.0"
#define LKS_VERSION_NUMBER (LKS_VERSION_MAJOR * 10000 + LKS_VERSION_MINOR * 100 + LKS_VERSION_PATCH)

/* Only what is marked LKS_API is exported from the shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define LKS_API __attribute__((visibility("default")))
#else
#define LKS_API
#endif

LKS_API const char *lks_version(void); /* "0.2.0" */
LKS_API int lks_version_number(void);  /* LKS_VERSION_NUMBER of the library */

typedef enum lks_status {
	LKS_OK = 0,
	LKS_CONFLICT = -1,   /* CAS: the row has another version */
	LKS_NOT_FOUND = -2,  /* CAS: no row with that key; force release: not held */
	LKS_BUSY = -3,       /* held by another holder, no wait asked (a lease, permits, a once key) */
	LKS_TIMEOUT = -4,    /* wait or retry deadline passed */
	LKS_LOST = -5,       /* lease is no longer held by this holder */
	LKS_MISMATCH = -6,   /* once: the key was recorded with another fingerprint */
	LKS_EINVAL = -10,    /* bad argument; nothing was sent or changed */
	LKS_ECONN = -11,     /* cannot connect, or the connection was lost */
	LKS_EDB = -12,       /* the server reported an error */
	LKS_ENOMEM = -13,    /* out of memory */
	LKS_EOVERFLOW = -14, /* version column would pass its maximum */
	LKS_EUNKNOWN = -15,  /* connection lost during COMMIT, or SQLSTATE 40003
	                        (statement completion unknown): outcome unknown */
	LKS_EUNSUPPORTED = -16, /* backend not built in, or feature missing */
	LKS_ETRANSIENT = -17, /* serialization failure / deadlock / lock wait
	                        timeout: retrying in a new transaction may work */
	LKS_CANCELED = -18   /* a cancel token was tripped (lks_cancel_trip) */
} lks_status;

/* Static English text for any status code (never NULL). */
LKS_API const char *lks_strerror(int code);

typedef enum lks_backend {
	LKS_BACKEND_NONE = 0,
	LKS_BACKEND_POSTGRESQL = 1,
	LKS_BACKEND_MYSQL = 2
} lks_backend;

/* Once per process, before threads start (mysql_library_init is not
 * thread-safe). Idempotent. Returns 0 or LKS_EDB. */
LKS_API int lks_library_init(void);

/* ---- cancellation ----------------------------------------------------- */

/*
 * A cancel token, given to lks_acquire (lks_lease_acquire_options.cancel) and
 * lks_retry (lks_retry_options.cancel). lks_cancel_trip, from any thread,
 * ends a waiting acquire or a retry loop within milliseconds with
 * LKS_CANCELED, holding nothing: a sleep between polls or attempts wakes at
 * once, and a statement blocked in the server is interrupted (PostgreSQL: a
 * cancel request, the handle stays usable; if the server has not ended the
 * statement 1 s later, it does not answer, and the connection is closed:
 * lks_conn_reset it. MariaDB: the connection is shut down; an acquire then
 * reconnects the handle (one opened from a URL), KILLs the old session and
 * frees any grant it completed meanwhile, so it holds nothing; after a
 * canceled retry, lks_conn_reset the handle). A retry attempt that is running finishes first. Tripping never
 * waits for the network, and every call waiting on the token ends, however
 * many share it. A token stays tripped until lks_cancel_reset; one token may
 * serve many calls and threads. lks_cancel_trip is not async-signal-safe
 * (it takes a lock): from a signal handler, write a byte to a pipe that a
 * thread of yours reads before it trips the token, or take the signal in a
 * thread with sigwait.
 */
typedef struct lks_cancel lks_cancel;
LKS_API int lks_cancel_new(lks_cancel **out);
LKS_API void lks_cancel_trip(lks_cancel *token);
LKS_API int lks_cancel_is_tripped(const lks_cancel *token);
LKS_API void lks_cancel_reset(lks_cancel *token);
/* Only when no call uses it any more. */
LKS_API void lks_cancel_free(lks_cancel *token);

typedef struct lks_conn lks_conn;

/* ---- events and logs --------------------------------------------------- */

/* What happened, for metrics and tracing (lks_conn_set_event_hook, and
 * lks_lease_autorenew_options.on_event for the renew thread). */
typedef enum lks_event_kind {
	LKS_EVENT_ACQUIRED = 1,  /* duration: wait; polls: grant statements */
	LKS_EVENT_BUSY,          /* acquire without wait found it held */
	LKS_EVENT_TIMED_OUT,     /* acquire's wait ran out */
	LKS_EVENT_CANCELED,      /* acquire or retry canceled by its token */
	LKS_EVENT_RENEWED,       /* duration: the statement */
	LKS_EVENT_RENEW_FAILED,  /* status: why (the renew thread retries) */
	LKS_EVENT_LOST,          /* renew or release found it gone; auto-renew gave up */
	LKS_EVENT_RELEASED,      /* duration: held since the grant */
	LKS_EVENT_CAS_APPLIED,   /* name: the table; duration: the statement */
	LKS_EVENT_CAS_CONFLICT,
	LKS_EVENT_CAS_NOT_FOUND,
	LKS_EVENT_RETRY,         /* attempt: the one that failed; duration: backoff */
	LKS_EVENT_TRANSIENT      /* a serialization failure or deadlock (retry) */
} lks_event_kind;
typedef struct lks_event {
	lks_event_kind kind;
	const char *name;     /* lease name or CAS table; valid during the call */
	int64_t fence;        /* lease events; 0 otherwise */
	int64_t duration_us;  /* see the kinds */
	int polls;            /* ACQUIRED, BUSY, TIMED_OUT: grant statements;
	                         a renewer's RENEWED, RENEW_FAILED: leases in
	                         that statement */
	int attempt;          /* RETRY, TRANSIENT */
	int status;           /* the outcome's lks_status */
} lks_event;
typedef void (*lks_event_fn)(const lks_event *event, void *arg);
/*
 * Called on the thread making the call; NULL removes it. No cost unset.
 *
 * What a hook may do (event and log hooks, and auto-renew's on_event,
 * on_log and on_lost): a hook runs in the middle of a lockstock call. It
 * may read the event, call lockstock on other handles and leases, and note
 * what to do once the call has returned (a flag, a queue, a pipe). It must
 * not close, reset or make calls on the handle that is calling it, and must
 * not free, release, renew or stop the auto-renew of the lease the event is
 * about: the call (or the renew thread) is still using them. lockstock emits
 * each event as the call's last use of the handle and lease, but the caller
 * still holds both when the call returns; free them there.
 */
LKS_API int lks_conn_set_event_hook(lks_conn *c, lks_event_fn fn, void *arg);
/* Diagnostics a caller would otherwise not see (level: 0 error, 1 warning,
 * 2 info); the auto-renew thread's have lks_lease_autorenew_options.on_log. */
typedef void (*lks_log_fn)(int level, const char *message, void *arg);
LKS_API int lks_conn_set_log_hook(lks_conn *c, lks_log_fn fn, void *arg);

/* ---- connections ---------------------------------------------------- */

/*
 * Open a connection from a URL:
 *   postgresql://user:pass@host:port/db?param=value   (libpq URI syntax,
 *                 plus prepare=on|off, see lks_conn_set_prepare, op-timeout,
 *                 and fence-guard=auto|lock|write: lock (FOR SHARE, the
 *                 default) or write (an UPDATE of the lease row, for
 *                 engines that ignore or weaken share locks))
 *   mysql://user:pass@host:port/db?param=value
 *   mariadb://...  (same as mysql://)
 * mysql:// parameters ('-' and '_' alike; anything else is LKS_EINVAL):
 *   socket (or unix-socket)=/path      a port in the URL means TCP instead
 *   connect-timeout, read-timeout, write-timeout=SECONDS (1..3600)
 *   ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY
 *   ssl-ca, ssl-cert, ssl-key=/path    (cert and key go together)
 *   fence-guard=auto|lock|write        how a fenced write holds the lease
 *                 row: lock (a share lock), write (writes = writes + 1,
 *                 which certification-based clusters need: Galera, Group
 *                 Replication multi-primary), auto (default: write on a
 *                 Galera node, lock elsewhere)
 * REQUIRED and the VERIFY modes never fall back to plaintext: a server
 * without TLS is LKS_ECONN. VERIFY_CA checks the chain against ssl-ca
 * (required), VERIFY_IDENTITY the host name too. Without ssl-mode, ssl-ca
 * implies VERIFY_CA, ssl-cert/ssl-key REQUIRED, and no ssl-* parameter means
 * PREFERRED: TLS whenever the server offers it (before 0.2.0: plaintext).
 *   auth-plugins=a,b                   the authentication plugins allowed.
 *                 Default over TCP: mysql_native_password, client_ed25519
 *                 and parsec, which never send the password itself, so a
 *                 server or impersonator that asks for mysql_clear_password,
 *                 dialog, sha256_password or caching_sha2_password's full
 *                 authentication gets an error, not the password (MySQL 8
 *                 users of caching_sha2_password: list it, with
 *                 ssl-mode=VERIFY_IDENTITY). Over a Unix socket: any.
 * postgresql:// URLs get libpq's defaults (sslmode=prefer): a peer that
 * refuses TLS and asks for a cleartext password gets it; libpq before 16
 * cannot refuse that, so use sslmode=verify-full for a server across a
 * network. Auto-renew connects with the same URL, so with the same
 * transport.
 * On failure *out is still set to a handle whose error can be read (or NULL
 * when out of memory); close it with lks_conn_close either way.
 */
LKS_API int lks_conn_open(lks_conn **out, const char *url);
/*
 * PostgreSQL statement mode. 1 (default): each statement is prepared once per
 * connection under a name unique to the handle. 0: unnamed statements only,
 * parsed with each call (PQexecParams), and no session locks (the waiting
 * room is off: waiters poll; wake_on_release falls back to polling): for
 * transaction poolers (PgBouncer pool_mode=transaction), where consecutive
 * transactions may run on different server connections. The URL parameter
 * prepare=off|on sets it for lks_conn_open (and auto-renew); this call sets
 * it on any handle, adopted ones too. LKS_EUNSUPPORTED on MySQL.
 */
LKS_API int lks_conn_set_prepare(lks_conn *c, int on);
/*
 * The longest lockstock waits for one answer from the server (default 30 s;
 * 0: no limit). A server that stops answering (SIGSTOP, a black-holed
 * network) then costs at most that: the call returns LKS_ECONN and the
 * connection is closed (lks_conn_reset or reopen it). The URL parameter
 * op-timeout=SECONDS sets it on both schemes (MySQL: as its read and write
 * timeouts, unless read-timeout / write-timeout are given; PostgreSQL: also
 * as connect_timeout unless the URL has one). This call sets it on a
 * PostgreSQL handle, adopted ones too; on MySQL it is LKS_EUNSUPPORTED (set
 * MYSQL_OPT_READ_TIMEOUT / MYSQL_OPT_WRITE_TIMEOUT before connecting).
 * Lease waits stay below it: a poll's row-lock wait is capped at half of it.
 */
LKS_API int lks_conn_set_op_timeout(lks_conn *c, int64_t ms);
/*
 * The largest difference between the clocks of the nodes that decide a
 * lease's expiry (default 0: one server, one clock). Engines whose nodes
 * each judge expiry by their own clock (CockroachDB allows 500 ms by
 * default) need it: a lease granted on this handle (0..60000 ms, fixed at
 * the grant) is relied on only until
 *   send time + TTL left per the server - margin - clock offset,
 * where the margin is TTL/10 unless the acquire options fix it, so a node
 * whose clock runs ahead by up to the offset has not yet seen it expire.
 * The TTL must exceed margin + offset (LKS_EINVAL otherwise).
 */
LKS_API int lks_conn_set_clock_offset(lks_conn *c, int64_t ms);
/* Copy url to out with its password (user:password@, or a password=
 * parameter) replaced by "***", for logs and messages; works on malformed
 * URLs too. LKS_EINVAL when an argument is NULL or out is too small.
 * lockstock's own error messages never contain the password; prefer
 * password-less URLs anyway (PGPASSWORD, ~/.pgpass, MYSQL_PWD) and pass URLs
 * through the environment rather than argv, where ps shows them. */
LKS_API int lks_url_redact(const char *url, char *out, size_t outsz);
/* Closes the handle (wiping its copy of the URL); a borrowed (adopted)
 * native connection stays open. */
LKS_API void lks_conn_close(lks_conn *c);
/*
 * Reconnect a handle opened from a URL after LKS_ECONN (server restarted,
 * failover, connection killed): closes the old session and connects again
 * with the same URL, so a multi-host PostgreSQL URL
 * (postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write) finds
 * the new primary. The lease table name stays; prepared statements and
 * waiting-room places of the old session are gone. Leases acquired on the
 * handle stay valid objects (their grants live in the lease table). An
 * acquire (lease, permit or set) whose grant statement the lost connection
 * cut off may have been granted on the server after all: the reset ends
 * the old session, waits until it is gone, and gives such a grant back
 * (its holder id was never handed out), so it does not stay held until
 * its TTL (behind a pooler with prepare=off the old session is not ended
 * first). On failure the handle stays closed (calls return LKS_ECONN) and
 * reset may be tried again. LKS_EINVAL for an adopted connection.
 */
LKS_API int lks_conn_reset(lks_conn *c);

LKS_API lks_backend lks_conn_backend(const lks_conn *c);
/* Last error of the handle: status, message, SQLSTATE ("" when none) and
 * server errno (0 when none). Valid until the next call on the handle. */
LKS_API int lks_conn_errcode(const lks_conn *c);
LKS_API const char *lks_conn_errmsg(const lks_conn *c);
LKS_API const char *lks_conn_sqlstate(const lks_conn *c);
LKS_API unsigned int lks_conn_errno(const lks_conn *c);

/* Run one SQL statement without parameters and without a result (BEGIN,
 * COMMIT, DDL...). */
LKS_API int lks_conn_exec(lks_conn *c, const char *sql);
/* Run a statement with parameters and read one integer: the first column of
 * the first row (LKS_NOT_FOUND when no row), or the affected-row count when
 * the statement returns no rows. Placeholders: `?` on both databases (on
 * PostgreSQL lockstock numbers them, outside quotes, comments and
 * $tag$ strings; a statement that uses $1.. itself is left alone, and one
 * with `?` placeholders spells jsonb's ? operator as jsonb_exists()). A
 * convenience for applications and tests: effects inside a fenced write or
 * a once callback are written once for both databases. */
typedef struct lks_value lks_value;
LKS_API int lks_conn_query_int(lks_conn *c, const char *sql, const lks_value *params,
                       size_t nparams, int64_t *out);
/*
 * Run one statement with `?` placeholders (as lks_conn_query_int) and keep
 * its rows as text: *out is a new result the caller frees with
 * lks_result_free, on any thread, independent of c. A statement without
 * rows (INSERT, UPDATE...) has 0 columns and its affected-row count.
 * Returns LKS_OK, LKS_EINVAL (NULL or empty arguments), LKS_ENOMEM, or the
 * server's error (LKS_EDB, LKS_ETRANSIENT, LKS_ECONN...; details on c).
 */
typedef struct lks_result lks_result;
LKS_API int lks_conn_query(lks_result **out, lks_conn *c, const char *sql,
                           const lks_value *params, size_t nparams);
LKS_API size_t lks_result_rows(const lks_result *r);
LKS_API size_t lks_result_columns(const lks_result *r);
/* The cell as text, owned by r (valid until lks_result_free); NULL for SQL
 * NULL and for a row or column out of range. Bytes columns are the
 * server's text form (PostgreSQL: \\x hex). */
LKS_API const char *lks_result_text(const lks_result *r, size_t row, size_t column);
/* Rows the statement changed (matched, on MySQL: CLIENT_FOUND_ROWS). */
LKS_API int64_t lks_result_affected(const lks_result *r);
LKS_API void lks_result_free(lks_result *r);

/* ---- values ---------------------------------------------------------- */

typedef enum lks_type { LKS_TYPE_NULL, LKS_TYPE_INT, LKS_TYPE_TEXT } lks_type;

/* A bound parameter value. Text is borrowed for the duration of the call. */
struct lks_value {
	lks_type type;
	int64_t i;
	const char *s;
};
#ifdef __cplusplus
/* C++ has no compound literals: the same values from inline functions */
static inline lks_value lks_value_make(lks_type t, int64_t i, const char *s)
{
	lks_value v = {t, i, s};
	return v;
}
#define LKS_NULLV lks_value_make(LKS_TYPE_NULL, 0, NULL)
#define LKS_INT(v) lks_value_make(LKS_TYPE_INT, (int64_t)(v), NULL)
#define LKS_TEXT(v) lks_value_make(LKS_TYPE_TEXT, 0, (v))
#else
#define LKS_NULLV ((lks_value){LKS_TYPE_NULL, 0, NULL})
#define LKS_INT(v) ((lks_value){LKS_TYPE_INT, (int64_t)(v), NULL})
#define LKS_TEXT(v) ((lks_value){LKS_TYPE_TEXT, 0, (v)})
#endif

/* ---- optimistic concurrency: version-column CAS ----------------------- */

/* Identifiers: [A-Za-z_][A-Za-z0-9_]* up to 63 bytes, optionally one
 * "schema." prefix. Anything else is rejected with LKS_EINVAL; accepted
 * names are still quoted with the backend's quoting. */
typedef struct lks_row_ref {
	const char *table;
	const char *key_column;
	const char *version_column; /* an integer column */
	lks_value key;
} lks_row_ref;

/*
 * UPDATE table SET columns[i] = values[i]..., version = version + 1
 *   WHERE key = key AND version = expected
 * One round trip when it applies. Returns:
 *   LKS_OK        applied; *version = expected + 1
 *   LKS_CONFLICT  the row exists with another version; *version = that one
 *   LKS_NOT_FOUND no row has that key
 *   LKS_EOVERFLOW expected + 1 would pass the column's maximum
 * Runs inside the caller's open transaction if there is one and never
 * commits it. version may be NULL.
 */
LKS_API int lks_cas_update(lks_conn *c, const lks_row_ref *row, int64_t expected,
                   const char *const *columns, const lks_value *values,
                   size_t ncolumns, int64_t *version);

/*
 * Read a row's version and, optionally, other columns as text.
 * *texts (when ncolumns > 0) points to ncolumns strings owned by the handle,
 * valid until the next call on it; SQL NULL is a NULL pointer.
 * Returns LKS_OK or LKS_NOT_FOUND.
 */
LKS_API int lks_cas_read(lks_conn *c, const lks_row_ref *row, const char *const *columns,
                 size_t ncolumns, int64_t *version, const char *const **texts);

/* ---- retry helper ------------------------------------------------------ */

/* One read-decide-write attempt. Return LKS_OK when applied, LKS_CONFLICT to
 * ask for a retry, LKS_NOT_FOUND (never retried), or any error. The callback
 * owns its transaction; if it returns with one still open after a transient
 * error, the helper rolls it back, because a retry needs a fresh snapshot. */
typedef int (*lks_attempt_fn)(lks_conn *c, int attempt, void *arg);

/*
 * Defaults that serve a service: retries are bounded by a deadline, not a
 * small attempt count (a default of 10 attempts gave up on 1-27 of 1,600
 * sales of one row under 8 threads). Under contention an attempt waits
 * out its backoff (full jitter, 1 ms doubling to at most 100 ms) and tries
 * again until it applies or 10 s have passed since the call (LKS_TIMEOUT):
 * the worst-case latency of a call with the defaults is 10 s plus one
 * attempt. Set max_attempts to bound attempts as well; at least one of
 * max_attempts and timeout_ms must bound the loop.
 */
#define LKS_RETRY_OPTIONS_VERSION 2 /* 1 is accepted */
typedef struct lks_retry_options {
	unsigned int version;
	int max_attempts;       /* 0 = no limit (default; the deadline bounds it) */
	int64_t timeout_ms;     /* deadline from the call; 0 = none; default 10000 */
	int64_t base_delay_us;  /* first backoff ceiling; default 1000 */
	int64_t max_delay_us;   /* backoff cap; default 100000 */
	uint64_t seed;          /* jitter seed; 0 = random */
	/* version 2 */
	lks_cancel *cancel;     /* tripped: LKS_CANCELED (NULL: none) */
} lks_retry_options;
#define LKS_RETRY_OPTIONS_INIT {LKS_RETRY_OPTIONS_VERSION, 0, 10000, 1000, 100000, 0, NULL}
/* The defaults of that version (pass LKS_RETRY_OPTIONS_VERSION), for callers
 * that cannot use the macro (other languages); LKS_EINVAL for NULL or a
 * version this library does not know. The other _options_init alike. */
LKS_API int lks_retry_options_init(lks_retry_options *opts, unsigned int version);

typedef struct lks_retry_stats {
	int attempts;        /* callback invocations */
	int conflicts;       /* attempts that returned LKS_CONFLICT */
	int transient;       /* attempts that failed with LKS_ETRANSIENT */
	int64_t slept_us;    /* total backoff */
	int gave_up;         /* 0 applied/final, else LKS_CONFLICT (attempts
	                        exhausted), LKS_TIMEOUT (deadline) or
	                        LKS_CANCELED (cancel token) */
} lks_retry_stats;

/* Returns LKS_OK, LKS_NOT_FOUND, LKS_CONFLICT (max_attempts exhausted),
 * LKS_TIMEOUT (deadline passed), LKS_CANCELED (opts->cancel tripped: before
 * the next attempt or during a backoff sleep) or the callback's
 * non-retryable error.
 * opts and stats may be NULL. */
LKS_API int lks_retry(lks_conn *c, const lks_retry_options *opts, lks_attempt_fn fn,
              void *arg, lks_retry_stats *stats);

/* ---- pessimistic leases ----------------------------------------------- */

/* A lease name is 1..LKS_LEASE_NAME_MAX bytes of well-formed UTF-8 (any
 * character but NUL; compared byte for byte): LKS_EINVAL otherwise, on both
 * databases. */
#define LKS_LEASE_NAME_MAX 255          /* bytes */
#define LKS_LEASE_TTL_MAX_MS (7LL * 24 * 3600 * 1000)
#define LKS_LEASE_TABLE_DEFAULT "lks_lease"
#define LKS_LEASE_OWNER_MAX 255               /* bytes of an owner label */
#define LKS_LEASE_PAYLOAD_MAX 65000           /* bytes of a lease's payload */

/* Create the lease table if missing (idempotent; sql/ holds the same DDL).
 * Uses the handle's lease table name. A table made by an older version gains
 * the nullable owner column (a catalog-only change: PostgreSQL ADD COLUMN,
 * MariaDB/MySQL ALGORITHM=INSTANT), waiting at most 5 s for the table lock
 * (LKS_ETRANSIENT after that: run it again); older versions keep working
 * on the migrated table, and the new one works on an unmigrated table
 * except for owner labels (acquire with an owner: LKS_EINVAL saying so). */
LKS_API int lks_lease_install(lks_conn *c);
/* Use another lease table name on this handle (an identifier, see above). */
LKS_API int lks_lease_set_table(lks_conn *c, const char *table);
/* The CREATE TABLE statement lks_lease_install runs for `table` (NULL: the
 * default name) on `backend`, without connecting. LKS_EINVAL for a bad
 * identifier or a buffer too small, LKS_EUNSUPPORTED for a backend not
 * built in. */
LKS_API int lks_lease_ddl(lks_backend backend, const char *table, char *out, size_t outsz);

typedef struct lks_lease lks_lease;

#define LKS_LEASE_ACQUIRE_OPTIONS_VERSION 5
typedef struct lks_lease_acquire_stats {
	int attempts;     /* grant statements sent */
	int64_t waited_us;/* time spent waiting for the lease */
	/* version 2 */
	int queued;       /* waits in the server-side waiting room */
} lks_lease_acquire_stats;
typedef struct lks_lease_acquire_options {
	unsigned int version;    /* LKS_LEASE_ACQUIRE_OPTIONS_VERSION; 1 to 4 are accepted */
	int64_t margin_ms;       /* local deadline safety margin; -1 = ttl/10 */
	int64_t base_delay_us;   /* poll interval of the head waiter, and first
	                            backoff without a waiting room; default 2000,
	                            0..60000000 */
	int64_t max_delay_us;    /* backoff cap without a waiting room; default
	                            200000, base_delay_us..60000000 */
	lks_lease_acquire_stats *stats;/* optional out: filled on every return (only
	                            the version 1 fields for version 1 options) */
	/* With the waiting room: 1 keeps the name's baton even when nobody was
	 * waiting at the grant, so waiters that come later are woken by the
	 * release (one more statement at release, pipelined on PostgreSQL)
	 * instead of the head polling. Default 0: only a holder that waited
	 * keeps it. No NOTIFY either way. */
	int wake_on_release;
	/* version 2. 1 (default): waiters line up in a server-side waiting room
	 * (a session lock per name: pg_advisory_lock / GET_LOCK) instead of
	 * polling; only the head of the line polls, and the holder's release
	 * hands the lease on at once. 0: every waiter polls with backoff (for
	 * transaction poolers, where session locks do not work). The waiting
	 * room needs PostgreSQL or MariaDB >= 10.5; elsewhere waiters poll. */
	int waiting_room;
	/* version 3. A label for the grant (who holds it: "host:pid", a job
	 * name), 1..LKS_LEASE_OWNER_MAX bytes of UTF-8 without control characters,
	 * stored with the grant and shown by inspect and list; NULL: none. */
	const char *owner;
	/* version 4. Tripped: the wait ends with LKS_CANCELED (NULL: none). */
	lks_cancel *cancel;
	/* version 5. Data stored with the grant (lks_lease_set_payload), 0..
	 * LKS_LEASE_PAYLOAD_MAX bytes; NULL: none. Written right after the
	 * grant, by one more statement of the same call (an inspect in between
	 * sees the grant without it); if that fails the grant is released and
	 * its error returned. */
	const void *payload;
	size_t payload_len;
} lks_lease_acquire_options;
#define LKS_LEASE_ACQUIRE_OPTIONS_INIT {LKS_LEASE_ACQUIRE_OPTIONS_VERSION, -1, 2000, 200000, NULL, 0, 1, NULL, NULL, NULL, 0}
LKS_API int lks_lease_acquire_options_init(lks_lease_acquire_options *opts,
                                           unsigned int version);

/*
 * Acquire lease `name` for ttl_ms (1..LKS_LEASE_TTL_MAX_MS). wait_ms = 0
 * tries once (LKS_BUSY when held); wait_ms > 0 waits until the deadline and
 * returns LKS_TIMEOUT when it passes. No statement blocks past the deadline:
 * row-lock waits are bounded by the time left, and a locked row, a
 * serialization failure or a deadlock during a poll means "busy".
 * An expired lease is taken over. On LKS_OK *out is a new lease owned by the
 * caller (lks_lease_free).
 *
 * Waiting: see lks_lease_acquire_options.waiting_room. Waiters are served roughly
 * in arrival order; a newcomer does not overtake a line. A holder that waited
 * (or asked for wake_on_release) keeps the name's baton (a session lock) on
 * `c` until lks_lease_release on `c`, or lks_lease_free, gives it back;
 * release on another handle still frees the lease, but the line moves on
 * only at lks_lease_free, when `c` closes, or 50 ms after the lease is
 * free (a baton kept that long counts as left behind).
 * The waiting room never decides a grant: a lost baton (connection gone,
 * server restart) costs at most a poll interval or the holder's TTL.
 *
 * Expiry is decided by the server's clock; the lease's local deadline is
 * (send time + remaining TTL reported by the server - margin) on the
 * monotonic clock, so it is never later than the server's.
 *
 * Needs a handle without an open transaction (LKS_EINVAL otherwise): a
 * grant the caller could roll back would hand the same fence out twice.
 */
LKS_API int lks_lease_acquire(lks_lease **out, lks_conn *c, const char *name,
                      int64_t ttl_ms, int64_t wait_ms,
                      const lks_lease_acquire_options *opts);

/* Extend to ttl_ms from now (server clock) if still held by this holder and
 * fencing token. LKS_LOST when it expired or was taken over. */
LKS_API int lks_lease_renew(lks_conn *c, lks_lease *lease, int64_t ttl_ms);
/* Free the lease for others. LKS_LOST when it was no longer held (it had
 * expired or was taken over): never a silent success. Stops auto-renew. */
LKS_API int lks_lease_release(lks_conn *c, lks_lease *lease);
/*
 * A lease object for a grant made elsewhere: another process, such as
 * `lockstock run`, that passed on the lease's name, holder id and fence
 * (LOCKSTOCK_LEASE, LOCKSTOCK_HOLDER, LOCKSTOCK_FENCE). One statement checks
 * that this grant still holds the lease (LKS_LOST otherwise) and sets the
 * local deadline from the time it has left. Meant for fenced writes on the
 * grant; renew and release work too but compete with the process that holds
 * it (a release here makes its renewals report the lease lost).
 */
LKS_API int lks_lease_adopt(lks_lease **out, lks_conn *c, const char *name,
                    const char *holder, int64_t fence);
/* Stops auto-renew (if running) and frees memory; does not release. If the
 * acquiring handle still holds the lease's waiting-room baton, one statement
 * on that handle gives it back, so call it on the thread that uses that
 * handle (or after closing the handle, which drops the baton with it). */
LKS_API void lks_lease_free(lks_lease *lease);

LKS_API const char *lks_lease_name(const lks_lease *lease);
LKS_API const char *lks_lease_holder(const lks_lease *lease); /* 32 hex chars */
LKS_API const char *lks_lease_owner(const lks_lease *lease);  /* "" when none */
LKS_API int64_t lks_lease_fence(const lks_lease *lease);      /* fencing token */
/* The TTL the server reported left at the last grant or renewal, computed
 * on its own clock (ms). */
LKS_API int64_t lks_lease_granted_ms(const lks_lease *lease);
/* Milliseconds left before the local deadline (<= 0 once passed). */
LKS_API int64_t lks_lease_remaining_ms(const lks_lease *lease);
/* 1 when the local deadline passed, a renewal found it lost, or auto-renew
 * failed; safe from any thread. */
LKS_API int lks_lease_is_lost(const lks_lease *lease);

/*
 * Fenced write: in one transaction, hold the lease row where (name, holder,
 * fence) still is the current unexpired grant (a share lock; on a Galera
 * node a write to it, see fence-guard), run fn, commit. A takeover waits
 * for this commit, so a holder paused past its TTL writes nothing:
 * LKS_LOST. fn receives the fencing token (for outside resources) and
 * returns LKS_OK to commit or anything else to roll back (returned). A
 * transient failure (deadlock, serialization or certification failure)
 * wrote nothing: LKS_LOST when the lease was taken over meanwhile, else
 * LKS_ETRANSIENT. Needs a handle with no open transaction. LKS_EUNKNOWN
 * when the connection died during COMMIT.
 */
typedef int (*lks_fenced_fn)(lks_conn *c, int64_t fence, void *arg);
LKS_API int lks_lease_fenced_write(lks_conn *c, const lks_lease *lease,
                           lks_fenced_fn fn, void *arg);

/*
 * Fenced write over several leases (lks_lease_acquire_all): one
 * transaction holds every lease row, in name order, as lks_lease_fenced_write
 * holds one, then runs fn with the leases as given, then commits. LKS_LOST
 * when any of them is no longer the current grant (nothing written); the
 * other outcomes as lks_lease_fenced_write's.
 */
typedef int (*lks_fenced_all_fn)(lks_conn *c, lks_lease *const *leases, size_t n, void *arg);
LKS_API int lks_lease_fenced_write_all(lks_conn *c, lks_lease *const *leases, size_t n,
                                       lks_fenced_all_fn fn, void *arg);

/* Current state of a name. held = 0 when free (never granted, released or
 * expired); fence is the last token granted (0 when never granted). owner is
 * the current grant's label ("" when free, none given, or granted by a
 * version without owners). Set version before passing one in (the INIT
 * macro): the library fills the fields that version has, and refuses
 * (LKS_EINVAL) a version it does not know; lks_lease_list's callback gets
 * the library's own version. */
#define LKS_LEASE_INFO_VERSION 1
typedef struct lks_lease_info {
	unsigned int version;
	char name[LKS_LEASE_NAME_MAX + 1];
	char holder[33];
	int64_t fence;
	int64_t remaining_ms;
	int held;
	char owner[LKS_LEASE_OWNER_MAX + 1];
} lks_lease_info;
#define LKS_LEASE_INFO_INIT {LKS_LEASE_INFO_VERSION, "", "", 0, 0, 0, ""}
LKS_API int lks_lease_inspect(lks_conn *c, const char *name, lks_lease_info *info);
/* Calls fn for each currently held lease in name order; a non-zero return
 * from fn stops the walk and is returned. */
LKS_API int lks_lease_list(lks_conn *c, int (*fn)(const lks_lease_info *, void *),
                   void *arg);

/*
 * Administration: free `name` whoever holds it (a dead or stuck process) and
 * advance its fence, so the previous holder's renew, release and fenced
 * writes return LKS_LOST from now on (a fenced write in flight finishes
 * first: this waits for its row lock). On LKS_OK *released (may be NULL)
 * describes the grant that was freed, with the fence it had; LKS_NOT_FOUND
 * when the lease was not held (nothing changed; *released shows its state).
 * Needs a handle without an open transaction.
 */
LKS_API int lks_lease_force_release(lks_conn *c, const char *name, lks_lease_info *released);

/*
 * Administration: delete the rows of leases nobody holds that have been
 * free (released or expired) for more than older_than_ms (server clock),
 * in statements of at most batch rows (1..10000), each its own short
 * transaction that skips or briefly waits for a row a grant has locked;
 * *deleted (may be NULL) counts them. Per-request names (once keys, job
 * ids) otherwise grow the table without bound.
 * Fences stay strictly increasing per name across deletion: the table
 * keeps a fence floor (a row no name can have: '' on PostgreSQL, X'FF' on
 * MySQL; never listed), raised to the table's largest fence before any row
 * goes, and a name seen for the first time is granted floor + 1. Rows a
 * concurrent grant re-used are kept; rows granted after the floor rose wait
 * for the next purge. Needs a handle without an open transaction. Refused
 * (LKS_EINVAL) on a Galera node for now.
 */
LKS_API int lks_lease_purge(lks_conn *c, int64_t older_than_ms, int batch, int64_t *deleted);

/* Auto-renew in a background thread on its own connection. */
typedef void (*lks_lost_fn)(const lks_lease *lease, int status, void *arg);
#define LKS_LEASE_AUTORENEW_OPTIONS_VERSION 2 /* 1 is accepted */
typedef struct lks_lease_autorenew_options {
	unsigned int version;
	int64_t interval_ms;  /* default ttl/3 */
	lks_lost_fn on_lost;  /* called once per lost lease, from the renew
	                         thread; or, when the lease ran out by its
	                         local deadline before that thread noticed,
	                         from lks_lease_autorenew_stop (free, release)
	                         on the caller's thread. It must not free or
	                         release the lease itself (the hook rules at
	                         lks_conn_set_event_hook) */
	void *arg;
	/* version 2: the renew thread's events (RENEWED, RENEW_FAILED, LOST)
	 * and its errors as log lines (which it otherwise keeps to itself);
	 * both get arg */
	lks_event_fn on_event;
	lks_log_fn on_log;
} lks_lease_autorenew_options;
#define LKS_LEASE_AUTORENEW_OPTIONS_INIT {LKS_LEASE_AUTORENEW_OPTIONS_VERSION, 0, NULL, NULL, NULL, NULL}
LKS_API int lks_lease_autorenew_options_init(lks_lease_autorenew_options *opts,
                                             unsigned int version);
/*
 * Start renewing `lease` (TTL as acquired) every interval. The thread opens
 * its own connection from url (NULL: the URL `c` was opened with; a handle
 * made by adopting a native connection has none, so pass one). When a renewal
 * reports the lease lost, or renewals fail until the local deadline passes,
 * the lease is marked lost (lks_lease_is_lost) and on_lost is called.
 */
LKS_API int lks_lease_autorenew_start(lks_lease *lease, lks_conn *c, const char *url,
                              const lks_lease_autorenew_options *opts);
LKS_API void lks_lease_autorenew_stop(lks_lease *lease);

/*
 * Run fn under lease `name`, as ShedLock's LockingTaskExecutor or .NET
 * DistributedLock's `using`: acquire (ttl_ms, wait_ms, opts as
 * lks_lease_acquire), renew it in the background while fn runs (auto-renew
 * on a connection of its own; a handle adopted from a native connection
 * has no URL, and fn must then end within the TTL), then release it; or,
 * when at_least_ms > 0 and less than that has passed since the call, keep
 * it until then on the server's clock (a replica whose schedule runs a
 * little late does not run the job again), and let it run out. fn gets c
 * and the lease (its fence, lks_lease_fenced_write); it must not release
 * or free the lease. Returns:
 *   fn's return value   the lease was held throughout (LKS_OK when fn's is)
 *   LKS_LOST            the lease was lost while fn ran (fn returned
 *                       LKS_OK): fn's effects outside fenced writes were
 *                       not guarded past the loss
 *   LKS_BUSY, LKS_TIMEOUT, LKS_CANCELED  not acquired; fn did not run
 *   LKS_EINVAL          bad arguments (fn NULL, at_least_ms < 0, and
 *                       lks_lease_acquire's); fn did not run
 *   LKS_ECONN, LKS_EDB  the server (details on c)
 */
typedef int (*lks_lease_fn)(lks_conn *c, lks_lease *lease, void *arg);
LKS_API int lks_lease_run(lks_conn *c, const char *name, int64_t ttl_ms, int64_t wait_ms,
                          int64_t at_least_ms, const lks_lease_acquire_options *opts,
                          lks_lease_fn fn, void *arg);

/* ---- several names at once -------------------------------------------- */

#define LKS_LEASE_SET_MAX 64 /* names per lks_lease_acquire_all */
/*
 * Acquire every name of names[0..n-1] (distinct, as lks_lease_acquire
 * takes them), all or nothing, within one wait of wait_ms for the whole
 * set. On LKS_OK out[i] is the lease of names[i] (each freed with
 * lks_lease_free, or all with lks_lease_release_all); on any other return
 * nothing is held and every out[i] is NULL.
 * Names are taken in byte order of their names, whatever the order given,
 * so callers with overlapping sets never deadlock; only the name being
 * waited for blocks, and leases already taken are renewed while it waits,
 * so none expires before the set is complete. The whole set is checked
 * before it is returned: a member that ran out meanwhile (the process
 * paused between members) is renewed, or, if it was lost, everything is
 * given back and the set is taken again while the wait lasts. A wait that
 * ends without the whole set releases what it took. opts as
 * lks_lease_acquire's; its stats add up the set's statements and waits.
 * Each name's fence is its lease's (lks_lease_fence).
 * Returns:
 *   LKS_OK        every member held, each with its whole TTL or more than
 *                 two thirds of it left
 *   LKS_BUSY      wait_ms = 0 and a member is held by another holder
 *   LKS_TIMEOUT   the wait ran out before the whole set was held
 *   LKS_CANCELED  opts->cancel was tripped
 *   LKS_EINVAL    bad arguments (NULL, 0 or more than LKS_LEASE_SET_MAX
 *                 names, a name twice or invalid, a bad TTL or wait, an
 *                 open transaction on c)
 *   LKS_ECONN, LKS_EUNKNOWN, LKS_EDB  the server (details on c)
 * Never LKS_LOST: a member lost before the set was whole is taken again.
 */
LKS_API int lks_lease_acquire_all(lks_lease **out, lks_conn *c, const char *const *names,
                                  size_t n, int64_t ttl_ms, int64_t wait_ms,
                                  const lks_lease_acquire_options *opts);
/* Release each of leases[0..n-1] (NULL entries skipped); the first error
 * other than LKS_OK is returned, after every lease was tried. Does not free. */
LKS_API int lks_lease_release_all(lks_conn *c, lks_lease *const *leases, size_t n);

/* ---- counting semaphores ----------------------------------------------- */

#define LKS_SEMAPHORE_PERMITS_MAX 1000
#define LKS_SEMAPHORE_NAME_MAX 248 /* bytes: the slot's row name must fit */
/*
 * Acquire one of `permits` (1..LKS_SEMAPHORE_PERMITS_MAX) permits of
 * semaphore `name`. Permit k is the lease row "name␟k" (U+241F; lease
 * grants refuse names with it), so the lease returned is an ordinary one:
 * renew, release, auto-renew, fenced writes, once records, inspect,
 * force release work on it, and its fence only grows for that permit.
 * lks_lease_slot says which permit. A crashed holder's permit comes back at
 * its TTL. Waiters line up in the semaphore's waiting room (one line for all
 * permits: the head polls, the others wait on its baton), or poll with
 * backoff without one; wait_ms and opts as lks_lease_acquire's. LKS_BUSY /
 * LKS_TIMEOUT: all permits held.
 * The limit is the caller's: callers passing the same permits never hold
 * more than that many at once. Changing it: a caller with a smaller limit
 * only takes permits below it, so holders of higher permits keep them (never
 * evicted) until they release or expire, and the total drains to the new
 * limit; a larger limit takes effect at once. Mixed limits hold at most as
 * many as the largest in use.
 */
LKS_API int lks_semaphore_acquire(lks_lease **out, lks_conn *c, const char *name, int permits,
                                  int64_t ttl_ms, int64_t wait_ms,
                                  const lks_lease_acquire_options *opts);
/* Give the permit back (the next in line gets it). The same as
 * lks_lease_release, under the semaphore's name: LKS_LOST when the permit
 * had run out or was taken over; never a silent success. */
LKS_API int lks_semaphore_release(lks_conn *c, lks_lease *permit);
/* The permit a semaphore lease holds (0..permits-1), -1 for a plain lease. */
LKS_API int lks_lease_slot(const lks_lease *lease);
/* Calls fn for each held permit of name among the first `permits`, in
 * permit order (info.name is the permit's row); fn's non-zero return stops
 * the walk and is returned. */
LKS_API int lks_semaphore_list(lks_conn *c, const char *name, int permits,
                               int (*fn)(const lks_lease_info *, void *), void *arg);

/* ---- payloads and leader election -------------------------------------- */

/*
 * A payload: 0..LKS_LEASE_PAYLOAD_MAX bytes stored with the current grant
 * (needs the payload column: lks_lease_install adds it in place, as it
 * added owner). Set at the grant (lks_lease_acquire_options.payload) or
 * later by the holder: one conditional UPDATE of the current grant,
 * LKS_LOST (nothing changed) when the lease is no longer it; inside a
 * fenced write's callback it is part of that transaction. A new grant
 * starts without one: a payload never outlives its grant.
 */
LKS_API int lks_lease_set_payload(lks_conn *c, const lks_lease *lease, const void *data,
                                  size_t len);
/* The state of name (as lks_lease_inspect) and, while held, its payload in
 * one read: *len bytes copied to buf (0 when none or not held). A buffer
 * smaller than the payload: LKS_EINVAL, *len = the payload's size (buf NULL
 * with bufsz 0 asks only for it). */
LKS_API int lks_lease_payload(lks_conn *c, const char *name, lks_lease_info *info, void *buf,
                              size_t bufsz, size_t *len);

/*
 * Leader election: an election is a lease whose payload is the leader's
 * value, and its term is the fence: it only grows, and the leader fences
 * its writes with it (lks_lease_fenced_write on the campaign's lease).
 * campaign waits in the name's line (as lks_lease_acquire, wait_ms up to
 * LKS_LEASE_TTL_MAX_MS) and takes office with value; keep it with
 * auto-renew or a renewer, which report a lost term. leader reads who leads
 * now (held = 0: nobody), the term and the value in one statement. observe
 * blocks until the leader differs from *seen (another term, or held
 * changed; seen NULL: at once), or LKS_TIMEOUT after wait_ms. Between
 * reads it waits in the name's waiting room, where the leader keeps the
 * name's baton for its term: a resign (or the leader's session ending)
 * wakes it within a round trip; otherwise it reads every 50 ms and at the
 * leader's expiry (always so where the waiting room is off: poolers,
 * grant=single). No NOTIFY: it works through transaction poolers. Changes
 * come in term order; terms that began and ended between two reads are not
 * seen (a term above the last seen + 1 says so). proclaim changes the value
 * (fenced: LKS_LOST when the term is over), resign releases.
 */
LKS_API int lks_election_campaign(lks_lease **out, lks_conn *c, const char *name,
                                  const void *value, size_t len, int64_t ttl_ms,
                                  int64_t wait_ms, const lks_lease_acquire_options *opts);
LKS_API int lks_election_leader(lks_conn *c, const char *name, lks_lease_info *leader,
                                void *value, size_t valuesz, size_t *value_len);
LKS_API int lks_election_observe(lks_conn *c, const char *name, const lks_lease_info *seen,
                                 int64_t wait_ms, lks_lease_info *leader, void *value,
                                 size_t valuesz, size_t *value_len);
LKS_API int lks_election_proclaim(lks_conn *c, const lks_lease *lease, const void *value,
                                  size_t len);
LKS_API int lks_election_resign(lks_conn *c, lks_lease *lease);

/* ---- one renewer for many leases ---------------------------------------- */

/*
 * A renewer renews any number of leases on one thread and one connection,
 * in batched statements (one statement per table for the leases that fall
 * due together), each lease every third of its TTL. It keeps auto-renew's
 * promises per lease: a lease a renewal finds gone (expired, taken over,
 * force released) is marked lost and reported at once; while the server
 * cannot be reached it retries (reconnecting) until each lease's local
 * deadline, where that lease is marked lost and reported.
 * Its connection is opened from url (NULL: the URL c was opened with) with
 * a connect timeout of 2 s and, where calls have no op timeout, a read
 * timeout of 4 s, unless the URL sets them.
 */
typedef struct lks_renewer lks_renewer;
#define LKS_RENEWER_OPTIONS_VERSION 1
typedef struct lks_renewer_options {
	unsigned int version;
	lks_lost_fn on_lost;   /* once per lost lease, from the renewer's thread;
	                          the hook rules of auto-renew's on_lost hold */
	void *arg;             /* for the three hooks */
	lks_event_fn on_event; /* RENEWED, RENEW_FAILED, LOST per lease */
	lks_log_fn on_log;
} lks_renewer_options;
#define LKS_RENEWER_OPTIONS_INIT {LKS_RENEWER_OPTIONS_VERSION, NULL, NULL, NULL, NULL}
LKS_API int lks_renewer_options_init(lks_renewer_options *opts, unsigned int version);
/* Start a renewer (errors on c). Stop it with lks_renewer_stop. */
LKS_API int lks_renewer_start(lks_renewer **out, lks_conn *c, const char *url,
                              const lks_renewer_options *opts);
/* Renew lease from now on, until it is released, freed, removed or lost.
 * LKS_EINVAL: NULL, lost already, auto-renewed or in a renewer already;
 * LKS_ENOMEM. Safe from any thread. */
LKS_API int lks_renewer_add(lks_renewer *r, lks_lease *lease);
/* Stop renewing it (release and free do this themselves). LKS_NOT_FOUND
 * when it was not in r (or was lost). Waits for its on_lost if running. */
LKS_API int lks_renewer_remove(lks_renewer *r, lks_lease *lease);
/* How many leases r renews now. */
LKS_API size_t lks_renewer_count(lks_renewer *r);
/* Stop the thread, close its connection, free r. Leases stay held (not
 * released) and are no longer renewed. Not concurrently with release or
 * free of its leases on other threads. */
LKS_API void lks_renewer_stop(lks_renewer *r);

/* ---- processed once: completion records -------------------------------- */

/* Processed once (lks_once_run below): the limits of scopes, keys,
 * fingerprints and results. */
#define LKS_ONCE_KEY_MAX 255
#define LKS_ONCE_FINGERPRINT_MAX 1024
#define LKS_ONCE_RESULT_DEFAULT (64 * 1024)
#define LKS_ONCE_RESULT_LIMIT (1024 * 1024) /* the largest max_result_bytes */

/* The callback's view of the run: its fence and where its result goes. */
typedef struct lks_once_ctx lks_once_ctx;
/* The claim's fencing token: grows with every claim of any key. Pass it (or
 * lks_once_attempt_id) downstream as the other service's idempotency key. */
LKS_API int64_t lks_once_fence(const lks_once_ctx *ctx);
/* "<scope hash>-<fence>": unique to this run, printable, for idempotency
 * keys of services the callback calls. Valid during the callback. */
LKS_API const char *lks_once_attempt_id(const lks_once_ctx *ctx);
/* The result to record (copied; replaces an earlier one). LKS_EINVAL when
 * len > max_result_bytes: the run then fails with LKS_EINVAL, nothing
 * committed, even if the callback sets a smaller result afterwards. A
 * callback that sets none records code 0 and no bytes. */
LKS_API int lks_once_set_result(lks_once_ctx *ctx, int code, const void *data, size_t len);

/* Runs inside the fenced transaction on c: write the effect with c. Return
 * LKS_OK to commit effect and record, anything else to roll both back (that
 * value is returned). It must not commit, roll back or end the transaction. */
typedef int (*lks_once_fn)(lks_conn *c, lks_once_ctx *ctx, void *arg);

#define LKS_ONCE_OPTIONS_VERSION 1
typedef struct lks_once_options {
	unsigned int version;
	const char *table;          /* records; NULL: "lks_once" */
	const void *fingerprint;    /* NULL: none (never compared) */
	size_t fingerprint_len;
	int64_t claim_ttl_ms;       /* the claim lease's TTL; default 30000 */
	int64_t wait_ms;            /* how long a duplicate waits for a concurrent
	                               run of its key, then replays its result
	                               (or runs, if that run failed); default
	                               30000, as the claim's TTL. 0: LKS_BUSY at
	                               once (an API that answers 409 itself) */
	int record_failures;        /* 1: a failing callback's code and result
	                               are recorded and replayed (its effect is
	                               still rolled back) */
	size_t max_result_bytes;    /* default LKS_ONCE_RESULT_DEFAULT, at most
	                               LKS_ONCE_RESULT_LIMIT */
	lks_cancel *cancel;         /* ends a wait: LKS_CANCELED */
} lks_once_options;
#define LKS_ONCE_OPTIONS_INIT {LKS_ONCE_OPTIONS_VERSION, NULL, NULL, 0, 30000, 30000, 0, \
                               LKS_ONCE_RESULT_DEFAULT, NULL}
LKS_API int lks_once_options_init(lks_once_options *opts, unsigned int version);

typedef struct lks_once_result {
	int replayed;            /* 1: stored before; the callback did not run */
	int failed;              /* 1: a recorded failure (record_failures) */
	int code;                /* as set by lks_once_set_result */
	int64_t fence;           /* the fence of the run that recorded it */
	int64_t completed_at_us; /* server clock, microseconds since 1970, of a
	                            replayed record (0 when it ran now) */
	void *data;              /* owned by the caller: lks_once_result_clear */
	size_t len;
} lks_once_result;
LKS_API void lks_once_result_clear(lks_once_result *result);

/* Create the records table (NULL: "lks_once") if missing, and check an
 * existing one's shape (primary key exactly (scope, key)). */
LKS_API int lks_once_install(lks_conn *c, const char *table);
/*
 * A lease says "not at the same time", never "not twice". lks_once_run runs
 * a callback for (scope, key) at most once successfully: the callback runs
 * inside a fenced transaction on a claim (a lease named after the key), and
 * its result is recorded in that same transaction, so the effect and the
 * record commit together or not at all. A later call with the key gets the
 * stored result in one round trip, without running the callback or taking
 * any lock.
 *
 * What a call returns:
 *   LKS_OK, replayed = 0     the callback ran now; its result was recorded
 *   LKS_OK, replayed = 1     completed before: the stored result, fence and
 *                            completion time (server clock); nothing ran
 *   LKS_OK, failed = 1       a failure recorded with record_failures (now or
 *                            before): the callback's code and result
 *   LKS_BUSY                 another call is running it and wait_ms = 0
 *                            (HTTP APIs answer 409); LKS_TIMEOUT: the wait
 *                            ran out. A wait that ends with the other call's
 *                            completion replays it (LKS_OK, replayed = 1).
 *   LKS_MISMATCH             the key was recorded with another fingerprint
 *                            (HTTP 422); nothing ran or changed
 *   the callback's error     it failed: rolled back, nothing recorded, so a
 *                            retry runs it again (unless record_failures)
 *   LKS_LOST                 the claim was lost before the transaction
 *                            (a stall past its TTL): nothing committed;
 *                            whoever took over runs it once
 *   LKS_EUNKNOWN             the connection died during COMMIT: call again
 *                            with the key; it replays if the COMMIT landed
 *                            and runs if it did not
 *   LKS_EINVAL               bad arguments, a result over max_result_bytes
 *                            (refused before COMMIT: nothing committed)
 *
 * Scopes and keys are 1..LKS_ONCE_KEY_MAX bytes of UTF-8 (as lease names);
 * the fingerprint (an optional hash of the request) is 0..
 * LKS_ONCE_FINGERPRINT_MAX bytes, compared exactly. Records live in their
 * own table (lks_once_install); the claim is a lease in the handle's lease
 * table. A record is kept until lks_once_purge removes it; a key used again
 * after its record was purged is a new request (as with Stripe's keys).
 * Needs a handle without an open transaction.
 *
 * opts may be NULL (the defaults); result may be NULL.
 */
LKS_API int lks_once_run(lks_conn *c, const char *scope, const char *key,
                         const lks_once_options *opts, lks_once_fn fn, void *arg,
                         lks_once_result *result);
/* The building blocks, for work that cannot run inside one transaction (a
 * command, a call to another service): look the record up (LKS_OK with
 * result->replayed = 1, LKS_NOT_FOUND, or LKS_MISMATCH), do the work while
 * holding a lease of your own, and record it with lks_once_complete, which
 * writes the record in a fenced transaction on that lease: LKS_LOST when
 * the lease is no longer the current grant (nothing written), LKS_CONFLICT
 * when the key is recorded already. Check again after the lease is granted:
 * a previous holder may have completed it. */
LKS_API int lks_once_lookup(lks_conn *c, const char *scope, const char *key,
                            const lks_once_options *opts, lks_once_result *result);
LKS_API int lks_once_complete(lks_conn *c, const lks_lease *lease, const char *scope,
                              const char *key, const lks_once_options *opts, int code,
                              const void *data, size_t len);
/*
 * Steps, for a callback that calls another service (it cannot roll that
 * back): record progress in a fenced transaction of its own on your lease,
 * before and after the external call, so a retry after a crash sees the last
 * step and resumes instead of calling again. Pass lks_once_attempt_id, or
 * "<scope>:<key>", to the other service as its idempotency key. A key has
 * one current step (the last saved); lks_once_complete deletes it in the
 * record's own transaction. lks_once_step_save: LKS_LOST when the lease is
 * no longer the current grant (nothing written). lks_once_step_load: the
 * step's name into step, its data, fence and time (completed_at_us: when
 * it was saved) into *data; LKS_NOT_FOUND when none. Step names are
 * 1..LKS_ONCE_STEP_MAX bytes of UTF-8; data at most max_result_bytes.
 * Steps live in the table "<table>_steps" (lks_once_install makes it).
 */
#define LKS_ONCE_STEP_MAX 64
LKS_API int lks_once_step_save(lks_conn *c, const lks_lease *lease, const char *scope,
                               const char *key, const lks_once_options *opts, const char *step,
                               const void *data, size_t len);
LKS_API int lks_once_step_load(lks_conn *c, const char *scope, const char *key,
                               const lks_once_options *opts, char step[LKS_ONCE_STEP_MAX + 1],
                               lks_once_result *data);

/* Administration. lks_once_forget deletes the record of (scope, key): the
 * key runs again on its next call (LKS_NOT_FOUND when there was none).
 * lks_once_list calls fn for each record of scope (NULL: every scope) in
 * (scope, key) order, at most limit of them (0: no limit); the strings are
 * valid during the call, result->data too (do not clear it); a non-zero
 * return from fn stops the walk and is returned. */
LKS_API int lks_once_forget(lks_conn *c, const char *table, const char *scope, const char *key);
typedef int (*lks_once_list_fn)(const char *scope, const char *key,
                                const lks_once_result *record, void *arg);
LKS_API int lks_once_list(lks_conn *c, const char *table, const char *scope, int limit,
                          lks_once_list_fn fn, void *arg);
/* Delete records completed more than older_than_ms ago (server clock), in
 * statements of at most batch rows (1..10000), each its own short
 * transaction; *deleted (may be NULL) counts them. */
LKS_API int lks_once_purge(lks_conn *c, const char *table, int64_t older_than_ms, int batch,
                           int64_t *deleted);

/* ---- names before 0.2 ------------------------------------------------ */
/* Kept so that code written for 0.1 builds after the rename to the module
 * prefix (the _options_init calls now take a version). */
typedef lks_lease_acquire_options lks_acquire_options;
typedef lks_lease_acquire_stats lks_acquire_stats;
typedef lks_lease_autorenew_options lks_autorenew_options;
#define LKS_ACQUIRE_OPTIONS_VERSION LKS_LEASE_ACQUIRE_OPTIONS_VERSION
#define LKS_ACQUIRE_OPTIONS_INIT LKS_LEASE_ACQUIRE_OPTIONS_INIT
#define LKS_AUTORENEW_OPTIONS_VERSION LKS_LEASE_AUTORENEW_OPTIONS_VERSION
#define LKS_AUTORENEW_OPTIONS_INIT LKS_LEASE_AUTORENEW_OPTIONS_INIT
#define LKS_OWNER_MAX LKS_LEASE_OWNER_MAX
#define lks_acquire_options_init lks_lease_acquire_options_init
#define lks_autorenew_options_init lks_lease_autorenew_options_init

#ifdef __cplusplus
}
#endif
#endif
